// The fused ReLU + 2x2 max-pool against LibTorch's relu and max_pool2d, values and gradients.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <c10/core/GradMode.h>  // NoGradGuard (at:: no longer has it in LibTorch 2)

#include <limits>

#include "training/relu_max_pool.h"

namespace starling::training {
namespace {

void expect_matches_reference(const at::Tensor& data) {
  const at::Tensor fused_in = data.clone().set_requires_grad(true);
  const at::Tensor reference_in = data.clone().set_requires_grad(true);
  const at::Tensor fused = relu_max_pool2x2(fused_in);
  const at::Tensor reference = at::max_pool2d(at::relu(reference_in), {2, 2});
  ASSERT_EQ(fused.sizes(), reference.sizes());
  EXPECT_TRUE(at::equal(fused, reference));
  const at::Tensor upstream = at::randn(fused.sizes());
  fused.backward(upstream);
  reference.backward(upstream);
  EXPECT_TRUE(at::equal(fused_in.grad(), reference_in.grad()));
}

TEST(ReluMaxPool, MatchesReluThenMaxPool) {
  at::manual_seed(9);
  expect_matches_reference(at::randn({3, 5, 24, 24}));
  expect_matches_reference(at::randn({2, 64, 8, 8}));
}

TEST(ReluMaxPool, ZerosAndNegativeWindowsPassNoGradient) {
  // Real conv outputs after ReLU have many exact zeros; windows of zeros and negatives must get
  // no gradient, as ReLU gives none.
  at::Tensor data = at::randn({2, 3, 8, 8});
  data.narrow(2, 0, 4).zero_();
  data.narrow(3, 4, 4).fill_(-1.0f);
  expect_matches_reference(data);
}

TEST(ReluMaxPool, NanPropagatesLikeMaxPool) {
  at::Tensor data = at::randn({1, 1, 4, 4});
  data[0][0][1][1] = std::numeric_limits<float>::quiet_NaN();
  c10::NoGradGuard no_grad;
  const at::Tensor fused = relu_max_pool2x2(data);
  EXPECT_TRUE(std::isnan(fused[0][0][0][0].item<float>()));
  EXPECT_FALSE(std::isnan(fused[0][0][1][1].item<float>()));
}

TEST(ReluMaxPool, FallsBackForOddSizes) {
  at::manual_seed(4);
  expect_matches_reference(at::randn({2, 3, 7, 9}));
}

}  // namespace
}  // namespace starling::training
