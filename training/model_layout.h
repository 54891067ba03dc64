#pragma once
// The architectures Starling trains, described without LibTorch: the name, shape and place of
// every tensor in the flat buffer. The forward passes (model_forward.h) read tensors in this
// order; the fingerprint and the initial values are computed from this description alone, so
// a node's fingerprint does not depend on which LibTorch it links.
//
// Flat buffer invariants: tensors are packed back to back in layout order with no gaps;
// trainable parameters come first, buffers (non-trained state) after them, so the optimizer
// updates exactly the prefix [0, trainable_floats).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace starling::training {

enum class ModelKind { logreg, mlp, cnn };

// Throws TrainingError naming training.model for an unknown name.
ModelKind model_kind_from_name(const std::string& name);
std::string to_string(ModelKind kind);

struct TensorSlot {
  std::string name;                 // e.g. "fc1.weight"
  std::vector<std::int64_t> shape;  // e.g. {256, 784}
  std::int64_t offset = 0;          // first float in the flat buffer
  std::int64_t numel = 0;
  bool trainable = true;            // false: a buffer (no gradient, not decayed)
  std::int64_t fan_in = 0;          // inputs per output unit; sets the initial range
};

struct ModelLayout {
  ModelKind kind = ModelKind::mlp;
  std::vector<TensorSlot> tensors;
  std::int64_t total_floats = 0;
  std::int64_t trainable_floats = 0;
};

// All models take 28x28 single-channel images (flattened to 784) and output 10 logits.
constexpr std::int64_t kImagePixels = 784;
constexpr std::int64_t kImageSide = 28;
constexpr std::int64_t kClasses = 10;

ModelLayout model_layout(ModelKind kind);

// Builds a layout from (name, shape, fan_in, trainable) entries: computes offsets and totals and
// checks that trainable tensors precede buffers. Public so tests can build odd layouts.
ModelLayout pack_layout(ModelKind kind, std::vector<TensorSlot> tensors);

// 64-bit FNV-1a over every tensor's name, shape, dtype ("float32") and trainability, in order.
std::uint64_t layout_fingerprint(const ModelLayout& layout);

// Initial values: each trainable tensor uniform in +-1/sqrt(fan_in) (the range of PyTorch's
// default Linear/Conv initialisation), buffers zero. Drawn from the cluster seed with Rng, so
// every node starts from the same parameters. `out` must hold layout.total_floats floats.
void initialise_parameters(const ModelLayout& layout, std::uint64_t seed, std::span<float> out);

}  // namespace starling::training
