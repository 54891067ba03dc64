// The Trainer's CUDA path, checked against its CPU path. Every test here needs a CUDA device
// and is reported as skipped where LibTorch sees none (CI's machines have no GPU); on a GPU
// machine build against PyTorch's LibTorch (training/README.md) and run training_tests.
//
// What differs on CUDA: the model, data and optimizer live on the device, the flat spans are
// pinned host mirrors (pull before reading, push after writing), and the optimizer is the
// whole-buffer tensor-op kernel. Float sums run in another order on the GPU, so CPU and CUDA
// agree to rounding, not bit for bit; cuDNN may run convolutions in TF32, hence the looser
// bound for the cnn.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "one_epoch_spec.h"
#include "temp_dir.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

using testing::TempDir;

#define REQUIRE_CUDA()                                                                \
  do {                                                                                \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible to LibTorch"; \
  } while (0)

topology::TrainingSpec synthetic_spec(const std::string& device, const std::string& model = "mlp") {
  topology::TrainingSpec spec;
  spec.model = model;
  spec.dataset = "synthetic";
  spec.max_train_samples = 1000;
  spec.batch_size = 32;
  spec.lr = 0.05;
  spec.momentum = 0.9;
  spec.nesterov = true;
  spec.weight_decay = 1e-3;
  spec.device = device;
  spec.threads = 1;
  spec.eval_batch_size = 500;
  return spec;
}

std::vector<float> pulled(Trainer& trainer) {
  trainer.pull_parameters();
  auto p = trainer.parameters();
  return {p.begin(), p.end()};
}

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  return worst;
}

TEST(CudaTrainer, StartsFromTheCpuModelWithTheSameLayout) {
  REQUIRE_CUDA();
  for (const std::string model : {"logreg", "mlp", "cnn"}) {
    Trainer cpu(synthetic_spec("cpu", model), NodeShard{});
    Trainer gpu(synthetic_spec("cuda", model), NodeShard{});
    EXPECT_EQ(gpu.device(), "cuda:0");
    EXPECT_EQ(gpu.fingerprint(), cpu.fingerprint()) << model << ": the fingerprint goes on the wire";
    EXPECT_EQ(gpu.parameter_count(), cpu.parameter_count());
    EXPECT_EQ(pulled(gpu), pulled(cpu)) << model << ": initial parameters differ";
  }
}

// logreg and mlp train through the hand-written dense backward pass and the fused SGD's
// tensor-op kernel (momentum, Nesterov, weight decay all on).
TEST(CudaTrainer, DenseModelsTrainStepForStepLikeTheCpu) {
  REQUIRE_CUDA();
  for (const std::string model : {"logreg", "mlp"}) {
    Trainer cpu(synthetic_spec("cpu", model), NodeShard{});
    Trainer gpu(synthetic_spec("cuda", model), NodeShard{});
    for (int i = 0; i < 40; ++i) {
      const double a = cpu.step().loss, b = gpu.step().loss;
      ASSERT_NEAR(a, b, 1e-4 * std::max(1.0, std::abs(a))) << model << " step " << i;
    }
    EXPECT_LT(max_abs_difference(pulled(cpu), pulled(gpu)), 1e-4) << model;
    const EvalResult e_cpu = cpu.evaluate(), e_gpu = gpu.evaluate();
    EXPECT_NEAR(e_cpu.loss, e_gpu.loss, 1e-4) << model;
    EXPECT_NEAR(e_cpu.accuracy, e_gpu.accuracy, 0.005) << model;
  }
}

// The cnn trains through autograd (convolutions in cuDNN).
TEST(CudaTrainer, CnnTracksTheCpuAndLearns) {
  REQUIRE_CUDA();
  auto spec = synthetic_spec("cuda", "cnn");
  spec.lr = 0.02;
  Trainer cpu(synthetic_spec("cpu", "cnn"), NodeShard{});
  Trainer gpu(synthetic_spec("cuda", "cnn"), NodeShard{});
  const double first_cpu = cpu.step().loss, first_gpu = gpu.step().loss;
  EXPECT_NEAR(first_cpu, first_gpu, 1e-2 * std::max(1.0, first_cpu));
  Trainer learner(spec, NodeShard{});
  const EvalResult before = learner.evaluate();
  double early = 0, late = 0;
  for (int i = 0; i < 120; ++i) {
    const double loss = learner.step().loss;
    ASSERT_TRUE(std::isfinite(loss)) << "step " << i;
    if (i < 10) early += loss / 10;
    if (i >= 110) late += loss / 10;
  }
  EXPECT_LT(late, 0.7 * early);
  EXPECT_GT(learner.evaluate().accuracy, before.accuracy + 0.2);
}

// The contract the sync algorithms rely on: what they push is what the next step trains from,
// and what they pull is what the device holds.
TEST(CudaTrainer, PushedParametersAreWhatTheNextStepTrainsFrom) {
  REQUIRE_CUDA();
  Trainer gpu(synthetic_spec("cuda"), NodeShard{});
  for (int i = 0; i < 5; ++i) gpu.step();
  auto params = gpu.parameters();
  std::fill(params.begin(), params.end(), 0.0f);
  gpu.push_parameters();
  // All-zero weights give all-zero logits: the loss of any batch is ln 10.
  EXPECT_NEAR(gpu.compute_gradients(), std::log(10.0), 1e-5);
  gpu.pull_gradients();
  const auto grads = gpu.gradients();
  // With zero weights only the last layer's bias gets a gradient (mean of softmax - one-hot),
  // and its entries sum to zero.
  const std::size_t n = grads.size();
  const double bias_sum = std::accumulate(grads.end() - 10, grads.end(), 0.0);
  EXPECT_NEAR(bias_sum, 0.0, 1e-6);
  EXPECT_GT(std::abs(grads[n - 1]) + std::abs(grads[n - 2]), 0.0f);
  EXPECT_EQ(std::count_if(grads.begin(), grads.end() - 10, [](float g) { return g != 0; }), 0);
  gpu.apply_gradients();
  const auto after = pulled(gpu);
  EXPECT_GT(std::count_if(after.begin(), after.end(), [](float v) { return v != 0; }), 0)
      << "pull did not bring the device's step back";
}

// Allreduce mode replaces the gradients between compute_gradients() and apply_gradients().
TEST(CudaTrainer, PushedGradientsAreWhatTheOptimizerApplies) {
  REQUIRE_CUDA();
  auto spec = synthetic_spec("cuda");
  spec.momentum = 0;
  spec.nesterov = false;
  spec.weight_decay = 0;
  Trainer gpu(spec, NodeShard{});
  const auto before = pulled(gpu);
  gpu.compute_gradients();
  gpu.pull_gradients();
  auto grads = gpu.gradients();
  std::fill(grads.begin(), grads.end(), 0.0f);
  grads[0] = 1.0f;
  gpu.push_gradients();
  const double lr = gpu.lr();
  gpu.apply_gradients();
  auto after = pulled(gpu);
  EXPECT_FLOAT_EQ(after[0], before[0] - static_cast<float>(lr));
  after[0] = before[0];
  EXPECT_EQ(after, before) << "a zero gradient moved a parameter";
}

TEST(CudaTrainer, EvaluateParametersLeavesTheLiveModelUnchanged) {
  REQUIRE_CUDA();
  Trainer gpu(synthetic_spec("cuda"), NodeShard{});
  for (int i = 0; i < 20; ++i) gpu.step();
  const auto live = pulled(gpu);
  const EvalResult trained = gpu.evaluate();
  const std::vector<float> zeros(live.size(), 0.0f);
  const EvalResult blank = gpu.evaluate_parameters(zeros);
  EXPECT_NEAR(blank.loss, std::log(10.0), 1e-5);
  EXPECT_EQ(pulled(gpu), live);
  EXPECT_DOUBLE_EQ(gpu.evaluate().loss, trained.loss);
}

// Checkpoints hold host floats, so they move between devices: a CUDA run resumes on CUDA (to
// rounding; on the CPU resumption is bit-exact, trainer_test.cc), and a CUDA checkpoint loads
// on the CPU and back with the very same parameters.
TEST(CudaTrainer, CheckpointsResumeAndMoveBetweenDevices) {
  REQUIRE_CUDA();
  TempDir dir;
  const auto spec = synthetic_spec("cuda");
  Trainer uninterrupted(spec, NodeShard{});
  for (int i = 0; i < 25; ++i) uninterrupted.step();
  uninterrupted.save_checkpoint(dir.path().string());
  const auto saved = pulled(uninterrupted);
  for (int i = 0; i < 25; ++i) uninterrupted.step();

  Trainer resumed(spec, NodeShard{});
  ASSERT_TRUE(resumed.load_latest_checkpoint(dir.path().string()));
  EXPECT_EQ(resumed.step_count(), 25);
  EXPECT_EQ(pulled(resumed), saved);
  for (int i = 0; i < 25; ++i) resumed.step();
  EXPECT_LT(max_abs_difference(pulled(resumed), pulled(uninterrupted)), 1e-5);

  Trainer on_cpu(synthetic_spec("cpu"), NodeShard{});
  ASSERT_TRUE(on_cpu.load_latest_checkpoint(dir.path().string()));
  EXPECT_EQ(pulled(on_cpu), saved) << "a CUDA checkpoint loaded on the CPU changed";
  on_cpu.step();
  TempDir back;
  on_cpu.save_checkpoint(back.path().string());
  Trainer back_on_gpu(spec, NodeShard{});
  ASSERT_TRUE(back_on_gpu.load_latest_checkpoint(back.path().string()));
  EXPECT_EQ(pulled(back_on_gpu), pulled(on_cpu)) << "a CPU checkpoint loaded on CUDA changed";
  EXPECT_EQ(back_on_gpu.step_count(), 26);
}

TEST(CudaTrainer, OneEpochOnFashionMnistPasses80Percent) {
  REQUIRE_CUDA();
  if (!testing::fashion_mnist_present()) {
    GTEST_SKIP() << testing::kFashionMnistDir << " is absent (install dataset-fashion-mnist)";
  }
  for (const std::string model : {"mlp", "cnn"}) {
    const auto spec = testing::one_epoch_spec(model, "cuda");
    Trainer trainer(spec, NodeShard{});
    while (!trainer.finished()) trainer.step();
    const EvalResult result = trainer.evaluate();
    EXPECT_EQ(result.samples, 10000);
    EXPECT_GT(result.accuracy, 0.80) << model;
    std::printf("fashion-mnist %s on %s, 1 epoch: test accuracy %.4f, loss %.4f\n",
                model.c_str(), trainer.device().c_str(), result.accuracy, result.loss);
  }
}

}  // namespace
}  // namespace starling::training
