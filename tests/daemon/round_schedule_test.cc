#include "daemon/round_schedule.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace starling::daemon {
namespace {

using topology::PeriodPhase;

// The sync points a schedule yields, by walking every step: the reference the closed forms
// must agree with.
std::vector<std::int64_t> walk(const RoundSchedule& schedule, std::int64_t last_step) {
  std::vector<std::int64_t> steps;
  for (std::int64_t s = 0; s <= last_step; ++s) {
    if (schedule.is_sync_point(s)) steps.push_back(s);
  }
  return steps;
}

void expect_consistent(const RoundSchedule& schedule, std::int64_t last_step) {
  const auto points = walk(schedule, last_step);
  for (std::size_t r = 0; r < points.size(); ++r) {
    EXPECT_EQ(schedule.step_of_round(r), points[r]) << "round " << r;
    EXPECT_EQ(schedule.rounds_through(points[r]), r + 1) << "round " << r;
    EXPECT_EQ(schedule.rounds_through(points[r] - 1), r) << "round " << r;
  }
  // rounds_through counts the sync points at or before every step.
  std::uint64_t seen = 0;
  std::size_t next = 0;
  for (std::int64_t s = 0; s <= last_step; ++s) {
    if (next < points.size() && points[next] == s) ++seen, ++next;
    ASSERT_EQ(schedule.rounds_through(s), seen) << "step " << s;
  }
}

TEST(RoundSchedule, OnePeriodStartsRoundRAtStepRPlusOneTimesThePeriod) {
  RoundSchedule schedule(8);
  EXPECT_EQ(schedule.step_of_round(0), 8);
  EXPECT_EQ(schedule.step_of_round(9), 80);
  EXPECT_EQ(schedule.rounds_through(0), 0u);
  EXPECT_EQ(schedule.rounds_through(7), 0u);
  EXPECT_EQ(schedule.rounds_through(8), 1u);
  EXPECT_EQ(schedule.rounds_through(87), 10u);
  EXPECT_FALSE(schedule.is_sync_point(0));
  EXPECT_TRUE(schedule.is_sync_point(16));
  EXPECT_FALSE(schedule.is_sync_point(17));
  EXPECT_EQ(schedule.period_after(100), 8);
  expect_consistent(schedule, 200);
}

TEST(RoundSchedule, PhasesChangeThePeriodAtTheirUntilStep) {
  // Every 4 steps up to 20, every 3 up to 26, then every 16.
  RoundSchedule schedule({{20, 4}, {26, 3}}, 16);
  EXPECT_EQ(walk(schedule, 60), (std::vector<std::int64_t>{4, 8, 12, 16, 20, 23, 26, 42, 58}));
  EXPECT_EQ(schedule.period_after(0), 4);
  EXPECT_EQ(schedule.period_after(20), 3);
  EXPECT_EQ(schedule.period_after(26), 16);
  expect_consistent(schedule, 400);
}

TEST(RoundSchedule, APhaseEndingBetweenSyncPointsCountsTheNextPhaseFromItsEnd) {
  // Up to 10 every 4: rounds at 4 and 8; the next phase counts from 10, not from 8.
  RoundSchedule schedule({{10, 4}}, 5);
  EXPECT_EQ(walk(schedule, 30), (std::vector<std::int64_t>{4, 8, 15, 20, 25, 30}));
  expect_consistent(schedule, 300);
}

TEST(RoundSchedule, APhaseShorterThanItsPeriodHasNoRound) {
  RoundSchedule schedule({{6, 3}, {8, 5}, {20, 4}}, 7);
  EXPECT_EQ(walk(schedule, 40), (std::vector<std::int64_t>{3, 6, 12, 16, 20, 27, 34}));
  EXPECT_EQ(schedule.period_after(6), 4);  // the round after step 6 is the 4-step phase's
  expect_consistent(schedule, 400);
}

TEST(RoundSchedule, PeriodOneSyncsEveryStep) {
  RoundSchedule schedule({{5, 1}}, 10);
  EXPECT_EQ(walk(schedule, 25), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 15, 25}));
  expect_consistent(schedule, 100);
}

TEST(RoundSchedule, RefusesPhasesOutOfOrderOrWithoutAPeriod) {
  EXPECT_THROW(RoundSchedule({{10, 4}, {10, 2}}, 8), std::invalid_argument);
  EXPECT_THROW(RoundSchedule({{10, 4}, {5, 2}}, 8), std::invalid_argument);
  EXPECT_THROW(RoundSchedule({{0, 4}}, 8), std::invalid_argument);
  EXPECT_THROW(RoundSchedule({{10, 0}}, 8), std::invalid_argument);
  EXPECT_THROW(RoundSchedule(0), std::invalid_argument);
}

}  // namespace
}  // namespace starling::daemon
