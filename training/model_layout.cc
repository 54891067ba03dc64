#include "training/model_layout.h"

#include <cmath>

#include "training/checksum.h"
#include "training/rng.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

constexpr std::uint64_t kInitialisationTag = 0x1417;

TensorSlot slot(std::string name, std::vector<std::int64_t> shape, std::int64_t fan_in) {
  TensorSlot s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.fan_in = fan_in;
  return s;
}

// A linear layer in PyTorch's convention: weight [out, in], bias [out].
void add_linear(std::vector<TensorSlot>& out, const std::string& name, std::int64_t in,
                std::int64_t units) {
  out.push_back(slot(name + ".weight", {units, in}, in));
  out.push_back(slot(name + ".bias", {units}, in));
}

// A convolution: weight [out_channels, in_channels, k, k], bias [out_channels].
void add_conv(std::vector<TensorSlot>& out, const std::string& name, std::int64_t in_channels,
              std::int64_t out_channels, std::int64_t kernel) {
  const std::int64_t fan_in = in_channels * kernel * kernel;
  out.push_back(slot(name + ".weight", {out_channels, in_channels, kernel, kernel}, fan_in));
  out.push_back(slot(name + ".bias", {out_channels}, fan_in));
}

}  // namespace

ModelKind model_kind_from_name(const std::string& name) {
  if (name == "logreg") return ModelKind::logreg;
  if (name == "mlp") return ModelKind::mlp;
  if (name == "cnn") return ModelKind::cnn;
  throw TrainingError("training.model: \"" + name +
                      "\" is not a model; use \"logreg\", \"mlp\" or \"cnn\"");
}

std::string to_string(ModelKind kind) {
  switch (kind) {
    case ModelKind::logreg:
      return "logreg";
    case ModelKind::mlp:
      return "mlp";
    case ModelKind::cnn:
      return "cnn";
  }
  return "unknown";
}

ModelLayout pack_layout(ModelKind kind, std::vector<TensorSlot> tensors) {
  ModelLayout layout;
  layout.kind = kind;
  bool seen_buffer = false;
  for (TensorSlot& t : tensors) {
    if (t.trainable && seen_buffer) {
      throw std::logic_error("model layout: trainable tensor " + t.name +
                             " after a buffer breaks the trainable-prefix invariant");
    }
    seen_buffer = seen_buffer || !t.trainable;
    t.numel = 1;
    for (std::int64_t d : t.shape) t.numel *= d;
    t.offset = layout.total_floats;
    layout.total_floats += t.numel;
    if (t.trainable) layout.trainable_floats += t.numel;
  }
  layout.tensors = std::move(tensors);
  return layout;
}

ModelLayout model_layout(ModelKind kind) {
  std::vector<TensorSlot> tensors;
  switch (kind) {
    case ModelKind::logreg:
      add_linear(tensors, "linear", kImagePixels, kClasses);
      break;
    case ModelKind::mlp:
      add_linear(tensors, "fc1", kImagePixels, 256);
      add_linear(tensors, "fc2", 256, 256);
      add_linear(tensors, "fc3", 256, kClasses);
      break;
    case ModelKind::cnn: {
      // Valid 5x5 convolutions and 2x2 pooling: 28 -> 24 -> 12 -> 8 -> 4, so fc1 sees 64*4*4.
      add_conv(tensors, "conv1", 1, 32, 5);
      add_conv(tensors, "conv2", 32, 64, 5);
      add_linear(tensors, "fc1", 64 * 4 * 4, 128);
      add_linear(tensors, "fc2", 128, kClasses);
      break;
    }
  }
  return pack_layout(kind, std::move(tensors));
}

std::uint64_t layout_fingerprint(const ModelLayout& layout) {
  Fnv1a64 hash;
  hash.update(std::uint64_t{layout.tensors.size()});
  for (const TensorSlot& t : layout.tensors) {
    hash.update(t.name);
    hash.update(std::uint64_t{t.shape.size()});
    for (std::int64_t d : t.shape) hash.update(static_cast<std::uint64_t>(d));
    hash.update(std::string_view("float32"));
    hash.update(std::uint64_t{t.trainable ? 1u : 0u});
  }
  return hash.value();
}

void initialise_parameters(const ModelLayout& layout, std::uint64_t seed, std::span<float> out) {
  if (out.size() != static_cast<std::size_t>(layout.total_floats)) {
    throw std::logic_error("initialise_parameters: buffer of " + std::to_string(out.size()) +
                           " floats for a layout of " + std::to_string(layout.total_floats));
  }
  Rng rng = Rng::stream(seed, {kInitialisationTag});
  for (const TensorSlot& t : layout.tensors) {
    std::span<float> values = out.subspan(static_cast<std::size_t>(t.offset),
                                          static_cast<std::size_t>(t.numel));
    if (!t.trainable || t.fan_in <= 0) {
      std::fill(values.begin(), values.end(), 0.0f);
      continue;
    }
    const double bound = 1.0 / std::sqrt(static_cast<double>(t.fan_in));
    for (float& v : values) v = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  }
}

}  // namespace starling::training
