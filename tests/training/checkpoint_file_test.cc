// The checkpoint container: round trip, every flipped byte and every truncation detected,
// durable writes, naming and pruning.
#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.h"
#include "training/checkpoint_file.h"
#include "training/checksum.h"
#include "training/trainer.h"
#include "training/trainer_state.h"

namespace starling::training {
namespace {

using testing::TempDir;

CheckpointSections sample_sections() {
  return {{"alpha", {1, 2, 3}}, {"beta", {}}, {"gamma", std::vector<std::uint8_t>(40, 0xAB)}};
}

TEST(Checksum, Crc64MatchesTheXzCheckValue) {
  const std::string text = "123456789";
  EXPECT_EQ(crc64(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())),
            0x995DC9BBDF1939FAULL);
}

TEST(CheckpointFile, RoundTrip) {
  const auto sections = sample_sections();
  EXPECT_EQ(decode_checkpoint(encode_checkpoint(sections), "x"), sections);
}

TEST(CheckpointFile, EveryFlippedByteIsDetected) {
  const auto bytes = encode_checkpoint(sample_sections());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x80, 0xFF}) {
      auto damaged = bytes;
      damaged[i] ^= mask;
      EXPECT_THROW(decode_checkpoint(damaged, "x"), TrainingError) << "byte " << i;
    }
  }
}

TEST(CheckpointFile, EveryTruncationIsDetected) {
  const auto bytes = encode_checkpoint(sample_sections());
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_THROW(decode_checkpoint(cut, "x"), TrainingError) << "length " << length;
  }
}

TEST(CheckpointFile, ErrorsNameThePath) {
  auto bytes = encode_checkpoint(sample_sections());
  bytes[20] ^= 1;
  try {
    decode_checkpoint(bytes, "/some/ckpt-000000000001.starling");
    FAIL();
  } catch (const TrainingError& e) {
    EXPECT_NE(std::string(e.what()).find("/some/ckpt-000000000001.starling: checksum mismatch"),
              std::string::npos)
        << e.what();
  }
}

TEST(CheckpointFile, DurableWriteReplacesAtomically) {
  TempDir dir;
  const auto path = dir.path() / "file";
  write_file_durably(path, std::vector<std::uint8_t>{1, 2, 3});
  write_file_durably(path, std::vector<std::uint8_t>{4, 5});
  EXPECT_EQ(read_whole_file(path), (std::vector<std::uint8_t>{4, 5}));
  // Nothing but the file itself is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
  EXPECT_THROW(write_file_durably(dir.path() / "missing-dir" / "f", std::vector<std::uint8_t>{1}),
               TrainingError);
}

TEST(CheckpointFile, ReadingSomethingThatIsNotARegularFileIsATrainingError) {
  TempDir dir;
  try {
    read_whole_file(dir.path());
    FAIL() << "a directory was read as a file";
  } catch (const TrainingError& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_whole_file(dir.path() / "absent"), TrainingError);
}

// What a crash mid-write leaves (the temporary file of write_file_durably) is removed at the
// next start; checkpoints, other files and other temporary-looking names stay.
TEST(CheckpointFile, UnfinishedCheckpointsAreRemovedAndNothingElse) {
  TempDir dir;
  write_file_durably(dir.path() / checkpoint_file_name(10), std::vector<std::uint8_t>{1});
  const auto unfinished = dir.path() / (checkpoint_file_name(20) + ".tmp.4242");
  std::ofstream(unfinished) << "half a checkpoint";
  std::ofstream(dir.file("notes.tmp.1")) << "x";
  std::filesystem::create_directory(dir.path() / (checkpoint_file_name(30) + ".tmp.7"));
  const auto removed = remove_unfinished_checkpoints(dir.path());
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], unfinished);
  EXPECT_FALSE(std::filesystem::exists(unfinished));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / checkpoint_file_name(10)));
  EXPECT_TRUE(std::filesystem::exists(dir.file("notes.tmp.1")));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / (checkpoint_file_name(30) + ".tmp.7")));
  EXPECT_TRUE(remove_unfinished_checkpoints(dir.path() / "absent").empty());
}

TEST(CheckpointFile, NamesListingAndPruning) {
  EXPECT_EQ(checkpoint_file_name(1234), "ckpt-000000001234.starling");
  EXPECT_EQ(step_from_checkpoint_name("ckpt-000000001234.starling"), 1234);
  EXPECT_FALSE(step_from_checkpoint_name("ckpt-000000001234.starling.tmp.77").has_value());
  EXPECT_FALSE(step_from_checkpoint_name("ckpt-12a4.starling").has_value());
  TempDir dir;
  for (std::int64_t step : {5, 100, 20, 7}) {
    write_file_durably(dir.path() / checkpoint_file_name(step), std::vector<std::uint8_t>{1});
  }
  std::ofstream(dir.file("unrelated.txt")) << "x";
  std::filesystem::create_directory(dir.path() / checkpoint_file_name(500));  // not a file
  auto listed = list_checkpoints(dir.path());
  ASSERT_EQ(listed.size(), 4u);
  EXPECT_EQ(listed[0].step, 100);
  EXPECT_EQ(listed[3].step, 5);
  prune_checkpoints(dir.path(), 2);
  listed = list_checkpoints(dir.path());
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].step, 100);
  EXPECT_EQ(listed[1].step, 20);
  EXPECT_TRUE(std::filesystem::exists(dir.file("unrelated.txt")));
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() / checkpoint_file_name(500)));
  EXPECT_TRUE(list_checkpoints(dir.path() / "absent").empty());
}

TEST(TrainerState, RoundTripsThroughSections) {
  TrainerState state;
  state.fingerprint = 0x1234;
  state.parameter_count = 3;
  state.shard_index = 1;
  state.shard_count = 4;
  state.shard_size = 99;
  state.step = 17;
  state.samples_seen = 544;
  state.data_epoch = 2;
  state.data_cursor = 5;
  state.parameters = {1.5f, -2.0f, 3.25f};
  state.momentum = {0.5f, 0.25f};
  state.torch_rng = {9, 8, 7};
  state.extras = {{"round", {1, 0, 0, 0}}, {"reference", {}}};
  const auto bytes = encode_checkpoint(encode_state(state));
  const TrainerState back = decode_state(decode_checkpoint(bytes, "x"), "x");
  EXPECT_EQ(back.fingerprint, state.fingerprint);
  EXPECT_EQ(back.shard_index, 1u);
  EXPECT_EQ(back.shard_count, 4u);
  EXPECT_EQ(back.shard_size, 99);
  EXPECT_EQ(back.step, 17);
  EXPECT_EQ(back.samples_seen, 544);
  EXPECT_EQ(back.data_epoch, 2);
  EXPECT_EQ(back.data_cursor, 5);
  EXPECT_EQ(back.parameters, state.parameters);
  EXPECT_EQ(back.momentum, state.momentum);
  EXPECT_EQ(back.torch_rng, state.torch_rng);
  EXPECT_EQ(back.extras, state.extras);
}

TEST(TrainerState, MissingSectionIsAnError) {
  TrainerState state;
  auto sections = encode_state(state);
  sections.erase("momentum");
  EXPECT_THROW(decode_state(sections, "x"), TrainingError);
}

}  // namespace
}  // namespace starling::training
