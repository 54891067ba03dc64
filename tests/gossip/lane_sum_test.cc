// sum_in_lanes: every element once, in order; the sum in the documented lane order, so the
// same bits on every run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "gossip/lane_sum.h"

namespace starling::gossip {
namespace {

TEST(SumInLanes, VisitsEveryElementOnceInOrderForAnyLengthAndStart) {
  for (std::size_t begin = 0; begin < 3; ++begin) {
    for (std::size_t length = 0; length <= 3 * kSumLanes + 1; ++length) {
      std::vector<std::size_t> visited;
      // Small integers: every order of summing them gives the exact total.
      const float total = sum_in_lanes<float>(begin, begin + length, [&](std::size_t k) {
        visited.push_back(k);
        return static_cast<float>(k);
      });
      std::vector<std::size_t> expected;
      float expected_total = 0;
      for (std::size_t k = begin; k < begin + length; ++k) {
        expected.push_back(k);
        expected_total += static_cast<float>(k);
      }
      EXPECT_EQ(visited, expected) << "begin " << begin << ", length " << length;
      EXPECT_EQ(total, expected_total) << "begin " << begin << ", length " << length;
    }
  }
}

TEST(SumInLanes, AddsLaneByLaneThenTheLanesInOrder) {
  // Values of very different magnitudes, where the order of additions changes the bits: the
  // result must be the documented order's, not merely close to the true sum.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> exponent(-20.0f, 20.0f);
  const std::size_t n = 1021;  // a tail that fills only part of the lanes
  std::vector<float> values(n);
  for (float& v : values) v = std::exp2(exponent(rng)) * (rng() % 2 ? 1.0f : -1.0f);

  float lanes[kSumLanes] = {};
  for (std::size_t k = 0; k < n; ++k) lanes[k % kSumLanes] += values[k];
  float documented = 0;
  for (float lane : lanes) documented += lane;

  const float got = sum_in_lanes<float>(0, n, [&](std::size_t k) { return values[k]; });
  EXPECT_EQ(got, documented);
  double exact = 0;
  for (float v : values) exact += v;
  EXPECT_NEAR(got, exact, 1e-4 * std::abs(exact) + 1e-3);
}

TEST(SumInLanes, SumsInTheRequestedType) {
  // 2^24 + 1 is not a float: float lanes lose the ones, double lanes keep them.
  const std::size_t n = 2 * kSumLanes;
  auto element = [](std::size_t k) { return k < kSumLanes ? 16777216.0 : 1.0; };
  EXPECT_EQ(sum_in_lanes<double>(0, n, element), 8.0 * 16777216.0 + 8.0);
  EXPECT_EQ(sum_in_lanes<float>(0, n, [&](std::size_t k) { return static_cast<float>(element(k)); }),
            8.0f * 16777216.0f);
}

}  // namespace
}  // namespace starling::gossip
