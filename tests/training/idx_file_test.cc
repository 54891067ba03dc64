// Dataset files: good IDX files load; missing, truncated, foreign and inconsistent ones fail
// with a TrainingError that names the file at fault.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "support/idx_bytes.h"
#include "temp_dir.h"
#include "training/checkpoint_file.h"
#include "training/host_dataset.h"
#include "training/idx_file.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

using testing::TempDir;

using starling::testing::idx_bytes;

void write_gz(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

// Expects read to throw a TrainingError whose message contains `path` and `fragment`.
template <typename F>
void expect_error(F&& read, const std::string& path, const std::string& fragment) {
  try {
    read();
    FAIL() << "expected a TrainingError for " << path;
  } catch (const TrainingError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

// A complete, valid MNIST-layout directory with `train` and `test` samples.
void write_dataset(const TempDir& dir, std::uint32_t train, std::uint32_t test) {
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({train, 28, 28}, 200));
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({train}, 3));
  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes({test, 28, 28}, 10));
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes({test}, 9));
}

TEST(IdxFile, ReadsGzippedAndPlainFiles) {
  TempDir dir;
  const auto bytes = idx_bytes({3, 2}, 42);
  write_gz(dir.file("a.gz"), bytes);
  std::ofstream(dir.file("a"), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  for (const std::string name : {"a.gz", "a"}) {
    IdxArray array = read_idx_file(dir.file(name), 2);
    EXPECT_EQ(array.dims, (std::vector<std::int64_t>{3, 2}));
    EXPECT_EQ(array.data, std::vector<std::uint8_t>(6, 42));
  }
}

TEST(IdxFile, MissingFileIsNamed) {
  TempDir dir;
  const std::string path = dir.file("nope.gz");
  expect_error([&] { read_idx_file(path, 1); }, path, "no such file");
}

TEST(IdxFile, TruncatedPayloadIsNamed) {
  TempDir dir;
  auto bytes = idx_bytes({100, 28, 28});
  bytes.resize(bytes.size() - 50);
  const std::string path = dir.file("short.gz");
  write_gz(path, bytes);
  expect_error([&] { read_idx_file(path, 3); }, path, "truncated");
}

// A damaged header may declare a payload far larger than the file: reading it must fail on
// the bytes that are there, without first taking the memory the header asks for.
TEST(IdxFile, AHeaderDeclaringGigabytesCostsATruncationErrorNotTheMemory) {
  TempDir dir;
  auto bytes = idx_bytes({1, 1, 1});
  const std::uint32_t dims[3] = {32768, 256, 256};  // 2 GiB declared, one byte present
  for (int d = 0; d < 3; ++d) {
    for (int b = 0; b < 4; ++b) bytes[4 + 4 * d + b] = static_cast<std::uint8_t>(dims[d] >> (24 - 8 * b));
  }
  const std::string path = dir.file("liar.gz");
  write_gz(path, bytes);
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  expect_error([&] { read_idx_file(path, 3); }, path,
               "truncated: the payload needs 2147483648 bytes but the file ends after 1");
  getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 256 * 1024)  // kilobytes
      << "peak memory grew by " << (after.ru_maxrss - before.ru_maxrss) / 1024 << " MiB";
}

TEST(IdxFile, TruncatedCompressedStreamIsNamed) {
  TempDir dir;
  const std::string whole = dir.file("whole.gz");
  write_gz(whole, idx_bytes({100, 28, 28}, 1));
  const auto gz = read_whole_file(whole);
  const std::string path = dir.file("cut.gz");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(gz.data()), static_cast<std::streamsize>(gz.size() / 2));
  expect_error([&] { read_idx_file(path, 3); }, path, "");
}

TEST(IdxFile, WrongMagicIsNamed) {
  TempDir dir;
  const std::string path = dir.file("foreign.gz");
  write_gz(path, {'P', 'K', 3, 4, 0, 0, 0, 0, 1, 2, 3});
  expect_error([&] { read_idx_file(path, 1); }, path, "not an IDX file");
  const std::string float_idx = dir.file("floats.gz");
  write_gz(float_idx, idx_bytes({4}, 0, 0x0D));
  expect_error([&] { read_idx_file(float_idx, 1); }, float_idx, "magic");
}

TEST(IdxFile, WrongRankIsNamed) {
  TempDir dir;
  const std::string path = dir.file("rank.gz");
  write_gz(path, idx_bytes({10, 28}));
  expect_error([&] { read_idx_file(path, 3); }, path, "3 dimensions");
}

TEST(IdxFile, TrailingBytesAreNamed) {
  TempDir dir;
  auto bytes = idx_bytes({4});
  bytes.push_back(1);
  const std::string path = dir.file("long.gz");
  write_gz(path, bytes);
  expect_error([&] { read_idx_file(path, 1); }, path, "bytes after");
}

TEST(IdxDataset, LoadsAndNormalises) {
  TempDir dir;
  write_dataset(dir, 50, 20);
  HostDatasetSplits data = load_idx_dataset(dir.path().string());
  EXPECT_EQ(data.train.samples, 50);
  EXPECT_EQ(data.test.samples, 20);
  EXPECT_EQ(data.train.images.size(), 50u * 784u);
  EXPECT_EQ(data.train.labels, std::vector<std::int64_t>(50, 3));
  EXPECT_EQ(data.test.labels, std::vector<std::int64_t>(20, 9));
  // All training pixels are equal, so they normalise to (almost) zero.
  EXPECT_NEAR(data.train.images.front(), 0.0f, 1e-3f);
}

TEST(IdxDataset, CountMismatchNamesBothFiles) {
  TempDir dir;
  write_dataset(dir, 50, 20);
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({49}, 3));
  expect_error([&] { load_idx_dataset(dir.path().string()); },
               dir.file("train-images-idx3-ubyte.gz"), "49 labels");
  expect_error([&] { load_idx_dataset(dir.path().string()); },
               dir.file("train-labels-idx1-ubyte.gz"), "50 images");
}

TEST(IdxDataset, WrongImageSizeIsNamed) {
  TempDir dir;
  write_dataset(dir, 5, 5);
  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes({5, 32, 32}));
  expect_error([&] { load_idx_dataset(dir.path().string()); },
               dir.file("t10k-images-idx3-ubyte.gz"), "32x32");
}

TEST(IdxDataset, LabelOutOfRangeIsNamed) {
  TempDir dir;
  write_dataset(dir, 5, 5);
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes({5}, 10));
  expect_error([&] { load_idx_dataset(dir.path().string()); },
               dir.file("t10k-labels-idx1-ubyte.gz"), "label 10");
}

TEST(IdxDataset, MissingFileAndDirectoryAreNamed) {
  TempDir dir;
  write_dataset(dir, 5, 5);
  std::filesystem::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
  expect_error([&] { load_idx_dataset(dir.path().string()); },
               dir.file("t10k-labels-idx1-ubyte.gz"), "no such file");
  const std::string absent = dir.file("absent");
  expect_error([&] { load_idx_dataset(absent); }, absent, "does not exist");
}

TEST(IdxDataset, TrainerReportsBadDataDir) {
  TempDir dir;
  write_dataset(dir, 5, 5);
  write_gz(dir.file("train-images-idx3-ubyte.gz"), {1, 2, 3});
  topology::TrainingSpec spec;
  spec.data_dir = dir.path().string();
  spec.device = "cpu";
  expect_error([&] { Trainer trainer(spec, NodeShard{}); }, dir.file("train-images-idx3-ubyte.gz"),
               "");
}

TEST(SyntheticDataset, IsDeterministicAndSeeded) {
  const auto a = make_synthetic_dataset(5, 100, 10);
  const auto b = make_synthetic_dataset(5, 100, 10);
  const auto c = make_synthetic_dataset(6, 100, 10);
  EXPECT_EQ(a.train.images, b.train.images);
  EXPECT_EQ(a.train.labels, b.train.labels);
  EXPECT_NE(a.train.images, c.train.images);
}

}  // namespace
}  // namespace starling::training
