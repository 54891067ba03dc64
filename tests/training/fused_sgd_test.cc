// The fused SGD over flat buffers against LibTorch's own torch::optim::SGD, per parameter.
#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include "training/fused_sgd.h"

namespace starling::training {
namespace {

struct Case {
  const char* name;
  double momentum;
  double weight_decay;
  bool nesterov;
  SgdOptions::Kernel kernel;
};

class FusedSgdTest : public ::testing::TestWithParam<Case> {};

TEST_P(FusedSgdTest, MatchesTorchOptimSgd) {
  const Case c = GetParam();
  const std::vector<std::vector<std::int64_t>> shapes = {{7, 5}, {5}, {3, 2, 4}, {1}};
  torch::manual_seed(11);
  std::int64_t total = 0;
  for (const auto& s : shapes) total += c10::multiply_integers(s);
  at::Tensor values = torch::randn({total});
  at::Tensor gradients = torch::zeros({total});
  // Reference: separate parameter tensors with the same values, stepped by torch::optim::SGD.
  std::vector<at::Tensor> reference;
  std::int64_t offset = 0;
  for (const auto& s : shapes) {
    const std::int64_t n = c10::multiply_integers(s);
    reference.push_back(values.narrow(0, offset, n).view(s).clone().set_requires_grad(true));
    offset += n;
  }
  torch::optim::SGD torch_sgd(reference, torch::optim::SGDOptions(0.1)
                                             .momentum(c.momentum)
                                             .weight_decay(c.weight_decay)
                                             .nesterov(c.nesterov));
  FusedSgd fused({.momentum = c.momentum, .weight_decay = c.weight_decay,
                  .nesterov = c.nesterov, .kernel = c.kernel},
                 values, gradients, total);
  for (int step = 0; step < 6; ++step) {
    const double lr = 0.1 / (step + 1);  // a changing rate, as a schedule gives
    static_cast<torch::optim::SGDOptions&>(torch_sgd.param_groups()[0].options()).lr(lr);
    const at::Tensor g = torch::randn({total});
    gradients.copy_(g);
    offset = 0;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const std::int64_t n = reference[i].numel();
      reference[i].mutable_grad() = g.narrow(0, offset, n).view(shapes[i]).clone();
      offset += n;
    }
    torch_sgd.step();
    fused.step(lr);
    offset = 0;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const std::int64_t n = reference[i].numel();
      EXPECT_TRUE(torch::allclose(values.narrow(0, offset, n).view(shapes[i]),
                                  reference[i].detach(), 1e-5, 1e-6))
          << c.name << " step " << step << " tensor " << i;
      offset += n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, FusedSgdTest,
    ::testing::Values(Case{"plain", 0.0, 0.0, false, SgdOptions::Kernel::automatic},
                      Case{"weight_decay", 0.0, 0.01, false, SgdOptions::Kernel::automatic},
                      Case{"momentum", 0.9, 0.0, false, SgdOptions::Kernel::automatic},
                      Case{"momentum_decay", 0.9, 5e-4, false, SgdOptions::Kernel::automatic},
                      Case{"nesterov", 0.9, 5e-4, true, SgdOptions::Kernel::automatic},
                      Case{"tensor_ops_momentum", 0.9, 5e-4, false,
                           SgdOptions::Kernel::tensor_ops},
                      Case{"tensor_ops_nesterov", 0.8, 1e-3, true, SgdOptions::Kernel::tensor_ops},
                      Case{"tensor_ops_plain", 0.0, 1e-3, false, SgdOptions::Kernel::tensor_ops}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(FusedSgd, OnlyTheTrainablePrefixMoves) {
  at::Tensor values = torch::ones({10});
  at::Tensor gradients = torch::ones({10});
  FusedSgd sgd({.momentum = 0.5}, values, gradients, 6);
  sgd.step(0.5);
  EXPECT_TRUE(torch::equal(values.narrow(0, 0, 6), torch::full({6}, 0.5f)));
  EXPECT_TRUE(torch::equal(values.narrow(0, 6, 4), torch::ones({4})));
}

}  // namespace
}  // namespace starling::training
