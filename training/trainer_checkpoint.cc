// Trainer::save_checkpoint and load_latest_checkpoint: the trainer's side of checkpoints
// (what goes in, what must match before anything is applied). The container, checksum and
// durable write are in checkpoint_file.cc; the section encoding in trainer_state.cc.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <filesystem>
#include <mutex>

#include "training/checkpoint_file.h"
#include "training/trainer_impl.h"
#include "training/trainer_state.h"

namespace starling::training {
namespace {

std::vector<float> to_host_floats(const at::Tensor& tensor) {
  const at::Tensor host = tensor.to(at::kCPU).contiguous();
  const float* data = host.data_ptr<float>();
  return std::vector<float>(data, data + host.numel());
}

void copy_into(const at::Tensor& destination, const std::vector<float>& values) {
  const at::Tensor source =
      at::from_blob(const_cast<float*>(values.data()),
                    {static_cast<std::int64_t>(values.size())}, at::TensorOptions().dtype(at::kFloat));
  destination.copy_(source);
}

std::vector<std::uint8_t> torch_rng_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  const at::Tensor state = generator.get_state();
  const auto* bytes = state.data_ptr<std::uint8_t>();
  return std::vector<std::uint8_t>(bytes, bytes + state.numel());
}

at::Tensor rng_state_tensor(const std::vector<std::uint8_t>& bytes) {
  return at::from_blob(const_cast<std::uint8_t*>(bytes.data()),
                       {static_cast<std::int64_t>(bytes.size())},
                       at::TensorOptions().dtype(at::kByte))
      .clone();
}

// What a checkpoint must match to load into a trainer.
struct Identity {
  std::uint64_t fingerprint;
  std::int64_t total_floats;
  std::int64_t trainable_floats;
  NodeShard shard;
  std::int64_t shard_size;
};

// Every check a checkpoint must pass before any of it is applied. Throws
// IncompatibleCheckpointError when it is of another model or shard, TrainingError when its
// contents are impossible.
void check_compatible(const Identity& s, const TrainerState& state, const std::string& path) {
  auto mismatch = [&](const std::string& what, const std::string& theirs, const std::string& ours) {
    throw IncompatibleCheckpointError(path + ": " + what + " is " + theirs +
                                      " but this trainer's is " + ours);
  };
  if (state.fingerprint != s.fingerprint) {
    mismatch("model fingerprint", std::to_string(state.fingerprint), std::to_string(s.fingerprint));
  }
  if (state.parameter_count != static_cast<std::uint64_t>(s.total_floats)) {
    mismatch("parameter count", std::to_string(state.parameter_count),
             std::to_string(s.total_floats));
  }
  if (state.momentum.size() != static_cast<std::size_t>(s.trainable_floats)) {
    mismatch("momentum size", std::to_string(state.momentum.size()),
             std::to_string(s.trainable_floats));
  }
  if (state.shard_index != s.shard.index || state.shard_count != s.shard.count ||
      state.shard_size != s.shard_size) {
    mismatch("shard", std::to_string(state.shard_index) + "/" + std::to_string(state.shard_count) +
                          " of " + std::to_string(state.shard_size) + " samples",
             std::to_string(s.shard.index) + "/" + std::to_string(s.shard.count) + " of " +
                 std::to_string(s.shard_size) + " samples");
  }
  if (state.data_epoch < 0 || state.data_cursor < 0 || state.data_cursor > state.shard_size) {
    throw TrainingError(path + ": data position (epoch " + std::to_string(state.data_epoch) +
                        ", sample " + std::to_string(state.data_cursor) + ") is out of range");
  }
  // LibTorch validates a generator state only when it is set: try it on a scratch generator.
  try {
    at::Generator scratch = at::make_generator<at::CPUGeneratorImpl>();
    scratch.set_state(rng_state_tensor(state.torch_rng));
  } catch (const c10::Error& e) {
    throw TrainingError(path + ": invalid random generator state (" + e.what_without_backtrace() +
                        ")");
  }
}

}  // namespace

std::string Trainer::save_checkpoint(const std::string& dir, const CheckpointExtras& extras) {
  Impl& s = *impl_;
  if (s.gradients_pending) {
    throw std::logic_error(
        "Trainer::save_checkpoint between compute_gradients() and apply_gradients(): the "
        "batch is consumed but not applied, so the checkpoint could not resume exactly");
  }
  TrainerState state;
  state.fingerprint = s.fingerprint;
  state.parameter_count = static_cast<std::uint64_t>(s.layout.total_floats);
  state.shard_index = s.shard.index;
  state.shard_count = s.shard.count;
  state.shard_size = s.order->shard_size();
  state.step = s.step;
  state.samples_seen = s.samples_seen;
  state.data_epoch = s.order->epoch();
  state.data_cursor = s.order->cursor();
  state.parameters = to_host_floats(s.flat->values());
  state.momentum = to_host_floats(s.sgd->momentum_buffer());
  state.torch_rng = torch_rng_state();
  state.extras = extras;

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw TrainingError(dir + ": cannot create checkpoint directory: " + ec.message());
  const std::filesystem::path path = std::filesystem::path(dir) / checkpoint_file_name(s.step);
  write_file_durably(path, encode_checkpoint(encode_state(state)));
  prune_checkpoints(dir, s.spec.keep_checkpoints);
  return path.string();
}

std::optional<LoadedCheckpoint> Trainer::load_latest_checkpoint(const std::string& dir) {
  Impl& s = *impl_;
  const Identity identity{s.fingerprint, s.layout.total_floats, s.layout.trainable_floats,
                          s.shard, s.order->shard_size()};
  for (const CheckpointEntry& entry : list_checkpoints(dir)) {
    const std::string path = entry.path.string();
    TrainerState state;
    try {
      state = decode_state(decode_checkpoint(read_whole_file(entry.path), path), path);
      check_compatible(identity, state, path);
    } catch (const IncompatibleCheckpointError& e) {
      throw IncompatibleCheckpointError(
          std::string(e.what()) + ". The checkpoints in " + dir +
          " are of another model or data shard than this node's configuration gives it (its "
          "model, or the number of nodes, changed); resuming would train from scratch beside "
          "them and pruning would delete them. Use another run directory, or move them away");
    } catch (const TrainingError& e) {
      warn("skipping checkpoint " + path + ": " + e.what());
      continue;
    }
    // Everything is verified; from here on nothing can fail for a reason in the file.
    copy_into(s.flat->values(), state.parameters);
    copy_into(s.sgd->momentum_buffer(), state.momentum);
    if (!s.host_is_live()) s.host_parameters.copy_(s.flat->values());
    s.flat->zero_gradients();
    s.gradients_pending = false;
    s.step = state.step;
    s.samples_seen = state.samples_seen;
    s.order->restore(state.data_epoch, state.data_cursor);
    {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng_state_tensor(state.torch_rng));
    }
    return LoadedCheckpoint{.path = path, .step = state.step, .extras = std::move(state.extras)};
  }
  return std::nullopt;
}

}  // namespace starling::training
