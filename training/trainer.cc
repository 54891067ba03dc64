#include "training/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "training/blas_threads.h"
#include "training/device.h"
#include "training/host_dataset.h"
#include "training/model_forward.h"
#include "training/partition.h"
#include "training/trainer_impl.h"

namespace starling::training {
namespace {

// Wraps a host vector as a CPU tensor without copying: the tensor's deleter owns the vector.
template <typename T>
at::Tensor adopt(std::vector<T>&& data, at::IntArrayRef shape, at::ScalarType type) {
  auto owned = std::make_unique<std::vector<T>>(std::move(data));
  std::vector<T>* raw = owned.get();
  at::Tensor tensor = at::from_blob(
      raw->data(), shape, [raw](void*) { delete raw; }, at::TensorOptions().dtype(type));
  owned.release();  // the tensor's deleter owns it now
  return tensor;
}

void validate(const topology::TrainingSpec& spec, const NodeShard& shard) {
  if (shard.count == 0 || shard.index >= shard.count) {
    throw TrainingError("node shard " + std::to_string(shard.index) + " of " +
                        std::to_string(shard.count) + " is not a valid partition index");
  }
  if (spec.batch_size < 1) throw TrainingError("training.batch_size: must be >= 1");
  if (spec.eval_batch_size < 1) throw TrainingError("training.eval_batch_size: must be >= 1");
  if (!(spec.epochs > 0) || !std::isfinite(spec.epochs)) {
    throw TrainingError("training.epochs: must be a positive number");
  }
  if (spec.max_steps < 0) throw TrainingError("training.max_steps: must be >= 0");
  if (spec.threads < 1) throw TrainingError("training.threads: must be >= 1");
  if (spec.keep_checkpoints < 1) throw TrainingError("training.keep_checkpoints: must be >= 1");
}

}  // namespace

Trainer::Impl::Impl(const topology::TrainingSpec& training_spec, NodeShard node_shard)
    : spec(training_spec), shard(node_shard), device(c10::kCPU) {
  validate(spec, shard);
  at::set_num_threads(static_cast<int>(spec.threads));
  limit_blas_threads(static_cast<int>(spec.threads));
  device = resolve_device(spec.device, shard.index);
  device_name = device.str();
  const ModelKind kind = model_kind_from_name(spec.model);
  layout = model_layout(kind);
  fingerprint = layout_fingerprint(layout);

  // Data: load, cut this node's shard, keep only it (and the test set) as tensors on `device`.
  HostDatasetSplits data = load_dataset(spec, shard.seed);
  const std::vector<ShardIndices> shards =
      partition_dataset(data.train.labels, kClasses, spec.partition, shard.count, shard.seed);
  std::vector<std::int64_t> mine = shards[shard.index];
  const auto shard_samples = static_cast<std::int64_t>(mine.size());
  // An epoch is counted over the cluster's average shard, not this node's own: with skewed
  // partitions shards differ in size, and every node must still take the same number of
  // steps (gossip rounds and collectives advance in lockstep with steps).
  const std::int64_t average_shard =
      (data.train.samples + static_cast<std::int64_t>(shard.count) - 1) /
      static_cast<std::int64_t>(shard.count);
  // Not an error (a skewed partition may leave a node few samples on purpose), but a node
  // whose shard is smaller than a batch trains on its whole shard at every step: its batches
  // are smaller than the others' and it passes over its samples many times per epoch.
  if (shard_samples < spec.batch_size) {
    warn("node " + std::to_string(shard.index) + " of " + std::to_string(shard.count) +
         " has " + std::to_string(shard_samples) + " training samples (" + describe(spec.partition) +
         " partition), fewer than training.batch_size " + std::to_string(spec.batch_size) +
         ": every step trains on its whole shard, which it passes over about " +
         std::to_string(average_shard / std::max<std::int64_t>(shard_samples, 1)) +
         " times per epoch of the average shard");
  }
  {
    const std::int64_t n = data.train.samples;
    at::Tensor all_images = adopt(std::move(data.train.images), {n, kImagePixels}, at::kFloat);
    at::Tensor all_labels = adopt(std::move(data.train.labels), {n}, at::kLong);
    at::Tensor index = adopt(std::move(mine), {shard_samples}, at::kLong);
    train_images = all_images.index_select(0, index).to(device);
    train_labels = all_labels.index_select(0, index).to(device);
  }
  const std::int64_t test_n = data.test.samples;
  test_images = adopt(std::move(data.test.images), {test_n, kImagePixels}, at::kFloat).to(device);
  test_labels = adopt(std::move(data.test.labels), {test_n}, at::kLong).to(device);

  // Model: flat buffers, initial values from the cluster seed (identical on every node).
  flat = std::make_unique<FlatParameters>(layout, device);
  if (host_is_live()) {
    host_parameters = flat->values();
    host_gradients = flat->gradients();
  } else {
    const auto pinned = at::TensorOptions().dtype(at::kFloat).pinned_memory(true);
    host_parameters = at::zeros({layout.total_floats}, pinned);
    host_gradients = at::zeros({layout.total_floats}, pinned);
  }
  initialise_parameters(layout, shard.seed,
                        std::span(host_parameters.data_ptr<float>(),
                                  static_cast<std::size_t>(layout.total_floats)));
  if (!host_is_live()) flat->values().copy_(host_parameters);
  if (DenseBackprop::supports(kind)) dense = std::make_unique<DenseBackprop>(*flat, spec.batch_size);

  sgd = std::make_unique<FusedSgd>(
      SgdOptions{.momentum = spec.momentum, .weight_decay = spec.weight_decay,
                 .nesterov = spec.nesterov},
      flat->values(), flat->gradients(), layout.trainable_floats);
  steps_per_epoch = (average_shard + spec.batch_size - 1) / spec.batch_size;
  total_steps = static_cast<std::int64_t>(
      std::ceil(spec.epochs * static_cast<double>(steps_per_epoch) - 1e-9));
  if (spec.max_steps > 0) total_steps = std::min(total_steps, spec.max_steps);
  total_steps = std::max<std::int64_t>(total_steps, 1);
  schedule = std::make_unique<LearningRateSchedule>(spec, steps_per_epoch, total_steps);
  order = std::make_unique<DataOrder>(shard_samples, shard.seed, shard.index);
}

Trainer::Trainer(const topology::TrainingSpec& spec, NodeShard shard)
    : impl_(std::make_unique<Impl>(spec, shard)) {}

Trainer::~Trainer() = default;

const std::string& Trainer::device() const { return impl_->device_name; }
std::uint64_t Trainer::fingerprint() const { return impl_->fingerprint; }
std::size_t Trainer::parameter_count() const {
  return static_cast<std::size_t>(impl_->layout.total_floats);
}
std::size_t Trainer::shard_size() const {
  return static_cast<std::size_t>(impl_->order->shard_size());
}
std::int64_t Trainer::steps_per_epoch() const { return impl_->steps_per_epoch; }
std::int64_t Trainer::total_steps() const { return impl_->total_steps; }
bool Trainer::finished() const { return impl_->step >= impl_->total_steps; }
std::int64_t Trainer::step_count() const { return impl_->step; }

void Trainer::advance_to_step(std::int64_t target) {
  Impl& s = *impl_;
  if (s.gradients_pending) {
    throw std::logic_error("Trainer::advance_to_step() between compute_gradients() and apply_gradients()");
  }
  if (target < s.step) {
    throw std::invalid_argument("Trainer::advance_to_step(" + std::to_string(target) +
                                ") is behind step " + std::to_string(s.step));
  }
  // The data order is defined by the batches drawn (an epoch's last batch may be short), so
  // draw them: cheap next to training, and exactly the position an uninterrupted run reaches.
  for (; s.step < target; ++s.step) s.order->next_batch(s.spec.batch_size);
}

void Trainer::reset_optimizer_state() { impl_->sgd->reset_momentum(); }
double Trainer::epoch() const { return impl_->order->fractional_epoch(); }
double Trainer::lr() const { return impl_->schedule->at(impl_->step); }
std::int64_t Trainer::samples_seen() const { return impl_->samples_seen; }

double Trainer::compute_gradients() {
  Impl& s = *impl_;
  const std::span<const std::int64_t> batch = s.order->next_batch(s.spec.batch_size);
  const auto count = static_cast<std::int64_t>(batch.size());
  // The index tensor borrows the DataOrder's memory only for the index_select below.
  at::Tensor index = at::from_blob(const_cast<std::int64_t*>(batch.data()), {count},
                                   at::TensorOptions().dtype(at::kLong));
  if (!s.device.is_cpu()) index = index.to(s.device);
  const at::Tensor images = s.train_images.index_select(0, index);
  const at::Tensor labels = s.train_labels.index_select(0, index);

  if (s.dense) {
    s.pending_loss = s.dense->forward_backward(images, labels);
  } else {
    s.flat->zero_gradients();  // autograd accumulates into the gradient views
    at::Tensor loss =
        at::cross_entropy_loss(model_forward(s.layout.kind, s.flat->tensors(), images), labels);
    loss.backward();
    s.pending_loss = loss.item<double>();
  }
  s.pending_samples = count;
  s.gradients_pending = true;
  return s.pending_loss;
}

StepResult Trainer::apply_gradients() {
  Impl& s = *impl_;
  if (!s.gradients_pending) {
    throw std::logic_error("Trainer::apply_gradients() without compute_gradients() before it");
  }
  const double lr = s.schedule->at(s.step);
  s.sgd->step(lr);
  s.gradients_pending = false;
  ++s.step;
  s.samples_seen += s.pending_samples;
  return StepResult{.loss = s.pending_loss,
                    .step = s.step,
                    .epoch = s.order->fractional_epoch(),
                    .lr = lr,
                    .samples = s.pending_samples};
}

StepResult Trainer::step() {
  compute_gradients();
  return apply_gradients();
}

std::span<float> Trainer::parameters() {
  return {impl_->host_parameters.data_ptr<float>(), parameter_count()};
}
std::span<float> Trainer::gradients() {
  return {impl_->host_gradients.data_ptr<float>(), parameter_count()};
}
void Trainer::pull_parameters() {
  if (!impl_->host_is_live()) impl_->host_parameters.copy_(impl_->flat->values());
}
void Trainer::push_parameters() {
  if (!impl_->host_is_live()) impl_->flat->values().copy_(impl_->host_parameters);
}
void Trainer::pull_gradients() {
  if (!impl_->host_is_live()) impl_->host_gradients.copy_(impl_->flat->gradients());
}
void Trainer::push_gradients() {
  if (!impl_->host_is_live()) impl_->flat->gradients().copy_(impl_->host_gradients);
}

EvalResult Trainer::evaluate() {
  Impl& s = *impl_;
  const auto start = std::chrono::steady_clock::now();
  at::InferenceMode no_autograd;
  const std::int64_t n = s.test_images.size(0);
  at::Tensor loss_sum = at::zeros({}, s.test_images.options().dtype(at::kDouble));
  at::Tensor correct = at::zeros({}, s.test_labels.options());
  for (std::int64_t begin = 0; begin < n; begin += s.spec.eval_batch_size) {
    const std::int64_t size = std::min(s.spec.eval_batch_size, n - begin);
    const at::Tensor images = s.test_images.narrow(0, begin, size);
    const at::Tensor labels = s.test_labels.narrow(0, begin, size);
    const at::Tensor logits = model_forward(s.layout.kind, s.flat->tensors(), images);
    loss_sum += at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).to(at::kDouble);
    correct += logits.argmax(1).eq(labels).sum();
  }
  EvalResult result;
  result.samples = n;
  result.loss = loss_sum.item<double>() / static_cast<double>(n);
  result.accuracy = static_cast<double>(correct.item<std::int64_t>()) / static_cast<double>(n);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

EvalResult Trainer::evaluate_parameters(std::span<const float> parameters) {
  if (parameters.size() != parameter_count()) {
    throw std::invalid_argument("Trainer::evaluate_parameters: " +
                                std::to_string(parameters.size()) + " floats for a model of " +
                                std::to_string(parameter_count()));
  }
  const at::Tensor& live = impl_->flat->values();
  const at::Tensor saved = live.clone();
  // Restores the live parameters however evaluation ends.
  struct Restore {
    const at::Tensor& live;
    const at::Tensor& saved;
    ~Restore() { live.copy_(saved); }
  } restore{live, saved};
  const at::Tensor candidate =
      at::from_blob(const_cast<float*>(parameters.data()),
                    {static_cast<std::int64_t>(parameters.size())},
                    at::TensorOptions().dtype(at::kFloat));
  // A caller may pass the live span itself (parameters()); copying it onto itself is skipped.
  if (!(live.is_cpu() && live.data_ptr<float>() == parameters.data())) live.copy_(candidate);
  return evaluate();
}

}  // namespace starling::training
