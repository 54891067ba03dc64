#pragma once
// Trainer: the public face of the training engine, one per node. It owns the node's dataset
// shard, model, optimizer and schedule, and exposes all parameters as one contiguous float
// buffer that the sync algorithms (gossip/, which never sees a tensor) read and write.
//
// This header includes no LibTorch header, so the daemon and most tests compile without paying
// for torch's headers. Everything torch-specific lives behind Impl in training/*.cc.
//
// Threading: a Trainer is used from one thread at a time (the node's training thread). Writing
// into parameters() between steps is the supported way for sync algorithms to change the model.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::training {

// Expected failures a user can fix (a missing or foreign dataset file, an empty shard, a CUDA
// device that is not there); messages name the file or field at fault.
class TrainingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A training.device that is malformed or not on this machine: a TrainingError the daemon can
// tell apart, to say where the device was set (a node's own [[node]] device or training.device).
class DeviceError : public TrainingError {
 public:
  using TrainingError::TrainingError;
};

// An intact checkpoint (its checksum verifies) of another model or data shard than this
// trainer's: the configuration has changed under a run directory. Skipping it would train
// from scratch beside it, and pruning would then delete it, so loading stops instead.
class IncompatibleCheckpointError : public TrainingError {
 public:
  using TrainingError::TrainingError;
};

// Where the training engine's warnings go (a checkpoint skipped as corrupt, say): standard
// error until a program routes them into its own log. training/ itself includes no logging
// library: LibTorch 2 ships its own fmt headers, and a translation unit that saw them and
// Debian's spdlog would not compile.
using WarningSink = std::function<void(const std::string& message)>;
void set_warning_sink(WarningSink sink);
void warn(const std::string& message);

// CUDA devices this LibTorch can use: 0 for a CPU-only build or a machine without a GPU.
std::size_t cuda_device_count();

// Which part of the data this node trains on: partition `index` of `count`, drawn from `seed`.
struct NodeShard {
  std::size_t index = 0;
  std::size_t count = 1;
  std::uint64_t seed = 1;
};

struct StepResult {
  double loss = 0;           // mean loss of the batch
  std::int64_t step = 0;     // steps completed, after this one
  double epoch = 0;          // fractional epochs of this node's shard completed
  double lr = 0;             // learning rate used for this step
  std::int64_t samples = 0;  // samples in the batch
};

struct EvalResult {
  double loss = 0;
  double accuracy = 0;  // fraction in [0, 1]
  std::int64_t samples = 0;
  double seconds = 0;
};

// Named opaque blobs a caller stores alongside the model (e.g. the gossip round counter, the
// reference model of drift-threshold averaging). Covered by the checkpoint's checksum.
using CheckpointExtras = std::map<std::string, std::vector<std::uint8_t>>;

struct LoadedCheckpoint {
  std::string path;
  std::int64_t step = 0;
  CheckpointExtras extras;
};

class Trainer {
 public:
  // Loads the dataset, cuts this node's shard, builds the model (initialised from the cluster
  // seed, so every node starts from the same parameters), optimizer and schedule.
  // Sets the process's intra-op thread count to spec.threads (LibTorch's pool, and OpenBLAS's
  // when LibTorch runs on it; both are process-wide). Throws TrainingError.
  Trainer(const topology::TrainingSpec& spec, NodeShard shard);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const std::string& device() const;    // resolved: "cpu", "cuda:0", ...
  std::uint64_t fingerprint() const;    // hash of parameter names, shapes and dtypes
  std::size_t parameter_count() const;  // floats in the flat buffer
  std::size_t shard_size() const;       // training samples on this node
  // Steps of one epoch of the cluster's average shard (training samples / nodes): the same on
  // every node whatever the partition, so nodes take the same number of steps.
  std::int64_t steps_per_epoch() const;
  std::int64_t total_steps() const;     // from epochs and max_steps

  bool finished() const;  // step_count() >= total_steps()
  // One SGD step on the next batch: forward, backward, optimizer. Steps past total_steps()
  // are allowed (the data order simply continues); finished() is the caller's stop signal.
  StepResult step();
  // The same step split in two, for synchronous data-parallel SGD: compute_gradients() fills
  // gradients() and returns the batch loss; the caller may average gradients() across nodes;
  // apply_gradients() then runs the optimizer (momentum, weight decay, schedule) with them.
  double compute_gradients();
  StepResult apply_gradients();

  // Flat state, as host memory with the same layout for parameters and gradients. On the CPU
  // these are the live buffers (zero-copy, and the pull/push calls do nothing); on CUDA they are
  // host mirrors: pull_*() before reading, push_*() after writing.
  std::span<float> parameters();
  std::span<float> gradients();
  void pull_parameters();
  void push_parameters();
  void pull_gradients();
  void push_gradients();

  // Loss and accuracy on the whole test set.
  EvalResult evaluate();
  // Same, for another parameter vector of this model's layout; the live model is unchanged.
  EvalResult evaluate_parameters(std::span<const float> parameters);

  std::int64_t step_count() const;
  // Moves forward to `step` without training: the step counter, the position in the data
  // order and with them the learning-rate schedule are where they would be had the skipped
  // batches been trained on (samples_seen() does not count them). For a node that rejoins a
  // synchronous ring which got further. Throws std::invalid_argument for a step behind
  // step_count(), logic_error between compute_gradients() and apply_gradients().
  void advance_to_step(std::int64_t step);
  // Zeroes the optimizer's momentum, as before the first step: replicas that must stay
  // identical restart it together.
  void reset_optimizer_state();
  double epoch() const;
  double lr() const;  // learning rate the next step will use
  std::int64_t samples_seen() const;

  // Writes a checkpoint of everything needed to resume bit-for-bit on the CPU (model,
  // optimizer state, step, epoch, data order, RNG state, extras) durably: temp file, fsync,
  // rename, fsync of the directory; with its own checksum. Keeps the newest keep_checkpoints.
  // Returns the path written (dir/ckpt-<step>.starling; dir is created if needed). Call it
  // between steps: between compute_gradients() and apply_gradients() it throws logic_error.
  std::string save_checkpoint(const std::string& dir, const CheckpointExtras& extras = {});
  // Loads the newest checkpoint in `dir` whose checksum and contents verify; files that do not
  // (a crash mid-write, a flipped byte) are skipped with a warning naming them. nullopt when
  // there is none. Throws IncompatibleCheckpointError, loading nothing, when the newest intact
  // one is of another model or shard.
  std::optional<LoadedCheckpoint> load_latest_checkpoint(const std::string& dir);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace starling::training
