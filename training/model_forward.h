#pragma once
// Forward passes of the architectures in model_layout.h, written directly against ATen ops over
// the flat buffer's tensor views (no torch::nn modules: the layout owns names and storage).
#include <ATen/Tensor.h>

#include <vector>

#include "training/model_layout.h"

namespace starling::training {

// images: [batch, 784] float; tensors: in layout order. Returns [batch, 10] logits.
at::Tensor model_forward(ModelKind kind, const std::vector<at::Tensor>& tensors,
                         const at::Tensor& images);

}  // namespace starling::training
