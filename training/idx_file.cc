#include "training/idx_file.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>

#include "training/trainer.h"

namespace starling::training {
namespace {

constexpr int kUnsignedByteType = 0x08;
// Far above any real dataset: a header declaring more is refused at once. (Below it, memory
// still follows the bytes actually read; see read_idx_file.)
constexpr std::int64_t kMaxPayloadBytes = std::int64_t{1} << 34;

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw TrainingError(path + ": " + what);
}

// Reads exactly out.size() bytes; fewer means the file is truncated (or the gzip stream is).
// `out` may be a piece of a larger part: `before` bytes of it were read already, and it has
// `whole` bytes in all (0: out.size()), which the truncation message reports.
void read_exactly(gzFile_s* file, const std::string& path, std::span<std::uint8_t> out,
                  const char* part, std::size_t before = 0, std::size_t whole = 0) {
  if (whole == 0) whole = out.size();
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t chunk = std::min<std::size_t>(out.size() - done, 1u << 30);
    const int got = gzread(file, out.data() + done, static_cast<unsigned>(chunk));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      fail(path, std::string("corrupt or truncated compressed data while reading the ") + part +
                     " (" + (message ? message : "zlib error") + ")");
    }
    if (got == 0) {
      fail(path, std::string("truncated: the ") + part + " needs " + std::to_string(whole) +
                     " bytes but the file ends after " + std::to_string(before + done));
    }
    done += static_cast<std::size_t>(got);
  }
}

}  // namespace

IdxArray read_idx_file(const std::string& path, std::size_t expected_rank) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    fail(path, std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
  }
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) fail(path, "cannot open");

  std::array<std::uint8_t, 4> magic{};
  read_exactly(file.get(), path, magic, "header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != kUnsignedByteType ||
      magic[3] != expected_rank) {
    fail(path, "not an IDX file of unsigned bytes with " + std::to_string(expected_rank) +
                   " dimensions (magic bytes " + std::to_string(magic[0]) + " " +
                   std::to_string(magic[1]) + " " + std::to_string(magic[2]) + " " +
                   std::to_string(magic[3]) + ", expected 0 0 8 " +
                   std::to_string(expected_rank) + ")");
  }

  IdxArray array;
  std::int64_t total = 1;
  for (std::size_t d = 0; d < expected_rank; ++d) {
    std::array<std::uint8_t, 4> be{};
    read_exactly(file.get(), path, be, "header");
    const std::int64_t dim = (std::int64_t{be[0]} << 24) | (std::int64_t{be[1]} << 16) |
                             (std::int64_t{be[2]} << 8) | std::int64_t{be[3]};
    if (dim <= 0) fail(path, "dimension " + std::to_string(d) + " is zero");
    total *= dim;
    if (total > kMaxPayloadBytes) fail(path, "header declares an implausibly large payload");
    array.dims.push_back(dim);
  }

  // The payload grows as it is read, so memory follows the bytes the file really has: a
  // damaged or foreign header that declares gigabytes costs a truncation error, not gigabytes
  // of zeroed memory first.
  const auto declared = static_cast<std::size_t>(total);
  constexpr std::size_t kPayloadPiece = std::size_t{16} << 20;
  array.data.reserve(std::min(declared, kPayloadPiece));
  while (array.data.size() < declared) {
    const std::size_t done = array.data.size();
    const std::size_t piece = std::min(declared - done, kPayloadPiece);
    array.data.resize(done + piece);
    read_exactly(file.get(), path, std::span(array.data).subspan(done, piece), "payload", done,
                 declared);
  }
  std::uint8_t extra = 0;
  if (gzread(file.get(), &extra, 1) != 0) {
    fail(path, "has bytes after the " + std::to_string(total) +
                   "-byte payload its header declares (a foreign or damaged file)");
  }
  return array;
}

}  // namespace starling::training
