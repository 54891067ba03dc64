#include "training/fused_sgd.h"

#include <ATen/ATen.h>

#include "training/trainer.h"

namespace starling::training {
namespace {

// The three loops differ only in constants, but each is kept branch-free in its body so the
// compiler vectorises it. Pointers do not alias (three distinct buffers).
//
// On x86-64 GCC also builds AVX2 and AVX-512 versions and picks one at load time (the default
// build targets plain SSE2); the arithmetic per element is the same in each (no FMA contraction
// under -std=c++20), so results do not depend on the machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define STARLING_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STARLING_VECTOR_CLONES
#endif

STARLING_VECTOR_CLONES
void sgd_plain(float* __restrict p, const float* __restrict g, std::int64_t n, float lr,
               float wd) {
  for (std::int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
}

STARLING_VECTOR_CLONES
void sgd_momentum(float* __restrict p, const float* __restrict g, float* __restrict b,
                  std::int64_t n, float lr, float wd, float mu) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    const float v = mu * b[i] + d;
    b[i] = v;
    p[i] -= lr * v;
  }
}

STARLING_VECTOR_CLONES
void sgd_nesterov(float* __restrict p, const float* __restrict g, float* __restrict b,
                  std::int64_t n, float lr, float wd, float mu) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    const float v = mu * b[i] + d;
    b[i] = v;
    p[i] -= lr * (d + mu * v);
  }
}

}  // namespace

FusedSgd::FusedSgd(SgdOptions options, at::Tensor values, at::Tensor gradients,
                   std::int64_t trainable)
    : options_(options),
      values_(std::move(values)),
      gradients_(std::move(gradients)),
      trainable_(trainable) {
  if (options_.nesterov && options_.momentum <= 0) {
    throw TrainingError("training.nesterov: needs momentum > 0");
  }
  if (options_.momentum < 0 || options_.weight_decay < 0) {
    throw TrainingError("training.momentum and training.weight_decay must be >= 0");
  }
  if (!values_.is_contiguous() || !gradients_.is_contiguous() ||
      values_.numel() != gradients_.numel() || trainable_ > values_.numel()) {
    throw std::logic_error("FusedSgd: buffers must be contiguous and of one layout");
  }
  momentum_ = at::zeros({trainable_}, values_.options());
}

void FusedSgd::step(double lr) {
  if (values_.device().is_cpu() && options_.kernel == SgdOptions::Kernel::automatic) {
    step_cpu(static_cast<float>(lr));
  } else {
    step_tensor_ops(lr);
  }
}

void FusedSgd::step_cpu(float lr) {
  float* p = values_.data_ptr<float>();
  const float* g = gradients_.data_ptr<float>();
  const auto wd = static_cast<float>(options_.weight_decay);
  const auto mu = static_cast<float>(options_.momentum);
  if (options_.momentum == 0) {
    sgd_plain(p, g, trainable_, lr, wd);
  } else if (options_.nesterov) {
    sgd_nesterov(p, g, momentum_.data_ptr<float>(), trainable_, lr, wd, mu);
  } else {
    sgd_momentum(p, g, momentum_.data_ptr<float>(), trainable_, lr, wd, mu);
  }
}

// Whole-buffer tensor ops (used on CUDA). Weight decay is folded into the gradient buffer,
// which the next compute_gradients() zeroes anyway.
void FusedSgd::step_tensor_ops(double lr) {
  at::Tensor p = values_.narrow(0, 0, trainable_);
  at::Tensor d = gradients_.narrow(0, 0, trainable_);
  if (options_.weight_decay != 0) d.add_(p, options_.weight_decay);
  if (options_.momentum == 0) {
    p.add_(d, -lr);
    return;
  }
  momentum_.mul_(options_.momentum).add_(d);
  if (options_.nesterov) {
    d.add_(momentum_, options_.momentum);
    p.add_(d, -lr);
  } else {
    p.add_(momentum_, -lr);
  }
}

}  // namespace starling::training
