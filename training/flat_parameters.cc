#include "training/flat_parameters.h"

#include <ATen/ATen.h>

namespace starling::training {
namespace {

at::Tensor view_of(const at::Tensor& flat, const TensorSlot& slot) {
  return flat.narrow(0, slot.offset, slot.numel).view(slot.shape);
}

}  // namespace

FlatParameters::FlatParameters(const ModelLayout& layout, at::Device device) : layout_(layout) {
  const auto options = at::TensorOptions().dtype(at::kFloat).device(device);
  values_ = at::zeros({layout_.total_floats}, options);
  gradients_ = at::zeros({layout_.total_floats}, options);
  tensors_.reserve(layout_.tensors.size());
  for (const TensorSlot& slot : layout_.tensors) {
    // A fresh leaf whose storage is then pointed at the flat buffer.
    at::Tensor tensor = at::empty(slot.shape, options);
    tensor.set_data(view_of(values_, slot));
    if (slot.trainable) {
      tensor.set_requires_grad(true);
      tensor.mutable_grad() = view_of(gradients_, slot);
    }
    tensors_.push_back(std::move(tensor));
  }
}

void FlatParameters::zero_gradients() { gradients_.zero_(); }

bool FlatParameters::gradients_are_bound() const {
  const float* base = gradients_.data_ptr<float>();
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const TensorSlot& slot = layout_.tensors[i];
    if (!slot.trainable) continue;
    const at::Tensor& grad = tensors_[i].grad();
    if (!grad.defined() || grad.data_ptr<float>() != base + slot.offset) return false;
  }
  return true;
}

}  // namespace starling::training
