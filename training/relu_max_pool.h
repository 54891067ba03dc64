#pragma once
// relu_max_pool2x2(x) = max_pool2d(relu(x), 2): ReLU and 2x2/stride-2 max pooling as one op,
// for the cnn's two conv blocks.
//
// Why: in LibTorch 1.13 on the CPU, max_pool2d_with_indices on NCHW float runs a scalar loop
// that computes and stores a 64-bit index per output, and with the ReLU and its backward over
// the full-size conv output it was about a third of a cnn training step at batch 32. This op
// reads the conv output once, writes the pooled output and a one-byte position per output,
// and its backward scatters each gradient to that position. ReLU commutes with max, so the
// result equals relu-then-pool; where the pooled value is <= 0 the gradient is zero, as ReLU's.
//
// CPU, contiguous float32 NCHW with even H and W takes the fused path; anything else (CUDA,
// odd sizes) falls back to max_pool2d(relu(x)).
#include <ATen/Tensor.h>

namespace starling::training {

at::Tensor relu_max_pool2x2(const at::Tensor& input);

}  // namespace starling::training
