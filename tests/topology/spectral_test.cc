// Known spectral values: the second-largest eigenvalue modulus (SLEM) of standard mixing matrices.
#include <gtest/gtest.h>

#include <cmath>

#include "topology/analysis.h"
#include "topology/cluster_file.h"
#include "topology/mixing.h"
#include "topology/topology.h"

namespace starling::topology {
namespace {

TEST(Spectral, RingOfEightUniform) {
  // Eigenvalues of (I + A) / 3 on C_8 are (1 + 2 cos(2 pi k / 8)) / 3; k = 1 gives 0.8047.
  double slem = second_largest_eigenvalue_modulus(uniform_weights(ring_graph(8)));
  EXPECT_NEAR(slem, 0.8047, 1e-4);
  EXPECT_NEAR(slem, (1 + 2 * std::cos(2 * M_PI / 8)) / 3, 1e-9);
}

TEST(Spectral, HypercubeOfEightUniform) {
  EXPECT_NEAR(second_largest_eigenvalue_modulus(uniform_weights(hypercube_graph(8))), 0.5, 1e-4);
}

TEST(Spectral, FourByFourTorusUniform) {
  EXPECT_NEAR(second_largest_eigenvalue_modulus(uniform_weights(torus_graph(4, 4))), 0.6, 1e-4);
}

TEST(Spectral, CompleteGraphMixesInOneRound) {
  EXPECT_NEAR(second_largest_eigenvalue_modulus(uniform_weights(complete_graph(8))), 0.0, 1e-4);
  EXPECT_EQ(rounds_to_shrink_tenfold(0.0), 1u);
}

TEST(Spectral, MetropolisEqualsUniformOnRegularGraphs) {
  auto a = metropolis_weights(ring_graph(8));
  auto b = uniform_weights(ring_graph(8));
  EXPECT_NEAR((a - b).frobenius_norm(), 0.0, 1e-15);
}

TEST(Spectral, MetropolisIsDoublyStochasticOnIrregularGraphs) {
  Graph g = Graph::from_edges(5, {{0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 2}});
  std::vector<std::string> names{"a", "b", "c", "d", "e"};
  auto w = metropolis_weights(g);
  EXPECT_FALSE(row_stochastic_problem(w, g, names).has_value());
  EXPECT_FALSE(column_stochastic_problem(w, names).has_value());
  EXPECT_TRUE(w.is_symmetric());
  auto u = uniform_weights(g);
  EXPECT_FALSE(row_stochastic_problem(u, g, names).has_value());
  EXPECT_TRUE(column_stochastic_problem(u, names).has_value());
  // Uniform weights on a star-like graph are not symmetric; SLEM still real and < 1.
  double slem = second_largest_eigenvalue_modulus(u);
  EXPECT_GT(slem, 0.0);
  EXPECT_LT(slem, 1.0);
}

TEST(Spectral, SpectralRadiusHandlesRotations) {
  // A rotation by 90 degrees scaled by 0.5 has complex eigenvalues of modulus 0.5; plain power
  // iteration would oscillate.
  MixingMatrix m(2);
  m(0, 1) = -0.5;
  m(1, 0) = 0.5;
  EXPECT_NEAR(spectral_radius(m), 0.5, 1e-9);
}

TEST(Spectral, RoundsToShrinkTenfold) {
  EXPECT_EQ(rounds_to_shrink_tenfold(0.1), 1u);
  EXPECT_EQ(rounds_to_shrink_tenfold(0.5), 4u);          // 0.5^4 = 0.0625
  EXPECT_EQ(rounds_to_shrink_tenfold(0.8047), 11u);      // 0.8047^11 = 0.0917
  EXPECT_EQ(rounds_to_shrink_tenfold(1.0), kNever);
}

TEST(Spectral, OnePeerExponentialAnalysis) {
  ClusterSpec spec = parse_cluster_text(R"(
[cluster]
name = "ope"
[topology]
kind = "one-peer-exponential"
[[node]]
id = "a"
endpoint = "tcp://127.0.0.1:1"
[[node]]
id = "b"
endpoint = "tcp://127.0.0.1:2"
[[node]]
id = "c"
endpoint = "tcp://127.0.0.1:3"
[[node]]
id = "d"
endpoint = "tcp://127.0.0.1:4"
)", "ope.toml");
  auto analysis = Topology::compile(spec).analyse();
  EXPECT_TRUE(analysis.time_varying);
  EXPECT_EQ(analysis.period, 2u);
  EXPECT_NEAR(analysis.period_slem, 0.0, 1e-6);
  EXPECT_EQ(analysis.rounds_to_tenfold, 2u);  // exact average after log2(4) rounds
}

TEST(Spectral, AnalysisOfRingConfig) {
  auto spec = parse_cluster_file(std::string(STARLING_SOURCE_DIR) + "/configs/ring4.toml");
  auto analysis = Topology::compile(spec).analyse();
  EXPECT_EQ(analysis.min_degree, 2u);
  EXPECT_EQ(analysis.diameter, 2u);
  EXPECT_NEAR(analysis.slem, 1.0 / 3.0, 1e-9);  // metropolis on C_4: eigenvalues 1, 1/3, 1/3, -1/3
  EXPECT_NEAR(analysis.spectral_gap, 2.0 / 3.0, 1e-9);
  EXPECT_EQ(analysis.rounds_to_tenfold, 3u);
}

}  // namespace
}  // namespace starling::topology
