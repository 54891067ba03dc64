#pragma once
// FlatParameters: every tensor of a model as a view into ONE contiguous float tensor, and every
// gradient as a view into a second one with the same layout (model_layout.h).
//
// Invariants:
//  - tensors()[i] shares storage with values() at layout.tensors[i].offset; writing into
//    values() (or its host span) changes what the model computes, with no copy step.
//  - each trainable tensor's .grad() is the matching view of gradients(). Autograd accumulates
//    into an existing .grad() in place (`grad += new_grad` when not building a double-backward
//    graph), so backward() fills gradients() directly. zero_gradients() zeroes the buffer and
//    never drops the views (dropping them would make autograd allocate fresh, unshared grads).
//  - tensors are leaves: set_data() rebinds their storage, so they are not autograd views of
//    the flat buffer and in-place writes to it between steps are legal.
#include <ATen/Tensor.h>

#include <vector>

#include "training/model_layout.h"

namespace starling::training {

class FlatParameters {
 public:
  FlatParameters(const ModelLayout& layout, at::Device device);

  const ModelLayout& layout() const { return layout_; }
  const at::Tensor& values() const { return values_; }
  const at::Tensor& gradients() const { return gradients_; }
  const std::vector<at::Tensor>& tensors() const { return tensors_; }

  void zero_gradients();
  // True if every trainable tensor's grad still aliases the gradient buffer at its offset.
  bool gradients_are_bound() const;

 private:
  ModelLayout layout_;
  at::Tensor values_;
  at::Tensor gradients_;
  std::vector<at::Tensor> tensors_;
};

}  // namespace starling::training
