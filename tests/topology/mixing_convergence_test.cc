// Repeated mixing of random vectors behaves as the spectral analysis predicts.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "topology/analysis.h"
#include "topology/mixing.h"

namespace starling::topology {
namespace {

std::vector<double> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> x(n);
  for (double& v : x) v = normal(rng);
  return x;
}

double mean(const std::vector<double>& x) {
  return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

double disagreement(const std::vector<double>& x) {
  double m = mean(x), sum = 0;
  for (double v : x) sum += (v - m) * (v - m);
  return std::sqrt(sum);
}

class OnePeerExact : public ::testing::TestWithParam<std::size_t> {};

TEST_P(OnePeerExact, ReachesTheExactAverageAfterLog2NRounds) {
  const std::size_t n = GetParam();
  const std::size_t rounds = one_peer_period(n);
  ASSERT_EQ(std::size_t{1} << rounds, n);
  for (unsigned seed = 0; seed < 20; ++seed) {
    auto x = random_vector(n, seed);
    const double target = mean(x);
    for (std::size_t t = 0; t < rounds; ++t) {
      double before = disagreement(x);
      x = one_peer_exponential_weights(n, t).apply(x);
      if (t + 1 < rounds) {
        EXPECT_GT(disagreement(x), 1e-9 * before) << "converged early at " << t;
      }
    }
    for (double v : x) EXPECT_LT(std::abs(v - target), 1e-6 * std::abs(target) + 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, OnePeerExact, ::testing::Values(8, 16));

TEST(RingMixing, ContractsPerRoundByTheSlem) {
  for (std::size_t n : {8u, 16u}) {
    auto w = uniform_weights(ring_graph(n));
    const double predicted = second_largest_eigenvalue_modulus(w);
    auto x = random_vector(n, 42);
    // Let the faster modes die out, then measure the per-round contraction of disagreement.
    for (int t = 0; t < 30; ++t) x = w.apply(x);
    double before = disagreement(x);
    const int rounds = 20;
    for (int t = 0; t < rounds; ++t) x = w.apply(x);
    double measured = std::pow(disagreement(x) / before, 1.0 / rounds);
    EXPECT_NEAR(measured / predicted, 1.0, 0.05) << "n=" << n << " measured " << measured
                                                 << " predicted " << predicted;
  }
}

TEST(RingMixing, PreservesTheAverage) {
  auto w = metropolis_weights(ring_graph(7));
  auto x = random_vector(7, 3);
  double m = mean(x);
  for (int t = 0; t < 50; ++t) x = w.apply(x);
  EXPECT_NEAR(mean(x), m, 1e-12);
  EXPECT_LT(disagreement(x), 1e-3);
}

}  // namespace
}  // namespace starling::topology
