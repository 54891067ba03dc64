#include "training/model_forward.h"

#include <ATen/ATen.h>

#include "training/relu_max_pool.h"

namespace starling::training {
namespace {

at::Tensor logreg(const std::vector<at::Tensor>& t, const at::Tensor& x) {
  return at::linear(x, t[0], t[1]);
}

// 784-256-256-10 with ReLU. relu_ works in place on the linear output, which autograd allows
// because ReLU's backward needs only its result.
at::Tensor mlp(const std::vector<at::Tensor>& t, const at::Tensor& x) {
  at::Tensor h = at::linear(x, t[0], t[1]).relu_();
  h = at::linear(h, t[2], t[3]).relu_();
  return at::linear(h, t[4], t[5]);
}

// conv5x5(32) -> ReLU -> maxpool2 -> conv5x5(64) -> ReLU -> maxpool2 -> fc128 -> ReLU -> fc10,
// valid (unpadded) convolutions. ReLU and pooling run as one op (relu_max_pool.h).
at::Tensor cnn(const std::vector<at::Tensor>& t, const at::Tensor& x) {
  at::Tensor h = x.view({-1, 1, kImageSide, kImageSide});
  h = relu_max_pool2x2(at::conv2d(h, t[0], t[1]));
  h = relu_max_pool2x2(at::conv2d(h, t[2], t[3]));
  h = at::linear(h.flatten(1), t[4], t[5]).relu_();
  return at::linear(h, t[6], t[7]);
}

}  // namespace

at::Tensor model_forward(ModelKind kind, const std::vector<at::Tensor>& tensors,
                         const at::Tensor& images) {
  switch (kind) {
    case ModelKind::logreg:
      return logreg(tensors, images);
    case ModelKind::mlp:
      return mlp(tensors, images);
    case ModelKind::cnn:
      return cnn(tensors, images);
  }
  throw std::logic_error("model_forward: unknown model kind");
}

}  // namespace starling::training
