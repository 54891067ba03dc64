#pragma once
// DenseBackprop: a hand-written forward and backward pass for the dense ReLU networks (logreg
// is the zero-hidden-layer case, mlp the two-hidden-layer one), used for training steps in
// place of autograd.
//
// Why: at small batches a step of these models is a handful of small GEMMs, and autograd's
// per-step costs (building the graph, allocating every intermediate and gradient, then adding
// each gradient into the flat buffer, transposed) are a large share of it. Here every
// intermediate lives in buffers allocated once, each weight gradient is written by one GEMM
// straight into its slot of the flat gradient buffer in the parameter's own layout, and the
// buffer needs no zeroing because every slot is overwritten.
//
// Contract (checked against autograd in tests): after forward_backward(), gradients() holds
// d(mean cross-entropy)/d(parameters) for the batch, and the returned loss is that mean.
#include <ATen/Tensor.h>

#include <vector>

#include "training/flat_parameters.h"

namespace starling::training {

class DenseBackprop {
 public:
  // Whether `kind` is a dense ReLU network this class computes.
  static bool supports(ModelKind kind);

  // `flat` must outlive this object. Buffers are sized for batches of up to max_batch.
  DenseBackprop(const FlatParameters& flat, std::int64_t max_batch);

  // images [n, 784] float, labels [n] int64, n <= max_batch; fills flat.gradients().
  double forward_backward(const at::Tensor& images, const at::Tensor& labels);

 private:
  struct Layer {
    at::Tensor weight;       // [out, in], a view of the flat parameters
    at::Tensor bias;         // [out]
    at::Tensor weight_grad;  // views of the flat gradient buffer, same shapes
    at::Tensor bias_grad;
    at::Tensor output;       // [max_batch, out]: pre-activation, then ReLU'd in place
    at::Tensor output_grad;  // [max_batch, out]
  };

  std::vector<Layer> layers_;
  at::Tensor log_probabilities_;  // [max_batch, classes]
  at::Tensor minus_ones_;         // [max_batch, 1] of -1, scattered onto the true classes
  std::int64_t max_batch_;
};

}  // namespace starling::training
