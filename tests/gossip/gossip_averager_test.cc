// Gossip averaging over the in-process fake network: the mix equals W x, dead and late
// neighbours give their weight to self, and nothing hangs.
#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <random>
#include <thread>

#include "gossip/fake_transport.h"
#include "gossip/gossip_averager.h"
#include "topology/cluster_file.h"
#include "topology/topology.h"

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;

topology::ClusterSpec cluster(const std::string& kind, std::size_t n) {
  std::string text = "[cluster]\nname = \"t\"\n[topology]\nkind = \"" + kind + "\"\n";
  for (std::size_t i = 0; i < n; ++i) {
    text += "[[node]]\nid = \"n" + std::to_string(i) + "\"\nendpoint = \"tcp://127.0.0.1:" +
            std::to_string(9000 + i) + "\"\n";
  }
  return topology::parse_cluster_text(text, "test.toml");
}

std::vector<std::vector<float>> random_models(std::size_t n, std::size_t length, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> models(n, std::vector<float>(length));
  for (auto& m : models) {
    for (float& v : m) v = normal(rng);
  }
  return models;
}

// Runs one round on every live node concurrently; returns the mixed models and results.
std::vector<GossipRoundResult> run_round(FakeNetwork& network, const topology::Topology& topo,
                                         std::vector<std::vector<float>>& models,
                                         std::vector<std::unique_ptr<GossipAverager>>& averagers,
                                         std::uint64_t round) {
  const std::size_t n = models.size();
  std::vector<std::future<GossipRoundResult>> futures(n);
  std::vector<std::vector<float>> mixed(n, std::vector<float>(models[0].size()));
  for (std::size_t i = 0; i < n; ++i) {
    if (!network.alive(i)) continue;
    futures[i] = std::async(std::launch::async, [&, i] {
      auto snapshot = std::make_shared<const std::vector<float>>(models[i]);
      return averagers[i]->run_round(round, snapshot, mixed[i]);
    });
  }
  std::vector<GossipRoundResult> results(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!network.alive(i)) continue;
    results[i] = futures[i].get();
    models[i] = mixed[i];
  }
  (void)topo;
  return results;
}

struct Cluster {
  topology::ClusterSpec spec;
  topology::Topology topo;
  FakeNetwork network;
  std::vector<std::unique_ptr<GossipAverager>> averagers;

  Cluster(const std::string& kind, std::size_t n, std::chrono::milliseconds timeout = 2000ms,
          WirePrecision precision = WirePrecision::f32)
      : spec(cluster(kind, n)),
        topo(topology::Topology::compile(spec)),
        network(topo.names(), 0x1234) {
    for (std::size_t i = 0; i < n; ++i) {
      averagers.push_back(std::make_unique<GossipAverager>(
          network.node(i), topo, timeout, GossipAverager::kDefaultWindow, precision));
    }
  }
};

TEST(GossipAverager, OneRoundOnARingEqualsWTimesX) {
  Cluster c("ring", 5);
  auto models = random_models(5, 1000, 1);
  auto before = models;
  auto results = run_round(c.network, c.topo, models, c.averagers, 0);
  const auto& w = c.topo.matrix(0);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(results[i].received, 2u);
    EXPECT_TRUE(results[i].missing.empty());
    for (std::size_t k = 0; k < 1000; k += 37) {
      double expected = 0;
      for (std::size_t j = 0; j < 5; ++j) expected += w(i, j) * before[j][k];
      EXPECT_NEAR(models[i][k], expected, 1e-5);
    }
    EXPECT_GT(results[i].consensus_distance, 0.0);
  }
}

TEST(GossipAverager, RepeatedRoundsReachConsensusAndKeepTheAverage) {
  Cluster c("ring", 6);
  auto models = random_models(6, 64, 2);
  std::vector<double> mean(64, 0.0);
  for (const auto& m : models) {
    for (std::size_t k = 0; k < 64; ++k) mean[k] += m[k] / 6.0;
  }
  double distance = 0;
  for (std::uint64_t r = 0; r < 60; ++r) {
    auto results = run_round(c.network, c.topo, models, c.averagers, r);
    distance = results[0].consensus_distance;
  }
  EXPECT_LT(distance, 1e-4);
  for (const auto& m : models) {
    for (std::size_t k = 0; k < 64; ++k) EXPECT_NEAR(m[k], mean[k], 1e-4);
  }
}

TEST(GossipAverager, OnePeerExponentialReachesTheExactAverageInLog2NRounds) {
  Cluster c("one-peer-exponential", 8);
  auto models = random_models(8, 256, 3);
  std::vector<double> mean(256, 0.0);
  for (const auto& m : models) {
    for (std::size_t k = 0; k < 256; ++k) mean[k] += m[k] / 8.0;
  }
  for (std::uint64_t r = 0; r < 3; ++r) {
    auto results = run_round(c.network, c.topo, models, c.averagers, r);
    for (const auto& result : results) EXPECT_EQ(result.received, 1u);
  }
  for (const auto& m : models) {
    for (std::size_t k = 0; k < 256; ++k) EXPECT_NEAR(m[k], mean[k], 1e-5);
  }
}

TEST(GossipAverager, HalfPrecisionMixesTheNeighboursAsRoundedToBinary16) {
  Cluster c("ring", 5, 2000ms, WirePrecision::f16);
  auto models = random_models(5, 3000, 8);  // not a multiple of the widening block or of 8
  auto before = models;
  auto results = run_round(c.network, c.topo, models, c.averagers, 0);
  const auto& w = c.topo.matrix(0);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(results[i].received, 2u);
    for (std::size_t k = 0; k < 3000; ++k) {
      // Output::mix: the own term exact, the neighbours' as binary16 carried them.
      double expected = w(i, i) * before[i][k];
      for (std::size_t j = 0; j < 5; ++j) {
        if (j != i) expected += w(i, j) * half_to_float(float_to_half(before[j][k]));
      }
      ASSERT_NEAR(models[i][k], expected, 1e-5) << i << " " << k;
    }
  }
  // Each neighbour's payload was half the size of its floats.
  const auto info = c.network.node(0).peers().snapshot()[1];
  EXPECT_GE(info.bytes_received, 3000u * sizeof(Half));
  EXPECT_LT(info.bytes_received, 3000u * sizeof(float));
}

// Runs `rounds` rounds of Output::delta on every node of `c` and adds the deltas to `models`,
// checking in each round that the deltas sum to zero (the cluster's average never moves).
// Returns the largest consensus distance of the last round.
double run_delta_rounds(Cluster& c, std::vector<std::vector<float>>& models, std::uint64_t rounds) {
  const std::size_t n = models.size(), length = models[0].size();
  double distance = 0.0;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    std::vector<std::vector<float>> deltas(n, std::vector<float>(length));
    std::vector<std::future<GossipRoundResult>> futures;
    for (std::size_t i = 0; i < n; ++i) {
      futures.push_back(std::async(std::launch::async, [&, i] {
        auto snapshot = std::make_shared<const std::vector<float>>(models[i]);
        return c.averagers[i]->run_round(round, snapshot, deltas[i],
                                         GossipAverager::Output::delta);
      }));
    }
    distance = 0.0;
    for (auto& f : futures) distance = std::max(distance, f.get().consensus_distance);
    for (std::size_t k = 0; k < length; ++k) {
      double sum = 0.0;
      for (std::size_t i = 0; i < n; ++i) sum += deltas[i][k];
      EXPECT_NEAR(sum, 0.0, 1e-5) << "round " << round << ", element " << k;
      if (std::fabs(sum) > 1e-5) return distance;  // one failure says it
      for (std::size_t i = 0; i < n; ++i) models[i][k] += deltas[i][k];
    }
  }
  return distance;
}

std::vector<double> mean_of(const std::vector<std::vector<float>>& models) {
  std::vector<double> mean(models[0].size(), 0.0);
  for (const auto& m : models) {
    for (std::size_t k = 0; k < m.size(); ++k) mean[k] += m[k] / static_cast<double>(models.size());
  }
  return mean;
}

TEST(GossipAverager, HalfPrecisionDeltasNeverMoveTheClusterAverage) {
  Cluster c("ring", 4, 2000ms, WirePrecision::f16);
  constexpr std::size_t kLength = 777;
  auto models = random_models(4, kLength, 9);
  const std::vector<double> mean = mean_of(models);
  const double distance = run_delta_rounds(c, models, 40);
  for (const auto& m : models) {
    for (std::size_t k = 0; k < kLength; ++k) {
      // Consensus down to a few binary16 units in the last place of the values.
      EXPECT_NEAR(m[k], mean[k], std::max(1.0, std::fabs(mean[k])) * std::ldexp(1.0, -8));
    }
  }
  EXPECT_LT(distance, 0.05);  // from about sqrt(777) = 28 at the start
}

// int8: the deltas still sum to zero (each node's own term is its payload as sent), and the
// cluster gets to consensus within the quantisation's step.
TEST(GossipAverager, Int8DeltasNeverMoveTheClusterAverage) {
  Cluster c("ring", 4, 2000ms, WirePrecision::int8);
  constexpr std::size_t kLength = 777;  // three full blocks of 256 and a short one
  auto models = random_models(4, kLength, 9);
  const std::vector<double> mean = mean_of(models);
  double largest_mean = 0.0;
  for (double v : mean) largest_mean = std::max(largest_mean, std::fabs(v));
  const double distance = run_delta_rounds(c, models, 40);
  // A value is carried to within half a step, m / 254 (m: its block's largest |x|, about the
  // largest |mean| once the nodes agree); the disagreement that rounding feeds in each round
  // stays within a few such steps because mixing halves it again (ring of 4: each round takes
  // a node halfway to its neighbours' mean).
  const double step = largest_mean / 127.0;
  for (const auto& m : models) {
    for (std::size_t k = 0; k < kLength; ++k) EXPECT_NEAR(m[k], mean[k], 2.0 * step) << k;
  }
  // From about sqrt(777) = 28 at the start down to the rounding's floor: each of the 777
  // values of q(x_i) is off by about step / sqrt(12) (uniform rounding error), so
  // ||q(x_i) - mean|| stays near sqrt(777) * step / sqrt(12), about 0.1 here.
  EXPECT_LT(distance, 3.0 * std::sqrt(static_cast<double>(kLength)) * step / std::sqrt(12.0));
  // The payloads were a quarter of float32's bytes and a little more (a scale per 256 values).
  const auto info = c.network.node(0).peers().snapshot()[1];
  EXPECT_LT(info.bytes_received, 40u * kLength * sizeof(float) / 3);
}

// The daemon's path: exchange on one thread, then add_round_delta on the model in one pass. It
// must add exactly what run_round's Output::delta computes, for every input count (the
// unrolled kernels and the general one), every precision, and a neighbour left out.
TEST(GossipAverager, ExchangeThenAddRoundDeltaAddsRunRoundsDelta) {
  for (auto precision : {WirePrecision::f32, WirePrecision::f16, WirePrecision::int8}) {
    for (auto [kind, n] : {std::pair<std::string, std::size_t>{"ring", 5},
                           {"complete", 4}, {"complete", 10}}) {
      SCOPED_TRACE(std::string(to_string(precision)) + " " + kind + " " + std::to_string(n));
      constexpr std::size_t kLength = 2500;
      auto models = random_models(n, kLength, 21);
      // The reference: run_round's delta, on a cluster of its own.
      Cluster reference(kind, n, 300ms, precision);
      Cluster split(kind, n, 300ms, precision);
      reference.network.kill(n - 1);  // its neighbours leave it out (weight to self)
      split.network.kill(n - 1);
      std::vector<std::vector<float>> deltas(n, std::vector<float>(kLength));
      std::vector<std::future<GossipRoundResult>> expected(n - 1);
      for (std::size_t i = 0; i + 1 < n; ++i) {
        expected[i] = std::async(std::launch::async, [&, i] {
          auto snapshot = std::make_shared<const std::vector<float>>(models[i]);
          return reference.averagers[i]->run_round(0, snapshot, deltas[i],
                                                   GossipAverager::Output::delta);
        });
      }
      std::vector<std::future<double>> applied(n - 1);
      auto moved = models;  // the models moved on since their snapshots
      for (std::size_t i = 0; i + 1 < n; ++i) {
        for (float& v : moved[i]) v += 0.125f;
        applied[i] = std::async(std::launch::async, [&, i] {
          auto snapshot = split.averagers[i]->snapshot_of(models[i]);
          auto exchange = split.averagers[i]->exchange(0, snapshot);
          return split.averagers[i]->add_round_delta(exchange, snapshot, moved[i]);
        });
      }
      for (std::size_t i = 0; i + 1 < n; ++i) {
        const GossipRoundResult want = expected[i].get();
        const double distance = applied[i].get();
        EXPECT_NEAR(distance, want.consensus_distance, 1e-4 * (1.0 + want.consensus_distance));
        for (std::size_t k = 0; k < kLength; ++k) {
          ASSERT_NEAR(moved[i][k], models[i][k] + 0.125f + deltas[i][k], 2e-6f)
              << "node " << i << ", element " << k;
        }
      }
    }
  }
}

TEST(GossipAverager, TheWireFingerprintTellsThePrecisionsApart) {
  for (std::uint64_t model : {0ull, 1ull, 0xABCDEF0123456789ull}) {
    EXPECT_EQ(wire_fingerprint(model, WirePrecision::f32), model);
    EXPECT_NE(wire_fingerprint(model, WirePrecision::f16), model);
    EXPECT_NE(wire_fingerprint(model, WirePrecision::int8), model);
    EXPECT_NE(wire_fingerprint(model, WirePrecision::int8),
              wire_fingerprint(model, WirePrecision::f16));
  }
  EXPECT_NE(wire_fingerprint(1, WirePrecision::f16), wire_fingerprint(2, WirePrecision::f16));
}

TEST(GossipAverager, ADeadNeighboursWeightGoesToSelfWithoutWaiting) {
  Cluster c("ring", 4, 10s);
  c.network.kill(2);
  auto models = random_models(4, 100, 4);
  auto before = models;
  auto start = Clock::now();
  auto results = run_round(c.network, c.topo, models, c.averagers, 0);
  EXPECT_LT(Clock::now() - start, 2s) << "waited for a dead peer";
  // Node 1's neighbours are 0 and 2: 2 is dead, so x1 <- (1/3 + 1/3) x1 + 1/3 x0.
  EXPECT_EQ(results[1].missing, std::vector<std::size_t>{2});
  EXPECT_NEAR(results[1].self_weight, 2.0 / 3.0, 1e-12);
  for (std::size_t k = 0; k < 100; ++k) {
    EXPECT_NEAR(models[1][k], (2.0 / 3.0) * before[1][k] + (1.0 / 3.0) * before[0][k], 1e-5);
  }
}

TEST(GossipAverager, ALateNeighbourIsLeftOutAfterTheTimeout) {
  Cluster c("ring", 3, 100ms);
  c.network.cut(2, 0);  // node 0 never hears from node 2
  auto models = random_models(3, 10, 5);
  auto before = models;
  auto start = Clock::now();
  auto results = run_round(c.network, c.topo, models, c.averagers, 0);
  auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_EQ(results[0].missing, std::vector<std::size_t>{2});
  EXPECT_EQ(results[1].received, 2u);
  // The mix stays a convex combination: weights sum to one.
  for (std::size_t k = 0; k < 10; ++k) {
    EXPECT_NEAR(models[0][k], (2.0 / 3.0) * before[0][k] + (1.0 / 3.0) * before[1][k], 1e-5);
  }
}

TEST(GossipAverager, NeighboursAheadAreBufferedAndMessagesBehindAreLate) {
  Cluster c("ring", 2);
  std::vector<float> x0{1, 2}, x1{3, 4};
  std::vector<float> out(2);
  // Node 1 runs round 0 and then round 1 alone (node 0 has not started); its round 1 message
  // is buffered at node 0, then node 0 runs round 1 directly (it skipped round 0).
  auto f = std::async(std::launch::async, [&] {
    return c.averagers[1]->run_round(0, std::make_shared<const std::vector<float>>(x1), out);
  });
  std::vector<float> out0(2);
  auto r0 = c.averagers[0]->run_round(0, std::make_shared<const std::vector<float>>(x0), out0);
  f.get();
  EXPECT_EQ(r0.received, 1u);
  std::vector<float> out1(2);
  auto g = std::async(std::launch::async, [&] {
    return c.averagers[1]->run_round(1, std::make_shared<const std::vector<float>>(x1), out1);
  });
  auto r1 = c.averagers[0]->run_round(1, std::make_shared<const std::vector<float>>(x0), out0);
  g.get();
  EXPECT_EQ(r1.received, 1u);
  EXPECT_THROW(c.averagers[0]->run_round(1, std::make_shared<const std::vector<float>>(x0), out0),
               std::invalid_argument);
}

TEST(GossipAverager, OnlyNeighboursMayGossip) {
  auto spec = cluster("ring", 4);
  auto topo = topology::Topology::compile(spec);
  std::vector<std::vector<bool>> neighbours(4, std::vector<bool>(4, false));
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j : topo.graph().neighbours(i)) neighbours[i][j] = true;
  }
  FakeNetwork network(topo.names(), 7, neighbours);
  network.node(0).mailbox().set_window(MessageType::gossip_params, 0, 8);
  OutgoingMessage m;
  m.type = MessageType::gossip_params;
  m.payload = copy_payload(std::vector<float>{1, 2, 3});
  network.node(2).send(0, m);  // 2 is opposite 0 on a ring of 4
  auto info = network.node(0).peers().snapshot()[2];
  EXPECT_EQ(info.rejected[static_cast<std::size_t>(RejectReason::not_a_neighbour)], 1u);
  EXPECT_EQ(network.node(0).mailbox().buffered(), 0u);
  network.node(1).send(0, m);
  EXPECT_EQ(network.node(0).mailbox().buffered(), 1u);
}

TEST(GossipAverager, CatchUpJumpsToTheNextRoundOfTheMostAdvancedNeighbour) {
  Cluster c("ring", 3);
  EXPECT_EQ(c.averagers[0]->catch_up(5), 5u);
  c.network.node(0).peers().on_heartbeat(1, 7, 0);
  EXPECT_EQ(c.averagers[0]->catch_up(5), 7u);
  // Within the slack (normal jitter between neighbours) nobody jumps.
  EXPECT_EQ(c.averagers[0]->catch_up(5, 2), 5u);
  c.network.node(0).peers().on_heartbeat(2, 41, 0);
  EXPECT_EQ(c.averagers[0]->catch_up(5, 2), 41u);
  c.network.kill(2);
  EXPECT_EQ(c.averagers[0]->catch_up(5, 2), 5u);  // the dead do not count
}

TEST(GossipAverager, ANeighbourTwoRoundsPastThisOneIsNotWaitedFor) {
  Cluster c("ring", 3, 400ms);
  auto snapshot = std::make_shared<const std::vector<float>>(4, 1.0f);
  std::vector<float> mixed(4);
  OutgoingMessage from2;
  from2.type = MessageType::gossip_params;
  from2.payload = copy_payload(std::vector<float>{3, 3, 3, 3});

  // Neighbour 1 reports round 7 as its next: it ran 6 after 5, so its message for round 5
  // would be here if it had sent one (it jumped past 5 after a restart, say).
  c.network.node(0).peers().on_heartbeat(1, 7, 0);
  from2.tag = 5;
  c.network.node(2).send(0, from2);
  auto start = Clock::now();
  auto result = c.averagers[0]->run_round(5, snapshot, mixed);
  EXPECT_LT(Clock::now() - start, 200ms) << "waited for a message that cannot come";
  EXPECT_EQ(result.received, 1u);
  ASSERT_EQ(result.missing.size(), 1u);
  EXPECT_EQ(result.missing[0], 1u);

  // Reporting round 7 while this node runs 6, its message for 6 may still be on its way.
  from2.tag = 6;
  c.network.node(2).send(0, from2);
  start = Clock::now();
  result = c.averagers[0]->run_round(6, snapshot, mixed);
  EXPECT_GE(Clock::now() - start, 350ms) << "gave up on a neighbour that may still send";
  EXPECT_EQ(result.received, 1u);
}

TEST(GossipAverager, ASuspectNeighbourIsWaitedForUntilTheDeadline) {
  // Silence is what a slow link looks like: a neighbour whose model is on its way is waited
  // for even when its heartbeats are late enough to make it suspect.
  Cluster c("ring", 2, 5s);
  c.network.node(0).peers().declare(1, PeerState::suspect);
  std::vector<float> x0{1, 1}, x1{3, 3}, out0(2), out1(2);
  auto start = Clock::now();
  auto late = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(300ms);
    return c.averagers[1]->run_round(0, std::make_shared<const std::vector<float>>(x1), out1);
  });
  auto result = c.averagers[0]->run_round(0, std::make_shared<const std::vector<float>>(x0), out0);
  late.get();
  EXPECT_GE(Clock::now() - start, 300ms);
  EXPECT_EQ(result.received, 1u);
  EXPECT_FLOAT_EQ(out0[0], 2.0f);
}

TEST(GossipAverager, ANeighbourWhoseConnectionClosedIsNotWaitedFor) {
  // A crash closes the peer's sockets: the transport says so at once (and wakes the mailbox),
  // and the round stops waiting long before its deadline.
  Cluster c("ring", 2, 10s);
  std::vector<float> x0{1, 1}, out0(2);
  auto start = Clock::now();
  auto closer = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(200ms);
    c.network.node(0).peers().on_connection(1, false);
    c.network.node(0).mailbox().wake_all();
  });
  auto result = c.averagers[0]->run_round(0, std::make_shared<const std::vector<float>>(x0), out0);
  closer.get();
  EXPECT_LT(Clock::now() - start, 2s) << "waited for a neighbour whose connection closed";
  EXPECT_EQ(result.received, 0u);
  EXPECT_EQ(result.missing, std::vector<std::size_t>{1});
  // A round begun after the connection closed does not wait at all.
  start = Clock::now();
  result = c.averagers[0]->run_round(1, std::make_shared<const std::vector<float>>(x0), out0);
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(MixInto, ComputesWeightedSumAndDistance) {
  std::vector<float> a{1, 1}, b{3, 5}, out(2);
  double d = mix_into(out, {a, b}, {0.25, 0.75});
  EXPECT_FLOAT_EQ(out[0], 2.5f);
  EXPECT_FLOAT_EQ(out[1], 4.0f);
  // mean = (2, 3); a - mean = (-1, -2)
  EXPECT_NEAR(d, std::sqrt(5.0), 1e-9);
  mix_into(out, {a, b}, {0.25, 0.75}, /*delta=*/true);
  EXPECT_FLOAT_EQ(out[0], 1.5f);
  EXPECT_FLOAT_EQ(out[1], 3.0f);
}

TEST(MixInto, EveryInputCountAgreesWithTheDefinition) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t count = 1; count <= 10; ++count) {  // 9 and 10 take the general path
    const std::size_t n = 2500;  // not a multiple of the 1024-element block
    std::vector<std::vector<float>> inputs(count, std::vector<float>(n));
    std::vector<double> weights(count);
    for (auto& input : inputs) {
      for (float& v : input) v = normal(rng);
    }
    for (std::size_t j = 0; j < count; ++j) weights[j] = 1.0 / static_cast<double>(count + j);
    std::vector<std::span<const float>> views(inputs.begin(), inputs.end());
    std::vector<float> out(n), delta(n);
    double distance = mix_into(out, views, weights);
    mix_into(delta, views, weights, true);
    double squared = 0;
    for (std::size_t k = 0; k < n; ++k) {
      double mixed = 0, mean = 0;
      for (std::size_t j = 0; j < count; ++j) {
        mixed += weights[j] * inputs[j][k];
        mean += inputs[j][k] / static_cast<double>(count);
      }
      ASSERT_NEAR(out[k], mixed, 1e-5) << count;
      ASSERT_NEAR(delta[k], mixed - inputs[0][k], 1e-5) << count;
      squared += (inputs[0][k] - mean) * (inputs[0][k] - mean);
    }
    EXPECT_NEAR(distance, std::sqrt(squared), 1e-4 * std::sqrt(squared) + 1e-9) << count;
  }
}

}  // namespace
}  // namespace starling::gossip
