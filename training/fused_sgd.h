#pragma once
// SGD with momentum, Nesterov and weight decay as one fused update over the flat buffers,
// with the semantics of torch.optim.SGD (dampening 0):
//   d = g + weight_decay * p
//   b = momentum * b + d                       (b starts at zero, so the first b is d)
//   d = nesterov ? d + momentum * b : b
//   p = p - lr * d
// On the CPU this is one pass over memory in a loop the compiler vectorises, instead of
// several tensor ops per parameter tensor; elsewhere it is a few tensor ops over the whole
// buffer. Only the trainable prefix of the buffers is updated (model_layout.h).
#include <ATen/Tensor.h>

#include <cstdint>

namespace starling::training {

struct SgdOptions {
  double momentum = 0;
  double weight_decay = 0;
  bool nesterov = false;
  // The tensor-op kernel is what runs off the CPU; tests force it on the CPU to check its math
  // on a machine without a GPU.
  enum class Kernel { automatic, tensor_ops } kernel = Kernel::automatic;
};

class FusedSgd {
 public:
  // values and gradients: the flat buffers; the first `trainable` floats are updated.
  FusedSgd(SgdOptions options, at::Tensor values, at::Tensor gradients, std::int64_t trainable);

  void step(double lr);

  // [trainable] floats, on the buffers' device; zero until the first step.
  const at::Tensor& momentum_buffer() const { return momentum_; }
  // Back to the state before the first step: the next step's buffer is its own update.
  void reset_momentum() { momentum_.zero_(); }

 private:
  void step_cpu(float lr);
  void step_tensor_ops(double lr);

  SgdOptions options_;
  at::Tensor values_;
  at::Tensor gradients_;
  at::Tensor momentum_;
  std::int64_t trainable_;
};

}  // namespace starling::training
