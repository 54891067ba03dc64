#pragma once
// The state behind the Trainer facade (private to training/*.cc). Includes ATen.
#include <ATen/Tensor.h>

#include <memory>
#include <string>

#include "training/data_order.h"
#include "training/dense_backprop.h"
#include "training/flat_parameters.h"
#include "training/fused_sgd.h"
#include "training/lr_schedule.h"
#include "training/model_layout.h"
#include "training/trainer.h"

namespace starling::training {

struct Trainer::Impl {
  Impl(const topology::TrainingSpec& spec, NodeShard shard);

  // Mirrors for the host-facing spans: the live buffers themselves on the CPU, separate pinned
  // host tensors on CUDA.
  bool host_is_live() const { return device.is_cpu(); }

  topology::TrainingSpec spec;
  NodeShard shard;
  c10::Device device;
  std::string device_name;
  ModelLayout layout;
  std::uint64_t fingerprint = 0;

  at::Tensor train_images;  // this node's shard, [shard, 784] float, on `device`
  at::Tensor train_labels;  // [shard] int64
  at::Tensor test_images;   // the whole test set
  at::Tensor test_labels;

  std::unique_ptr<FlatParameters> flat;
  // Set for dense networks: their gradients come from a hand-written backward pass, not
  // autograd (dense_backprop.h says why).
  std::unique_ptr<DenseBackprop> dense;
  at::Tensor host_parameters;
  at::Tensor host_gradients;
  std::unique_ptr<FusedSgd> sgd;
  std::unique_ptr<LearningRateSchedule> schedule;
  std::unique_ptr<DataOrder> order;

  std::int64_t steps_per_epoch = 0;
  std::int64_t total_steps = 0;
  std::int64_t step = 0;
  std::int64_t samples_seen = 0;

  // Between compute_gradients() and apply_gradients().
  bool gradients_pending = false;
  double pending_loss = 0;
  std::int64_t pending_samples = 0;
};

}  // namespace starling::training
