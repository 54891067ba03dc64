#pragma once
// What the ring allreduce tests share, over the fake network and over ring links: node names,
// random inputs, and a membership of every node.
#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace starling::gossip::ring_testing {

inline std::vector<std::string> names(std::size_t n) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < n; ++i) ids.push_back("n" + std::to_string(i));
  return ids;
}

// n vectors of `length` values uniform in [-1, 1), the same for the same seed.
inline std::vector<std::vector<float>> random_inputs(std::size_t n, std::size_t length, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<std::vector<float>> inputs(n, std::vector<float>(length));
  for (auto& v : inputs) {
    for (float& x : v) x = uniform(rng);
  }
  return inputs;
}

inline std::vector<std::size_t> all_members(std::size_t n) {
  std::vector<std::size_t> members(n);
  for (std::size_t i = 0; i < n; ++i) members[i] = i;
  return members;
}

// The element-wise sum of the inputs, in double.
inline std::vector<double> plain_sum(const std::vector<std::vector<float>>& inputs) {
  std::vector<double> sum(inputs.empty() ? 0 : inputs[0].size(), 0.0);
  for (const auto& v : inputs) {
    for (std::size_t k = 0; k < sum.size(); ++k) sum[k] += v[k];
  }
  return sum;
}

// Each of the first n outputs is `sum` (or its mean) within 1e-5, and all hold the same bits:
// the reduction order is the same on every member.
inline void expect_reduced(const std::vector<std::vector<float>>& outputs, const std::vector<double>& sum,
                           std::size_t n, bool mean) {
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < sum.size(); ++k) {
      const double expected = mean ? sum[k] / static_cast<double>(n) : sum[k];
      ASSERT_NEAR(outputs[i][k], expected, 1e-5) << "node " << i << " element " << k;
    }
  }
  for (std::size_t i = 1; i < n; ++i) EXPECT_EQ(outputs[i], outputs[0]);
}

}  // namespace starling::gossip::ring_testing
