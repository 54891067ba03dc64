#include "training/relu_max_pool.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace starling::training {
namespace {

// Position of the maximum in its 2x2 window: 0..3 in row-major order, or kNoGradient where
// the pooled value is not positive (ReLU passes no gradient there).
constexpr std::uint8_t kNoGradient = 0xFF;

bool fused_path_applies(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 &&
         x.is_contiguous() && x.size(2) % 2 == 0 && x.size(3) % 2 == 0;
}

// One output row of pooled values and winning positions, without NaN handling. Written with
// min/max and integer arithmetic only, so it compiles to straight-line (vectorisable) code:
// which element wins is data dependent, and a branchy loop (like LibTorch's) spends most of
// its time on mispredictions. Returns whether the row's inputs hold a NaN.
bool pool_row(const float* __restrict row0, const float* __restrict row1, float* __restrict out,
              std::uint8_t* __restrict where, std::int64_t out_w) {
  int nan_seen = 0;
  for (std::int64_t j = 0; j < out_w; ++j) {
    const float a = row0[2 * j], b = row0[2 * j + 1], c = row1[2 * j], d = row1[2 * j + 1];
    // The first maximum in row-major order wins ties, as in max_pool2d.
    const int b_wins = b > a;
    const int d_wins = d > c;
    const float top = std::max(a, b);
    const float bottom = std::max(c, d);
    const int bottom_wins = bottom > top;
    const float best = std::max(top, bottom);
    const int at = b_wins + bottom_wins * (2 + d_wins - b_wins);
    const int positive = best > 0.0f;
    out[j] = std::max(best, 0.0f);
    where[j] = static_cast<std::uint8_t>(at | ((1 - positive) * kNoGradient));
    nan_seen |= (a != a) | (b != b) | (c != c) | (d != d);
  }
  return nan_seen != 0;
}

// The same for a row with a NaN: the output is NaN where its window has one, as in max_pool2d.
void pool_row_with_nan(const float* row0, const float* row1, float* out, std::uint8_t* where,
                       std::int64_t out_w) {
  for (std::int64_t j = 0; j < out_w; ++j) {
    const float window[4] = {row0[2 * j], row0[2 * j + 1], row1[2 * j], row1[2 * j + 1]};
    for (std::uint8_t k = 0; k < 4; ++k) {
      if (std::isnan(window[k])) {
        out[j] = window[k];
        where[j] = k;
        break;
      }
    }
  }
}

// out[p, i, j] = max(0, max of the 2x2 window at (2i, 2j) of plane p); where[...] is the
// window position (0..3, row-major) of that maximum, or kNoGradient where it is <= 0.
void pool_forward(const float* in, float* out, std::uint8_t* where, std::int64_t planes,
                  std::int64_t height, std::int64_t width) {
  const std::int64_t out_h = height / 2, out_w = width / 2;
  for (std::int64_t p = 0; p < planes; ++p) {
    const float* plane = in + p * height * width;
    for (std::int64_t i = 0; i < out_h; ++i) {
      const float* row0 = plane + (2 * i) * width;
      const float* row1 = row0 + width;
      if (pool_row(row0, row1, out, where, out_w)) {
        pool_row_with_nan(row0, row1, out, where, out_w);
      }
      out += out_w;
      where += out_w;
    }
  }
}

void pool_backward(const float* grad_out, const std::uint8_t* where, float* grad_in,
                   std::int64_t planes, std::int64_t height, std::int64_t width) {
  const std::int64_t out_h = height / 2, out_w = width / 2;
  for (std::int64_t p = 0; p < planes; ++p) {
    float* plane = grad_in + p * height * width;
    for (std::int64_t i = 0; i < out_h; ++i) {
      for (std::int64_t j = 0; j < out_w; ++j) {
        const std::uint8_t k = *where++;
        const float g = *grad_out++;
        if (k == kNoGradient) continue;
        plane[(2 * i + k / 2) * width + 2 * j + k % 2] = g;
      }
    }
  }
}

struct ReluMaxPool2x2 : public torch::autograd::Function<ReluMaxPool2x2> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    const std::int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
    at::Tensor output = at::empty({n, c, h / 2, w / 2}, input.options());
    at::Tensor where = at::empty({n, c, h / 2, w / 2}, input.options().dtype(at::kByte));
    pool_forward(input.data_ptr<float>(), output.data_ptr<float>(),
                 where.data_ptr<std::uint8_t>(), n * c, h, w);
    if (input.requires_grad()) {
      ctx->save_for_backward({where});
      ctx->saved_data["height"] = h;
      ctx->saved_data["width"] = w;
    }
    return output;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const at::Tensor where = ctx->get_saved_variables()[0];
    const std::int64_t h = ctx->saved_data["height"].toInt();
    const std::int64_t w = ctx->saved_data["width"].toInt();
    const at::Tensor grad_out = grad_outputs[0].contiguous();
    at::Tensor grad_in = at::zeros({where.size(0), where.size(1), h, w}, grad_out.options());
    pool_backward(grad_out.data_ptr<float>(), where.data_ptr<std::uint8_t>(),
                  grad_in.data_ptr<float>(), where.size(0) * where.size(1), h, w);
    return {grad_in};
  }
};

}  // namespace

at::Tensor relu_max_pool2x2(const at::Tensor& input) {
  if (!fused_path_applies(input)) return at::max_pool2d(at::relu(input), {2, 2});
  return ReluMaxPool2x2::apply(input);
}

}  // namespace starling::training
