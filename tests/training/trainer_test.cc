// The Trainer facade end to end: learning, step accounting, the flat buffers through the
// facade, evaluation of foreign parameters, checkpoints and exact resume.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "one_epoch_spec.h"
#include "temp_dir.h"
#include "training/checkpoint_file.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

using testing::TempDir;

// Routes the trainer's warnings to a test's sink, and back to the default however the test
// ends (the sink refers to the test's locals).
struct ScopedWarningSink {
  explicit ScopedWarningSink(WarningSink sink) { set_warning_sink(std::move(sink)); }
  ~ScopedWarningSink() { set_warning_sink(nullptr); }
};

topology::TrainingSpec synthetic_spec() {
  topology::TrainingSpec spec;
  spec.model = "mlp";
  spec.dataset = "synthetic";
  spec.max_train_samples = 1000;
  spec.batch_size = 32;
  spec.lr = 0.05;
  spec.momentum = 0.9;
  spec.device = "cpu";
  spec.threads = 1;
  spec.eval_batch_size = 500;
  return spec;
}

std::vector<float> copy_of(std::span<const float> values) {
  return std::vector<float>(values.begin(), values.end());
}

bool bitwise_equal(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void flip_byte(const std::string& path, std::uintmax_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  file.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&c, 1);
}

TEST(Trainer, LossFallsOnSyntheticData) {
  for (const char* model : {"logreg", "mlp", "cnn"}) {
    auto spec = synthetic_spec();
    spec.model = model;
    spec.lr = 0.02;
    Trainer trainer(spec, NodeShard{});
    const EvalResult before = trainer.evaluate();
    double first = 0, last = 0;
    const int steps = 120;
    for (int i = 0; i < steps; ++i) {
      const double loss = trainer.step().loss;
      if (i < 10) first += loss / 10;
      if (i >= steps - 10) last += loss / 10;
    }
    const EvalResult after = trainer.evaluate();
    std::printf("%s: loss %.3f -> %.3f, test accuracy %.3f\n", model, first, last, after.accuracy);
    EXPECT_LT(last, 0.5 * first) << model;
    EXPECT_LT(after.loss, before.loss) << model;
    EXPECT_GT(after.accuracy, 0.6) << model;
    EXPECT_EQ(after.samples, 2000) << model;
  }
}

TEST(Trainer, StepAndEpochAccounting) {
  auto spec = synthetic_spec();
  spec.max_train_samples = 100;
  spec.batch_size = 30;
  spec.epochs = 2.5;
  Trainer trainer(spec, NodeShard{});
  EXPECT_EQ(trainer.device(), "cpu");
  EXPECT_EQ(trainer.shard_size(), 100u);
  EXPECT_EQ(trainer.steps_per_epoch(), 4);  // 30 + 30 + 30 + 10
  EXPECT_EQ(trainer.total_steps(), 10);
  std::vector<std::int64_t> batch_sizes;
  while (!trainer.finished()) batch_sizes.push_back(trainer.step().samples);
  EXPECT_EQ(batch_sizes, (std::vector<std::int64_t>{30, 30, 30, 10, 30, 30, 30, 10, 30, 30}));
  EXPECT_EQ(trainer.step_count(), 10);
  EXPECT_EQ(trainer.samples_seen(), 260);
  EXPECT_DOUBLE_EQ(trainer.epoch(), 2.6);

  spec.max_steps = 3;
  Trainer capped(spec, NodeShard{});
  EXPECT_EQ(capped.total_steps(), 3);
}

TEST(Trainer, ScheduleDrivesTheStepRate) {
  auto spec = synthetic_spec();
  spec.lr = 0.1;
  spec.warmup_steps = 4;
  Trainer trainer(spec, NodeShard{});
  EXPECT_DOUBLE_EQ(trainer.lr(), 0.025);
  EXPECT_DOUBLE_EQ(trainer.step().lr, 0.025);
  EXPECT_DOUBLE_EQ(trainer.step().lr, 0.05);
  EXPECT_DOUBLE_EQ(trainer.lr(), 0.075);
}

TEST(Trainer, NodesStartIdenticalOnDisjointShards) {
  auto spec = synthetic_spec();
  Trainer a(spec, NodeShard{0, 3, 5});
  Trainer b(spec, NodeShard{1, 3, 5});
  Trainer c(spec, NodeShard{2, 3, 5});
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  EXPECT_TRUE(bitwise_equal(a.parameters(), b.parameters()));
  EXPECT_EQ(a.shard_size() + b.shard_size() + c.shard_size(), 1000u);
  Trainer other_seed(spec, NodeShard{0, 3, 6});
  EXPECT_FALSE(bitwise_equal(a.parameters(), other_seed.parameters()));
  spec.model = "cnn";
  Trainer cnn(spec, NodeShard{0, 3, 5});
  EXPECT_NE(cnn.fingerprint(), a.fingerprint());
}

TEST(Trainer, WritingParametersChangesTheModel) {
  Trainer trainer(synthetic_spec(), NodeShard{});
  std::span<float> p = trainer.parameters();
  std::fill(p.begin(), p.end(), 0.0f);
  trainer.push_parameters();
  // All-zero weights give uniform predictions: loss ln(10) exactly.
  EXPECT_NEAR(trainer.evaluate().loss, std::log(10.0), 1e-6);
  // Training continues from the written state.
  trainer.step();
  trainer.pull_parameters();
  EXPECT_TRUE(std::any_of(p.begin(), p.end(), [](float v) { return v != 0.0f; }));
}

TEST(Trainer, SplitStepEqualsStepAndExposesGradients) {
  auto spec = synthetic_spec();
  spec.weight_decay = 1e-3;
  Trainer whole(spec, NodeShard{});
  Trainer split(spec, NodeShard{});
  for (int i = 0; i < 5; ++i) {
    const StepResult a = whole.step();
    const double loss = split.compute_gradients();
    split.pull_gradients();
    std::span<const float> g = split.gradients();
    EXPECT_TRUE(std::any_of(g.begin(), g.end(), [](float v) { return v != 0.0f; }));
    const StepResult b = split.apply_gradients();
    EXPECT_EQ(a.loss, loss);
    EXPECT_EQ(a.step, b.step);
  }
  EXPECT_TRUE(bitwise_equal(whole.parameters(), split.parameters()));
}

// A node that rejoins a synchronous ring jumps to the ring's step and takes its model: from
// there it must train exactly as a node that never left (same batches, same learning rate).
TEST(Trainer, AdvanceToStepLandsWhereTrainingWould) {
  auto spec = synthetic_spec();
  spec.momentum = 0;  // plain SGD: the model and the step are the whole state
  spec.lr_schedule = "cosine";
  spec.epochs = 3;
  Trainer trained(spec, NodeShard{});
  Trainer skipped(spec, NodeShard{});
  const std::int64_t jump = trained.steps_per_epoch() + 5;  // across an epoch boundary
  for (std::int64_t i = 0; i < jump; ++i) trained.step();
  skipped.advance_to_step(jump);
  EXPECT_EQ(skipped.step_count(), jump);
  EXPECT_DOUBLE_EQ(skipped.epoch(), trained.epoch());
  EXPECT_DOUBLE_EQ(skipped.lr(), trained.lr());
  EXPECT_EQ(skipped.samples_seen(), 0);  // nothing was trained
  std::memcpy(skipped.parameters().data(), trained.parameters().data(),
              trained.parameters().size_bytes());
  skipped.push_parameters();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(trained.step().loss, skipped.step().loss) << i;
  }
  EXPECT_TRUE(bitwise_equal(trained.parameters(), skipped.parameters()));

  EXPECT_THROW(skipped.advance_to_step(jump), std::invalid_argument);  // behind
  skipped.compute_gradients();
  EXPECT_THROW(skipped.advance_to_step(skipped.step_count() + 1), std::logic_error);
  skipped.apply_gradients();
}

TEST(Trainer, ResetOptimizerStateRestartsMomentum) {
  auto spec = synthetic_spec();  // momentum 0.9
  Trainer warm(spec, NodeShard{});
  for (int i = 0; i < 5; ++i) warm.step();
  warm.reset_optimizer_state();
  // A fresh trainer (zero momentum) at the same step with the same model must now agree.
  Trainer fresh(spec, NodeShard{});
  fresh.advance_to_step(5);
  std::memcpy(fresh.parameters().data(), warm.parameters().data(), warm.parameters().size_bytes());
  fresh.push_parameters();
  for (int i = 0; i < 5; ++i) {
    warm.step();
    fresh.step();
  }
  EXPECT_TRUE(bitwise_equal(warm.parameters(), fresh.parameters()));
}

TEST(Trainer, CallerCanReplaceGradientsBeforeApplying) {
  auto spec = synthetic_spec();
  spec.momentum = 0;
  Trainer trainer(spec, NodeShard{});
  const auto before = copy_of(trainer.parameters());
  trainer.compute_gradients();
  std::span<float> g = trainer.gradients();
  std::fill(g.begin(), g.end(), 0.0f);  // e.g. an allreduce average that came out zero
  trainer.push_gradients();
  trainer.apply_gradients();
  EXPECT_TRUE(bitwise_equal(before, trainer.parameters()));
}

TEST(Trainer, EvaluateParametersLeavesTheLiveModelUnchanged) {
  Trainer trainer(synthetic_spec(), NodeShard{});
  for (int i = 0; i < 30; ++i) trainer.step();
  const auto live = copy_of(trainer.parameters());
  const EvalResult trained = trainer.evaluate();
  const std::vector<float> zeros(trainer.parameter_count(), 0.0f);
  const EvalResult other = trainer.evaluate_parameters(zeros);
  EXPECT_NEAR(other.loss, std::log(10.0), 1e-6);
  EXPECT_GT(trained.accuracy, other.accuracy);
  EXPECT_TRUE(bitwise_equal(live, trainer.parameters()));
  const EvalResult again = trainer.evaluate();
  EXPECT_EQ(trained.loss, again.loss);
  EXPECT_EQ(trained.accuracy, again.accuracy);
  // Its own live buffer evaluates like evaluate().
  EXPECT_EQ(trainer.evaluate_parameters(trainer.parameters()).loss, trained.loss);
  EXPECT_THROW(trainer.evaluate_parameters(std::span<const float>(zeros).first(10)),
               std::invalid_argument);
}

TEST(Trainer, CheckpointRoundTrip) {
  TempDir dir;
  auto spec = synthetic_spec();
  Trainer trainer(spec, NodeShard{1, 2, 9});
  for (int i = 0; i < 7; ++i) trainer.step();
  const CheckpointExtras extras = {{"gossip.round", {7, 0, 0, 0}}, {"empty", {}}};
  const std::string path = trainer.save_checkpoint(dir.path().string(), extras);
  EXPECT_EQ(std::filesystem::path(path).filename(), "ckpt-000000000007.starling");

  Trainer fresh(spec, NodeShard{1, 2, 9});
  EXPECT_FALSE(bitwise_equal(fresh.parameters(), trainer.parameters()));
  const auto loaded = fresh.load_latest_checkpoint(dir.path().string());
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->path, path);
  EXPECT_EQ(loaded->step, 7);
  EXPECT_EQ(loaded->extras, extras);
  EXPECT_EQ(fresh.step_count(), 7);
  EXPECT_EQ(fresh.samples_seen(), trainer.samples_seen());
  EXPECT_EQ(fresh.epoch(), trainer.epoch());
  EXPECT_TRUE(bitwise_equal(fresh.parameters(), trainer.parameters()));

  TempDir empty;
  EXPECT_FALSE(fresh.load_latest_checkpoint(empty.path().string()).has_value());
  EXPECT_FALSE(fresh.load_latest_checkpoint((empty.path() / "absent").string()).has_value());
}

TEST(Trainer, ResumeEqualsUninterrupted) {
  auto spec = synthetic_spec();
  spec.max_train_samples = 500;
  spec.nesterov = true;
  spec.weight_decay = 5e-4;
  spec.lr_schedule = "cosine";
  spec.warmup_steps = 5;
  spec.epochs = 3;  // crosses epoch boundaries, so the reshuffles are exercised too
  const NodeShard shard{0, 2, 4};

  Trainer uninterrupted(spec, shard);
  while (!uninterrupted.finished()) uninterrupted.step();

  TempDir dir;
  std::int64_t stops = 0;
  {
    Trainer first(spec, shard);
    for (int i = 0; i < 11; ++i) first.step();  // stop mid-epoch (8 steps per epoch)
    first.save_checkpoint(dir.path().string());
  }
  // Resume, stop again, resume again: each process is new.
  for (std::int64_t stop_at : {19, -1}) {
    Trainer resumed(spec, shard);
    ASSERT_TRUE(resumed.load_latest_checkpoint(dir.path().string()).has_value());
    ++stops;
    while (!resumed.finished() && (stop_at < 0 || resumed.step_count() < stop_at)) resumed.step();
    if (stop_at >= 0) {
      resumed.save_checkpoint(dir.path().string());
      continue;
    }
    EXPECT_EQ(resumed.step_count(), uninterrupted.step_count());
    EXPECT_EQ(resumed.samples_seen(), uninterrupted.samples_seen());
    EXPECT_TRUE(bitwise_equal(resumed.parameters(), uninterrupted.parameters()))
        << "a resumed run must end with bit-identical parameters";
  }
  EXPECT_EQ(stops, 2);
}

TEST(Trainer, CorruptOrTruncatedCheckpointsAreSkipped) {
  TempDir dir;
  auto spec = synthetic_spec();
  spec.keep_checkpoints = 5;
  Trainer trainer(spec, NodeShard{});
  std::vector<std::string> paths;
  std::vector<std::vector<float>> states;
  for (int i = 0; i < 3; ++i) {
    trainer.step();
    trainer.step();
    paths.push_back(trainer.save_checkpoint(dir.path().string()));
    states.push_back(copy_of(trainer.parameters()));
  }
  // Newest: one flipped byte in the middle of the parameters. Second newest: truncated.
  flip_byte(paths[2], std::filesystem::file_size(paths[2]) / 2);
  std::filesystem::resize_file(paths[1], std::filesystem::file_size(paths[1]) - 100);
  // Newer than all: a directory with a checkpoint's name is no checkpoint (reading it as one
  // ended the node with std::bad_alloc).
  std::filesystem::create_directory(dir.path() / checkpoint_file_name(1000));

  std::vector<std::string> warnings;
  ScopedWarningSink sink([&](const std::string& message) { warnings.push_back(message); });
  Trainer fresh(spec, NodeShard{});
  const auto loaded = fresh.load_latest_checkpoint(dir.path().string());
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->path, paths[0]);
  // Each file passed over is named, newest first.
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find(paths[2]), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find(paths[1]), std::string::npos) << warnings[1];
  EXPECT_EQ(fresh.step_count(), 2);
  EXPECT_TRUE(bitwise_equal(fresh.parameters(), states[0]));

  flip_byte(paths[0], 3);
  Trainer none(spec, NodeShard{});
  const auto before = copy_of(none.parameters());
  EXPECT_FALSE(none.load_latest_checkpoint(dir.path().string()).has_value());
  EXPECT_TRUE(bitwise_equal(before, none.parameters()));
  EXPECT_EQ(none.step_count(), 0);
}

// An intact checkpoint of another model or shard stops the load, and nothing is loaded or
// removed. (It used to be skipped like a corrupt one: the node then trained from scratch in
// the same directory, and pruning deleted the other model's checkpoints, or, numbered by a
// smaller step, the node's own final one.)
TEST(Trainer, CheckpointOfAnotherModelOrShardIsRefusedAndLeftInPlace) {
  TempDir dir;
  auto spec = synthetic_spec();
  {
    Trainer mlp(spec, NodeShard{});
    mlp.step();
    mlp.save_checkpoint(dir.path().string());
  }
  const auto files = list_checkpoints(dir.path());
  ASSERT_EQ(files.size(), 1u);
  spec.model = "logreg";
  Trainer logreg(spec, NodeShard{});
  const auto before = copy_of(logreg.parameters());
  try {
    logreg.load_latest_checkpoint(dir.path().string());
    ADD_FAILURE() << "a checkpoint of another model was not refused";
  } catch (const IncompatibleCheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model fingerprint"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos) << e.what();
  }
  EXPECT_TRUE(bitwise_equal(before, logreg.parameters()));
  EXPECT_EQ(logreg.step_count(), 0);
  spec.model = "mlp";
  Trainer other_shard(spec, NodeShard{0, 2, 1});
  EXPECT_THROW(other_shard.load_latest_checkpoint(dir.path().string()), IncompatibleCheckpointError);
  EXPECT_EQ(list_checkpoints(dir.path()).size(), 1u);
  // A corrupt newer file in front of it is still skipped, and the refusal still comes.
  std::ofstream(dir.path() / checkpoint_file_name(99)) << "not a checkpoint";
  EXPECT_THROW(logreg.load_latest_checkpoint(dir.path().string()), IncompatibleCheckpointError);
}

TEST(Trainer, KeepsTheNewestCheckpoints) {
  TempDir dir;
  auto spec = synthetic_spec();
  spec.keep_checkpoints = 2;
  Trainer trainer(spec, NodeShard{});
  for (int i = 0; i < 4; ++i) {
    trainer.step();
    trainer.save_checkpoint(dir.path().string());
  }
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ckpt-000000000003.starling",
                                             "ckpt-000000000004.starling"}));
}

// A shard smaller than a batch is trained whole at every step; the trainer says so, naming the
// node, its samples and the batch size, and still trains.
TEST(Trainer, AShardSmallerThanABatchIsWarnedAbout) {
  auto spec = synthetic_spec();
  spec.max_train_samples = 40;  // 20 per node of 2, against batches of 32
  std::vector<std::string> warnings;
  ScopedWarningSink sink([&](const std::string& message) { warnings.push_back(message); });
  Trainer small(spec, NodeShard{1, 2, 1});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("node 1 of 2 has 20 training samples"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("fewer than training.batch_size 32"), std::string::npos) << warnings[0];
  EXPECT_EQ(small.step().step, 1);

  spec.max_train_samples = 1000;
  Trainer enough(spec, NodeShard{1, 2, 1});
  EXPECT_EQ(warnings.size(), 1u) << "a shard of 500 is not smaller than a batch";
}

TEST(Trainer, SaveBetweenComputeAndApplyIsRefused) {
  TempDir dir;
  Trainer trainer(synthetic_spec(), NodeShard{});
  trainer.compute_gradients();
  EXPECT_THROW(trainer.save_checkpoint(dir.path().string()), std::logic_error);
  trainer.apply_gradients();
  EXPECT_NO_THROW(trainer.save_checkpoint(dir.path().string()));
  EXPECT_THROW(trainer.apply_gradients(), std::logic_error);
}

TEST(Trainer, BadConfigurationIsATrainingError) {
  auto expect_error = [](topology::TrainingSpec spec, NodeShard shard, const std::string& field) {
    try {
      Trainer trainer(spec, shard);
      FAIL() << "expected a TrainingError about " << field;
    } catch (const TrainingError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  auto spec = synthetic_spec();
  if (cuda_device_count() == 0) {
    spec.device = "cuda";
    expect_error(spec, {}, "training.device");  // this build or machine has no GPU
  }
  spec.device = "cuda:" + std::to_string(cuda_device_count());  // one past the last
  expect_error(spec, {}, "training.device");
  spec.device = "gpu";
  expect_error(spec, {}, "training.device");
  // The daemon tells a device error from the others by its type, to say where it was set.
  EXPECT_THROW(Trainer(spec, NodeShard{}), DeviceError);
  spec = synthetic_spec();
  spec.model = "resnet";
  expect_error(spec, {}, "training.model");
  spec = synthetic_spec();
  spec.dataset = "cifar";
  expect_error(spec, {}, "training.dataset");
  spec = synthetic_spec();
  spec.lr_schedule = "exp";
  expect_error(spec, {}, "training.lr_schedule");
  spec = synthetic_spec();
  spec.max_train_samples = 10;
  spec.partition = {topology::PartitionKind::iid, 0, 0};
  expect_error(spec, {0, 11, 1}, "training.partition");
  expect_error(synthetic_spec(), {3, 3, 1}, "shard");
}

TEST(Trainer, AutoDeviceResolves) {
  auto spec = synthetic_spec();
  spec.device = "auto";
  Trainer trainer(spec, NodeShard{});
  EXPECT_TRUE(trainer.device() == "cpu" || trainer.device().rfind("cuda:", 0) == 0);
}

TEST(Trainer, OneEpochOfMlpOnFashionMnistPasses80Percent) {
  if (!testing::fashion_mnist_present()) {
    GTEST_SKIP() << testing::kFashionMnistDir
                 << " is absent (install dataset-fashion-mnist); skipping the real-data run";
  }
  const auto spec = testing::one_epoch_spec("mlp", "cpu");
  Trainer trainer(spec, NodeShard{});
  EXPECT_EQ(trainer.shard_size(), 60000u);
  while (!trainer.finished()) trainer.step();
  EXPECT_DOUBLE_EQ(trainer.epoch(), 1.0);
  const EvalResult result = trainer.evaluate();
  EXPECT_EQ(result.samples, 10000);
  EXPECT_GT(result.accuracy, 0.80);
  std::printf("fashion-mnist mlp, 1 epoch: test accuracy %.4f, loss %.4f\n", result.accuracy,
              result.loss);
}

}  // namespace
}  // namespace starling::training
