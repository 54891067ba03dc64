// Learning-rate schedules as functions of the step.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "training/lr_schedule.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

topology::TrainingSpec spec_with(const std::string& schedule) {
  topology::TrainingSpec spec;
  spec.lr = 0.1;
  spec.lr_schedule = schedule;
  return spec;
}

TEST(LearningRateSchedule, Constant) {
  LearningRateSchedule schedule(spec_with("constant"), 100, 1000);
  EXPECT_DOUBLE_EQ(schedule.at(0), 0.1);
  EXPECT_DOUBLE_EQ(schedule.at(999), 0.1);
}

TEST(LearningRateSchedule, LinearWarmup) {
  auto spec = spec_with("constant");
  spec.warmup_steps = 10;
  LearningRateSchedule schedule(spec, 100, 1000);
  EXPECT_DOUBLE_EQ(schedule.at(0), 0.01);
  EXPECT_DOUBLE_EQ(schedule.at(4), 0.05);
  EXPECT_DOUBLE_EQ(schedule.at(9), 0.1);
  EXPECT_DOUBLE_EQ(schedule.at(10), 0.1);
}

TEST(LearningRateSchedule, StepDecayAtEpochMilestones) {
  auto spec = spec_with("step");
  spec.milestones = {2, 3.5};
  spec.gamma = 0.5;
  LearningRateSchedule schedule(spec, 100, 1000);
  EXPECT_DOUBLE_EQ(schedule.at(199), 0.1);
  EXPECT_DOUBLE_EQ(schedule.at(200), 0.05);
  EXPECT_DOUBLE_EQ(schedule.at(349), 0.05);
  EXPECT_DOUBLE_EQ(schedule.at(350), 0.025);
  EXPECT_DOUBLE_EQ(schedule.at(999), 0.025);
}

TEST(LearningRateSchedule, CosineFromWarmupToEnd) {
  auto spec = spec_with("cosine");
  spec.warmup_steps = 100;
  LearningRateSchedule schedule(spec, 50, 1100);
  EXPECT_DOUBLE_EQ(schedule.at(49), 0.1 * 0.5);  // warmup on top of the cosine's start
  EXPECT_DOUBLE_EQ(schedule.at(100), 0.1);
  EXPECT_NEAR(schedule.at(600), 0.05, 1e-12);   // halfway
  EXPECT_NEAR(schedule.at(350), 0.1 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(schedule.at(1100), 0.0, 1e-12);
  for (std::int64_t s = 101; s < 1100; ++s) EXPECT_LE(schedule.at(s), schedule.at(s - 1));
}

TEST(LearningRateSchedule, RejectsUnknownAndIncomplete) {
  EXPECT_THROW(LearningRateSchedule(spec_with("exponential"), 10, 10), TrainingError);
  EXPECT_THROW(LearningRateSchedule(spec_with("step"), 10, 10), TrainingError);
}

}  // namespace
}  // namespace starling::training
