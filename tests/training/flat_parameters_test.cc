// The flat buffer: parameters are live views, autograd accumulates into the preallocated
// gradient views, and the optimizer keeps working after the buffer is written from outside.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <c10/core/GradMode.h>  // NoGradGuard (at:: no longer has it in LibTorch 2)

#include <cstring>

#include "training/flat_parameters.h"
#include "training/fused_sgd.h"
#include "training/model_forward.h"
#include "training/model_layout.h"

namespace starling::training {
namespace {

at::Tensor batch_images(std::int64_t n) {
  at::manual_seed(3);
  return at::randn({n, kImagePixels});
}

at::Tensor batch_labels(std::int64_t n) { return at::arange(n) % kClasses; }

void initialise(FlatParameters& flat, std::uint64_t seed) {
  initialise_parameters(flat.layout(), seed,
                        std::span(flat.values().data_ptr<float>(),
                                  static_cast<std::size_t>(flat.values().numel())));
}

// Independent leaf tensors holding the same values: the reference computation.
std::vector<at::Tensor> detached_copies(const FlatParameters& flat) {
  std::vector<at::Tensor> copies;
  for (std::size_t i = 0; i < flat.tensors().size(); ++i) {
    copies.push_back(flat.tensors()[i].detach().clone().set_requires_grad(
        flat.layout().tensors[i].trainable));
  }
  return copies;
}

at::Tensor loss_of(ModelKind kind, const std::vector<at::Tensor>& tensors, std::int64_t n = 16) {
  return at::cross_entropy_loss(model_forward(kind, tensors, batch_images(n)), batch_labels(n));
}

class FlatParametersTest : public ::testing::TestWithParam<ModelKind> {};

TEST_P(FlatParametersTest, TensorsAreViewsOfOneBuffer) {
  FlatParameters flat(model_layout(GetParam()), at::kCPU);
  const float* values = flat.values().data_ptr<float>();
  const float* grads = flat.gradients().data_ptr<float>();
  ASSERT_EQ(flat.tensors().size(), flat.layout().tensors.size());
  for (std::size_t i = 0; i < flat.tensors().size(); ++i) {
    const TensorSlot& slot = flat.layout().tensors[i];
    const at::Tensor& t = flat.tensors()[i];
    EXPECT_EQ(t.data_ptr<float>(), values + slot.offset) << slot.name;
    EXPECT_EQ(t.sizes(), at::IntArrayRef(slot.shape)) << slot.name;
    EXPECT_TRUE(t.is_leaf()) << slot.name;
    EXPECT_TRUE(t.requires_grad()) << slot.name;
    EXPECT_EQ(t.grad().data_ptr<float>(), grads + slot.offset) << slot.name;
  }
}

TEST_P(FlatParametersTest, WritingTheBufferChangesTheForwardPass) {
  FlatParameters flat(model_layout(GetParam()), at::kCPU);
  initialise(flat, 1);
  c10::NoGradGuard no_grad;
  const at::Tensor before = model_forward(GetParam(), flat.tensors(), batch_images(8));
  // Write new values through the raw pointer, as a sync algorithm writes through the span.
  float* values = flat.values().data_ptr<float>();
  for (std::int64_t i = 0; i < flat.values().numel(); ++i) values[i] *= 0.5f;
  const at::Tensor after = model_forward(GetParam(), flat.tensors(), batch_images(8));
  EXPECT_FALSE(at::allclose(before, after));
  const at::Tensor reference = model_forward(GetParam(), detached_copies(flat), batch_images(8));
  EXPECT_TRUE(at::equal(after, reference));
}

TEST_P(FlatParametersTest, AutogradAccumulatesIntoTheGradientViews) {
  FlatParameters flat(model_layout(GetParam()), at::kCPU);
  initialise(flat, 2);
  std::vector<at::Tensor> reference = detached_copies(flat);
  loss_of(GetParam(), reference).backward();

  // Twice, with zeroing in between: the views must survive both backward passes.
  for (int round = 0; round < 2; ++round) {
    flat.zero_gradients();
    loss_of(GetParam(), flat.tensors()).backward();
    ASSERT_TRUE(flat.gradients_are_bound()) << "autograd replaced a gradient view";
    for (std::size_t i = 0; i < reference.size(); ++i) {
      const TensorSlot& slot = flat.layout().tensors[i];
      const at::Tensor from_buffer =
          flat.gradients().narrow(0, slot.offset, slot.numel).view(slot.shape);
      EXPECT_TRUE(at::allclose(from_buffer, reference[i].grad(), 1e-5, 1e-7)) << slot.name;
    }
  }
  EXPECT_GT(flat.gradients().abs().sum().item<float>(), 0.0f);
}

TEST_P(FlatParametersTest, OptimizerKeepsWorkingAfterTheBufferIsWritten) {
  FlatParameters flat(model_layout(GetParam()), at::kCPU);
  initialise(flat, 3);
  FusedSgd sgd({.momentum = 0.9}, flat.values(), flat.gradients(),
               flat.layout().trainable_floats);
  for (int step = 0; step < 3; ++step) {
    flat.zero_gradients();
    loss_of(GetParam(), flat.tensors()).backward();
    sgd.step(0.05);
  }
  // An outside write (say, a gossip average) replaces the parameters between steps.
  at::Tensor replacement = flat.values().clone().mul_(0.9);
  std::memcpy(flat.values().data_ptr<float>(), replacement.data_ptr<float>(),
              static_cast<std::size_t>(replacement.numel()) * sizeof(float));
  // The next step starts from the written values: p' = p - lr * (mu * b + g).
  const at::Tensor momentum_before = sgd.momentum_buffer().clone();
  flat.zero_gradients();
  loss_of(GetParam(), flat.tensors()).backward();
  std::vector<at::Tensor> reference = detached_copies(flat);
  loss_of(GetParam(), reference).backward();
  const at::Tensor gradient = flat.gradients().clone();
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const TensorSlot& slot = flat.layout().tensors[i];
    EXPECT_TRUE(at::allclose(gradient.narrow(0, slot.offset, slot.numel).view(slot.shape),
                             reference[i].grad(), 1e-5, 1e-7))
        << "the gradient must come from the written values: " << slot.name;
  }
  sgd.step(0.05);
  const at::Tensor expected = replacement - 0.05 * (0.9 * momentum_before + gradient);
  EXPECT_TRUE(at::allclose(flat.values(), expected, 1e-5, 1e-6));
  EXPECT_TRUE(flat.gradients_are_bound());
}

INSTANTIATE_TEST_SUITE_P(Models, FlatParametersTest,
                         ::testing::Values(ModelKind::logreg, ModelKind::mlp, ModelKind::cnn),
                         [](const auto& test_info) { return to_string(test_info.param); });

TEST(FlatParameters, BuffersHaveNoGradientAndAreNotUpdated) {
  ModelLayout layout = pack_layout(
      ModelKind::logreg,
      {TensorSlot{.name = "w", .shape = {4, 3}, .fan_in = 3},
       TensorSlot{.name = "running_mean", .shape = {4}, .trainable = false}});
  FlatParameters flat(layout, at::kCPU);
  EXPECT_EQ(layout.trainable_floats, 12);
  EXPECT_EQ(layout.total_floats, 16);
  EXPECT_FALSE(flat.tensors()[1].requires_grad());
  EXPECT_EQ(flat.tensors()[1].data_ptr<float>(), flat.values().data_ptr<float>() + 12);
  flat.values().fill_(1.0f);
  flat.gradients().fill_(1.0f);
  FusedSgd sgd({.momentum = 0.9, .weight_decay = 0.1}, flat.values(), flat.gradients(),
               layout.trainable_floats);
  sgd.step(0.1);
  EXPECT_TRUE(at::all(flat.tensors()[1] == 1.0f).item<bool>());
  EXPECT_TRUE(at::all(flat.tensors()[0] < 1.0f).item<bool>());
  EXPECT_THROW(pack_layout(ModelKind::logreg,
                           {TensorSlot{.name = "b", .shape = {1}, .trainable = false},
                            TensorSlot{.name = "w", .shape = {1}, .fan_in = 1}}),
               std::logic_error);
}

TEST(ModelLayout, ShapesAndCounts) {
  EXPECT_EQ(model_layout(ModelKind::logreg).total_floats, 784 * 10 + 10);
  EXPECT_EQ(model_layout(ModelKind::mlp).total_floats,
            784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
  EXPECT_EQ(model_layout(ModelKind::cnn).total_floats,
            32 * 25 + 32 + 64 * 32 * 25 + 64 + 1024 * 128 + 128 + 128 * 10 + 10);
  for (ModelKind kind : {ModelKind::logreg, ModelKind::mlp, ModelKind::cnn}) {
    FlatParameters flat(model_layout(kind), at::kCPU);
    c10::NoGradGuard no_grad;
    EXPECT_EQ(model_forward(kind, flat.tensors(), batch_images(5)).sizes(),
              at::IntArrayRef({5, kClasses}));
  }
}

TEST(ModelLayout, FingerprintTracksNamesShapesAndKinds) {
  const auto logreg = layout_fingerprint(model_layout(ModelKind::logreg));
  const auto mlp = layout_fingerprint(model_layout(ModelKind::mlp));
  const auto cnn = layout_fingerprint(model_layout(ModelKind::cnn));
  EXPECT_NE(logreg, mlp);
  EXPECT_NE(mlp, cnn);
  EXPECT_EQ(mlp, layout_fingerprint(model_layout(ModelKind::mlp)));
  ModelLayout renamed = model_layout(ModelKind::mlp);
  renamed.tensors[0].name = "fc0.weight";
  EXPECT_NE(layout_fingerprint(renamed), mlp);
  ModelLayout reshaped = model_layout(ModelKind::mlp);
  reshaped.tensors[0].shape = {784, 256};
  EXPECT_NE(layout_fingerprint(reshaped), mlp);
}

TEST(ModelLayout, InitialisationIsSeededAndBounded) {
  const ModelLayout layout = model_layout(ModelKind::mlp);
  std::vector<float> a(static_cast<std::size_t>(layout.total_floats));
  std::vector<float> b(a.size()), c(a.size());
  initialise_parameters(layout, 7, a);
  initialise_parameters(layout, 7, b);
  initialise_parameters(layout, 8, c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const float bound = 1.0f / std::sqrt(784.0f);
  for (std::int64_t i = 0; i < 784 * 256; ++i) {
    ASSERT_LE(std::abs(a[static_cast<std::size_t>(i)]), bound);
  }
}

}  // namespace
}  // namespace starling::training
