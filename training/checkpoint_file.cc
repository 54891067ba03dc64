#include "training/checkpoint_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "training/byte_io.h"
#include "training/checksum.h"
#include "training/file_descriptor.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

constexpr std::array<std::uint8_t, 8> kMagic = {'S', 'T', 'R', 'L', 'C', 'K', 'P', 'T'};
constexpr std::uint32_t kFormatVersion = 1;
constexpr std::size_t kChecksumBytes = 8;
constexpr const char* kPrefix = "ckpt-";
constexpr const char* kSuffix = ".starling";
constexpr const char* kTempMarker = ".tmp.";

[[noreturn]] void fail_errno(const std::string& what, const std::filesystem::path& path) {
  throw TrainingError(path.string() + ": " + what + ": " + std::strerror(errno));
}

void write_all(int fd, std::span<const std::uint8_t> bytes, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("write failed", path);
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::vector<std::uint8_t> encode_checkpoint(const CheckpointSections& sections) {
  ByteWriter out;
  out.bytes(kMagic);
  out.u32(kFormatVersion);
  out.u32(static_cast<std::uint32_t>(sections.size()));
  for (const auto& [name, payload] : sections) {
    out.string(name);
    out.u64(payload.size());
    out.bytes(payload);
  }
  out.u64(crc64(out.buffer()));
  return std::move(out.buffer());
}

CheckpointSections decode_checkpoint(std::span<const std::uint8_t> file, const std::string& path) {
  if (file.size() < kMagic.size() + 8 + kChecksumBytes) {
    throw TrainingError(path + ": truncated (" + std::to_string(file.size()) +
                        " bytes is shorter than any checkpoint)");
  }
  if (!std::equal(kMagic.begin(), kMagic.end(), file.begin())) {
    throw TrainingError(path + ": not a Starling checkpoint (wrong magic)");
  }
  const auto body = file.first(file.size() - kChecksumBytes);
  ByteReader trailer(file.last(kChecksumBytes), path);
  const std::uint64_t stored = trailer.u64();
  const std::uint64_t computed = crc64(body);
  if (stored != computed) {
    throw TrainingError(path + ": checksum mismatch (file is corrupt or truncated)");
  }

  ByteReader in(body.subspan(kMagic.size()), path);
  const std::uint32_t version = in.u32();
  if (version != kFormatVersion) {
    throw TrainingError(path + ": checkpoint format version " + std::to_string(version) +
                        " is not supported (this build reads " +
                        std::to_string(kFormatVersion) + ")");
  }
  const std::uint32_t count = in.u32();
  CheckpointSections sections;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string name = in.string();
    auto payload = in.bytes(in.u64());
    if (!sections.emplace(name, std::vector<std::uint8_t>(payload.begin(), payload.end())).second) {
      throw TrainingError(path + ": section \"" + name + "\" appears twice");
    }
  }
  if (in.remaining() != 0) {
    throw TrainingError(path + ": " + std::to_string(in.remaining()) +
                        " unexpected bytes after the last section");
  }
  return sections;
}

void write_file_durably(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  const std::filesystem::path temp =
      dir / (path.filename().string() + kTempMarker + std::to_string(::getpid()));
  {
    FileDescriptor fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) fail_errno("cannot create", temp);
    try {
      write_all(fd.get(), bytes, temp);
      if (::fsync(fd.get()) != 0) fail_errno("fsync failed", temp);
      if (::close(fd.release()) != 0) fail_errno("close failed", temp);
    } catch (...) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      throw;
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    errno = saved;
    fail_errno("rename from " + temp.string() + " failed", path);
  }
  // The rename is durable only once the directory entry is on disk.
  FileDescriptor dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) fail_errno("cannot open directory to fsync it", dir);
  if (::fsync(dir_fd.get()) != 0) fail_errno("directory fsync failed", dir);
}

std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path) {
  // Only a regular file has a size to trust: a directory opens for reading too, and the end
  // offset ext4 reports for it (2^63 - 1) made this allocate until std::bad_alloc.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw TrainingError(path.string() + ": " +
                        (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw TrainingError(path.string() + ": cannot determine size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TrainingError(path.string() + ": cannot open");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size) {
    throw TrainingError(path.string() + ": read failed (the file changed while it was read)");
  }
  return bytes;
}

std::string checkpoint_file_name(std::int64_t step) {
  std::string digits = std::to_string(step);
  if (digits.size() < 12) digits.insert(0, 12 - digits.size(), '0');
  return kPrefix + digits + kSuffix;
}

std::optional<std::int64_t> step_from_checkpoint_name(const std::string& name) {
  const std::string prefix = kPrefix, suffix = kSuffix;
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoll(digits);
}

std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& dir) {
  std::vector<CheckpointEntry> entries;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return entries;
  for (const auto& item : std::filesystem::directory_iterator(dir, ec)) {
    // Checkpoints are regular files; anything else with such a name is not one, and pruning
    // must not touch it either.
    std::error_code type_error;
    if (!item.is_regular_file(type_error)) continue;
    if (auto step = step_from_checkpoint_name(item.path().filename().string())) {
      entries.push_back({*step, item.path()});
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step > b.step; });
  return entries;
}

std::vector<std::filesystem::path> remove_unfinished_checkpoints(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> removed;
  std::error_code ec;
  for (const auto& item : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = item.path().filename().string();
    const auto marker = name.find(kTempMarker);
    if (marker == std::string::npos || !step_from_checkpoint_name(name.substr(0, marker))) continue;
    std::error_code type_error, remove_error;
    if (!item.is_regular_file(type_error)) continue;
    if (std::filesystem::remove(item.path(), remove_error)) removed.push_back(item.path());
  }
  return removed;
}

void prune_checkpoints(const std::filesystem::path& dir, std::int64_t keep) {
  std::error_code ec;
  const auto entries = list_checkpoints(dir);
  for (std::size_t i = static_cast<std::size_t>(std::max<std::int64_t>(keep, 1));
       i < entries.size(); ++i) {
    std::filesystem::remove(entries[i].path, ec);
  }
}

}  // namespace starling::training
