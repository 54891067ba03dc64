#pragma once
// Everything a checkpoint holds, as plain data, and its mapping to checkpoint sections. No
// LibTorch: the trainer copies tensors into and out of this struct.
//
// Sections: "meta" (identity and counters), "parameters" and "momentum" (float32 arrays in the
// flat-buffer layout), "torch_rng" (LibTorch's CPU generator state, opaque), and one
// "extra/<name>" per caller blob.
#include <cstdint>
#include <string>
#include <vector>

#include "training/checkpoint_file.h"
#include "training/trainer.h"

namespace starling::training {

struct TrainerState {
  // Identity: a checkpoint only loads into a trainer with the same model and shard.
  std::uint64_t fingerprint = 0;
  std::uint64_t parameter_count = 0;
  std::uint64_t shard_index = 0;
  std::uint64_t shard_count = 0;
  std::int64_t shard_size = 0;
  // Progress.
  std::int64_t step = 0;
  std::int64_t samples_seen = 0;
  std::int64_t data_epoch = 0;   // DataOrder state
  std::int64_t data_cursor = 0;
  // Tensors and opaque state.
  std::vector<float> parameters;
  std::vector<float> momentum;  // the trainable prefix only
  std::vector<std::uint8_t> torch_rng;
  CheckpointExtras extras;
};

CheckpointSections encode_state(const TrainerState& state);
// Throws TrainingError naming `path` for a missing section or sizes that disagree.
TrainerState decode_state(const CheckpointSections& sections, const std::string& path);

}  // namespace starling::training
