// The hand-written backward pass of dense networks against autograd.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "training/dense_backprop.h"
#include "training/model_forward.h"

namespace starling::training {
namespace {

class DenseBackpropTest : public ::testing::TestWithParam<ModelKind> {};

TEST_P(DenseBackpropTest, MatchesAutogradAndOverwritesTheGradientBuffer) {
  const ModelKind kind = GetParam();
  FlatParameters flat(model_layout(kind), at::kCPU);
  initialise_parameters(flat.layout(), 4,
                        std::span(flat.values().data_ptr<float>(),
                                  static_cast<std::size_t>(flat.values().numel())));
  DenseBackprop dense(flat, 32);
  at::manual_seed(5);
  for (std::int64_t n : {32, 7}) {  // a full batch and an epoch's short last batch
    const at::Tensor images = at::randn({n, kImagePixels});
    const at::Tensor labels = at::randint(kClasses, {n}, at::TensorOptions().dtype(at::kLong));
    // Reference: autograd on independent copies of the parameters.
    std::vector<at::Tensor> reference;
    for (const at::Tensor& t : flat.tensors()) {
      reference.push_back(t.detach().clone().set_requires_grad(true));
    }
    const at::Tensor loss =
        at::cross_entropy_loss(model_forward(kind, reference, images), labels);
    loss.backward();

    flat.gradients().fill_(123.0f);  // stale values must all be overwritten
    const double dense_loss = dense.forward_backward(images, labels);
    EXPECT_NEAR(dense_loss, loss.item<double>(), 1e-5) << "batch " << n;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      const TensorSlot& slot = flat.layout().tensors[i];
      const at::Tensor grad = flat.gradients().narrow(0, slot.offset, slot.numel).view(slot.shape);
      EXPECT_TRUE(at::allclose(grad, reference[i].grad(), 1e-4, 1e-6))
          << slot.name << " batch " << n << " max diff "
          << (grad - reference[i].grad()).abs().max().item<float>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, DenseBackpropTest,
                         ::testing::Values(ModelKind::logreg, ModelKind::mlp),
                         [](const auto& test_info) { return to_string(test_info.param); });

TEST(DenseBackprop, RefusesConvolutionalModels) {
  EXPECT_FALSE(DenseBackprop::supports(ModelKind::cnn));
  FlatParameters flat(model_layout(ModelKind::cnn), at::kCPU);
  EXPECT_THROW(DenseBackprop(flat, 8), std::logic_error);
}

}  // namespace
}  // namespace starling::training
