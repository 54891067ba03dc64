#include <gtest/gtest.h>

#include "topology/graph.h"

namespace starling::topology {
namespace {

void expect_symmetric_simple(const Graph& g) {
  for (std::size_t i = 0; i < g.size(); ++i) {
    for (std::size_t j : g.neighbours(i)) {
      EXPECT_NE(i, j);
      EXPECT_TRUE(g.has_edge(j, i)) << i << " - " << j;
    }
  }
}

TEST(Graph, RingHasDegreeTwoAndDiameterHalfN) {
  Graph g = ring_graph(8);
  expect_symmetric_simple(g);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(g.degree(i), 2u);
  EXPECT_TRUE(g.has_edge(0, 7));
  EXPECT_EQ(g.diameter(), 4u);
}

TEST(Graph, SmallRingsCollapseDuplicateEdges) {
  EXPECT_EQ(ring_graph(1).degree(0), 0u);
  EXPECT_EQ(ring_graph(2).degree(0), 1u);
  EXPECT_EQ(ring_graph(3).degree(0), 2u);
}

TEST(Graph, TorusWrapsInBothDirections) {
  Graph g = torus_graph(4, 4);
  expect_symmetric_simple(g);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(g.degree(i), 4u);
  EXPECT_TRUE(g.has_edge(0, 3));   // row wrap
  EXPECT_TRUE(g.has_edge(0, 12));  // column wrap
  EXPECT_EQ(g.diameter(), 4u);
  Graph thin = torus_graph(2, 4);  // the two vertical neighbours coincide
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(thin.degree(i), 3u);
}

TEST(Graph, HypercubeConnectsNodesOneBitApart) {
  Graph g = hypercube_graph(8);
  expect_symmetric_simple(g);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(g.degree(i), 3u);
  EXPECT_TRUE(g.has_edge(5, 4));
  EXPECT_TRUE(g.has_edge(5, 7));
  EXPECT_TRUE(g.has_edge(5, 1));
  EXPECT_FALSE(g.has_edge(5, 6));
  EXPECT_EQ(g.diameter(), 3u);
  EXPECT_THROW(hypercube_graph(6), std::invalid_argument);
}

TEST(Graph, ExponentialGraphUsesPowerOfTwoHops) {
  Graph g = exponential_graph(16);
  expect_symmetric_simple(g);
  // +-1, +-2, +-4 and 8 (= -8): seven neighbours.
  EXPECT_EQ(g.degree(0), 7u);
  for (std::size_t j : {1u, 2u, 4u, 8u, 12u, 14u, 15u}) EXPECT_TRUE(g.has_edge(0, j)) << j;
  EXPECT_FALSE(g.has_edge(0, 3));
}

TEST(Graph, OnePeerExponentialCyclesThroughHops) {
  EXPECT_EQ(one_peer_period(8), 3u);
  EXPECT_EQ(one_peer_period(16), 4u);
  EXPECT_EQ(one_peer_period(6), 3u);
  EXPECT_EQ(one_peer_send_to(3, 8, 0), 4u);
  EXPECT_EQ(one_peer_send_to(3, 8, 1), 5u);
  EXPECT_EQ(one_peer_send_to(3, 8, 2), 7u);
  EXPECT_EQ(one_peer_send_to(3, 8, 3), 4u);  // period 3
  EXPECT_EQ(one_peer_receive_from(0, 8, 2), 4u);
  for (std::uint64_t t = 0; t < 6; ++t) {
    for (std::size_t i = 0; i < 8; ++i) {
      EXPECT_EQ(one_peer_receive_from(one_peer_send_to(i, 8, t), 8, t), i);
    }
  }
}

TEST(Graph, ComponentsAreListedInOrder) {
  Graph g = Graph::from_edges(6, {{0, 1}, {2, 3}, {3, 4}});
  auto components = g.components();
  ASSERT_EQ(components.size(), 3u);
  EXPECT_EQ(components[0], (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(components[1], (std::vector<std::size_t>{2, 3, 4}));
  EXPECT_EQ(components[2], (std::vector<std::size_t>{5}));
  EXPECT_EQ(g.diameter(), std::numeric_limits<std::size_t>::max());
}

TEST(Graph, CompleteGraphHasDiameterOne) {
  Graph g = complete_graph(5);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(g.degree(i), 4u);
  EXPECT_EQ(g.diameter(), 1u);
}

}  // namespace
}  // namespace starling::topology
