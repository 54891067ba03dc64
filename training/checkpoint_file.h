#pragma once
// The checkpoint container and its durable storage, with no LibTorch.
//
// File layout (all integers little-endian):
//   8 bytes   magic "STRLCKPT"
//   u32       format version (1)
//   u32       number of sections
//   per section: u32 name length, name bytes, u64 payload length, payload bytes
//   u64       CRC-64/XZ of every byte before it
// The checksum is verified over the whole file before any section is parsed, so a flipped or
// missing byte anywhere is reported instead of loaded.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace starling::training {

using CheckpointSections = std::map<std::string, std::vector<std::uint8_t>>;

std::vector<std::uint8_t> encode_checkpoint(const CheckpointSections& sections);
// Throws TrainingError naming `path` for a bad magic, version, checksum, truncation or
// trailing bytes.
CheckpointSections decode_checkpoint(std::span<const std::uint8_t> file, const std::string& path);

// Writes `bytes` to `path` so that after a crash the path holds either the old file or the
// complete new one: temp file in the same directory, write, fsync, rename over `path`, fsync
// of the directory. Throws TrainingError with the path and errno text.
void write_file_durably(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);

// Throws TrainingError naming `path` if it is missing, not a regular file, or unreadable.
std::vector<std::uint8_t> read_whole_file(const std::filesystem::path& path);

// Removes the temporary files write_file_durably leaves in `dir` when its process dies
// mid-write (checkpoint names with ".tmp.<pid>" appended), and returns their paths. Only for
// a directory no live process writes checkpoints into: starlingd calls it while it holds the
// node directory's lock. Anything else in `dir` is left alone.
std::vector<std::filesystem::path> remove_unfinished_checkpoints(const std::filesystem::path& dir);

// Checkpoint names encode the step, so the newest is found without opening files:
// "ckpt-000000001234.starling".
std::string checkpoint_file_name(std::int64_t step);
std::optional<std::int64_t> step_from_checkpoint_name(const std::string& name);

struct CheckpointEntry {
  std::int64_t step;
  std::filesystem::path path;
};
// Checkpoint files in `dir`, newest (highest step) first; none if `dir` does not exist.
std::vector<CheckpointEntry> list_checkpoints(const std::filesystem::path& dir);
// Deletes all but the newest `keep` checkpoints. Temp files a crash left behind are never
// listed, so they cannot be loaded; they are left for the operator.
void prune_checkpoints(const std::filesystem::path& dir, std::int64_t keep);

}  // namespace starling::training
