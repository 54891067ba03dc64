// Drift-threshold averaging over the in-process fake network.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "gossip/dynamic_averager.h"
#include "gossip/fake_transport.h"
#include "topology/cluster_file.h"
#include "topology/topology.h"

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;

topology::ClusterSpec ring_spec(std::size_t n) {
  std::string text = "[cluster]\nname = \"d\"\n[topology]\nkind = \"ring\"\n";
  for (std::size_t i = 0; i < n; ++i) {
    text += "[[node]]\nid = \"n" + std::to_string(i) + "\"\nendpoint = \"tcp://127.0.0.1:" +
            std::to_string(9100 + i) + "\"\n";
  }
  return topology::parse_cluster_text(text, "d.toml");
}

struct Cluster {
  topology::ClusterSpec spec;
  topology::Topology topo;
  FakeNetwork network;
  std::vector<std::unique_ptr<DynamicAverager>> nodes;

  // `reference`: every node's first reference (zeros when empty).
  Cluster(std::size_t n, std::size_t dim, double delta,
          std::chrono::milliseconds lock_timeout = 10s,
          WirePrecision precision = WirePrecision::f32, std::vector<float> reference = {})
      : Cluster(n, dim, [&] {
          DynamicOptions o;
          o.delta = delta;
          o.reply_timeout = 2000ms;
          o.lock_timeout = lock_timeout;
          o.precision = precision;
          return o;
        }(), std::move(reference)) {}

  Cluster(std::size_t n, std::size_t dim, const DynamicOptions& o, std::vector<float> reference = {})
      : spec(ring_spec(n)), topo(topology::Topology::compile(spec)), network(topo.names(), 1) {
    if (reference.empty()) reference.assign(dim, 0.0f);
    for (std::size_t i = 0; i < n; ++i) {
      nodes.push_back(std::make_unique<DynamicAverager>(network.node(i), topo, o, reference));
    }
  }

  // Waits until no node has a pending violation or lock: every balancing has ended.
  // `quiet`: how long without a new update counts as settled (longer than any reply timeout
  // a balancing may be waiting out).
  std::vector<std::vector<DynamicUpdate>> settle(std::chrono::milliseconds limit = 10s,
                                                 std::chrono::milliseconds quiet = 300ms) {
    std::vector<std::vector<DynamicUpdate>> updates(nodes.size());
    auto deadline = Clock::now() + limit;
    auto quiet_since = Clock::now();
    while (Clock::now() < deadline) {
      bool any = false;
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        while (auto u = nodes[i]->take_update()) {
          updates[i].push_back(std::move(*u));
          any = true;
        }
      }
      if (any) quiet_since = Clock::now();
      if (Clock::now() - quiet_since > quiet) break;
      std::this_thread::sleep_for(5ms);
    }
    return updates;
  }
};

std::vector<float> constant(std::size_t dim, float v) { return std::vector<float>(dim, v); }

// Waits up to 5 s for the node's next update.
bool eventually_take(DynamicAverager& node, std::optional<DynamicUpdate>& out) {
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    if ((out = node.take_update())) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

TEST(DynamicAveraging, TheLocalConditionIsTheSquaredDriftAgainstDelta) {
  Cluster c(4, 4, 1.0);
  // ||x - r||^2 = 4 * 0.25^2 = 0.25: within delta.
  EXPECT_DOUBLE_EQ(c.nodes[0]->check(constant(4, 0.25f)), 0.25);
  EXPECT_EQ(c.nodes[0]->stats().violations, 0u);
  // 4 * 1^2 = 4 > 1: a violation.
  EXPECT_DOUBLE_EQ(c.nodes[0]->check(constant(4, 1.0f)), 4.0);
  EXPECT_EQ(c.nodes[0]->stats().violations, 1u);
}

TEST(DynamicAveraging, NoViolationMeansNoBytes) {
  Cluster c(6, 100, 1.0);
  for (int round = 0; round < 20; ++round) {
    for (std::size_t i = 0; i < 6; ++i) c.nodes[i]->check(constant(100, 0.02f * static_cast<float>(i % 3)));  // drift <= 0.16
  }
  std::this_thread::sleep_for(100ms);
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(c.nodes[i]->stats().violations, 0u);
    EXPECT_FALSE(c.nodes[i]->take_update().has_value());
    for (const auto& peer : c.network.node(i).peers().snapshot()) EXPECT_EQ(peer.bytes_sent, 0u);
  }
}

TEST(DynamicAveraging, WideningStopsAtTheFirstSetThatSatisfiesTheCondition) {
  // Ring of 16: node 0 drifts to +10, nodes 2 and 14 to -5, the rest stay at the reference 0.
  // {15, 0, 1} averages 10/3 (squared drift 4 * 11.1 > 4 = delta): widen. {14..2} averages 0:
  // satisfied, five nodes take it, and the widening stops there (7 or more would be next).
  const std::size_t n = 16, dim = 4;
  Cluster c(n, dim, 4.0);
  for (std::size_t i = 1; i < n; ++i) {
    c.nodes[i]->set_delta(1e9);  // only node 0 may violate
    float v = (i == 2 || i == 14) ? -5.0f : 0.0f;
    c.nodes[i]->check(constant(dim, v));
  }
  c.nodes[0]->check(constant(dim, 10.0f));
  auto updates = c.settle();
  std::vector<std::size_t> updated;
  for (std::size_t i = 0; i < n; ++i) {
    if (!updates[i].empty()) updated.push_back(i);
  }
  EXPECT_EQ(updated, (std::vector<std::size_t>{0, 1, 2, 14, 15}));
  EXPECT_FLOAT_EQ(updates[0].at(0).delta[0], -10.0f);  // took the average 0
  EXPECT_FLOAT_EQ(updates[2].at(0).delta[0], 5.0f);
  EXPECT_FALSE(updates[0][0].full_sync);
  EXPECT_EQ(updates[0][0].set_size, 5u);
  EXPECT_EQ(c.nodes[0]->stats().local_balancings, 1u);
  EXPECT_EQ(c.nodes[0]->stats().full_syncs, 0u);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(c.nodes[i]->reference(), constant(dim, 0.0f));
}

TEST(DynamicAveraging, AFullSynchronizationGivesEveryNodeTheSameReference) {
  // Ring of 8: no local set can bring node 0 back (everyone else drifted the same way), so the
  // set grows to half the cluster and the driver synchronizes all eight.
  const std::size_t n = 8, dim = 16;
  Cluster c(n, dim, 1.0);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(3.0f, 1.0f);
  std::vector<std::vector<float>> models(n, std::vector<float>(dim));
  for (std::size_t i = 0; i < n; ++i) {
    for (float& v : models[i]) v = normal(rng);
    if (i != 0) c.nodes[i]->set_delta(1e9);
    c.nodes[i]->check(models[i]);
  }
  // Node 0 checks last, so every member has published its model.
  c.nodes[0]->set_delta(1.0);
  c.nodes[0]->check(models[0]);
  auto updates = c.settle();
  std::vector<float> mean(dim, 0.0f);
  for (const auto& m : models) {
    for (std::size_t k = 0; k < dim; ++k) mean[k] += m[k] / static_cast<float>(n);
  }
  auto reference = c.nodes[0]->reference();
  for (std::size_t k = 0; k < dim; ++k) EXPECT_NEAR(reference[k], mean[k], 1e-5);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(updates[i].size(), 1u) << i;
    EXPECT_TRUE(updates[i][0].full_sync);
    EXPECT_EQ(c.nodes[i]->reference(), reference) << "node " << i;  // bit for bit
    for (std::size_t k = 0; k < dim; ++k) {
      EXPECT_NEAR(models[i][k] + updates[i][0].delta[k], mean[k], 1e-5);
    }
  }
  EXPECT_EQ(c.nodes[0]->stats().full_syncs, 1u);
}

// Eight nodes violate at once; returns after checking that everything settled without deadlock
// and that the cluster's average model moved by at most `tolerance`.
void concurrent_violations_on_a_ring_of_eight(WirePrecision precision, double tolerance) {
  const std::size_t n = 8, dim = 32;
  Cluster c(n, dim, 1.0, 10s, precision);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<std::vector<float>> models(n, std::vector<float>(dim));
  std::vector<double> mean(dim, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < dim; ++k) {
      models[i][k] = normal(rng);
      mean[k] += models[i][k] / static_cast<double>(n);
    }
  }
  // Everyone publishes, then everyone violates at once.
  for (std::size_t i = 0; i < n; ++i) {
    c.nodes[i]->set_delta(1e9);
    c.nodes[i]->check(models[i]);
  }
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->set_delta(1.0);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) threads.emplace_back([&, i] { c.nodes[i]->check(models[i]); });
  for (auto& t : threads) t.join();
  auto start = Clock::now();
  auto updates = c.settle(20s);
  EXPECT_LT(Clock::now() - start, 15s) << "balancings did not settle";
  // Every driver ended (no deadlock): each violation became a balancing or an abort, or was
  // settled by a balancing the node joined first.
  std::uint64_t ended = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto s = c.nodes[i]->stats();
    ended += s.local_balancings + s.full_syncs;
    EXPECT_LE(s.local_balancings + s.full_syncs + s.aborted, s.violations);
    for (const auto& u : updates[i]) {
      for (std::size_t k = 0; k < dim; ++k) models[i][k] += u.delta[k];
    }
  }
  EXPECT_GE(ended, 1u);
  // Each balancing replaces its members' models by their average: the cluster's average model
  // is unchanged.
  for (std::size_t k = 0; k < dim; ++k) {
    double after = 0;
    for (std::size_t i = 0; i < n; ++i) after += models[i][k] / static_cast<double>(n);
    EXPECT_NEAR(after, mean[k], tolerance) << k;
  }
}

TEST(DynamicAveraging, ConcurrentViolationsOnARingOfEightResolveAndPreserveTheAverage) {
  concurrent_violations_on_a_ring_of_eight(WirePrecision::f32, 1e-4);
}

TEST(DynamicAveraging, ConcurrentViolationsResolveWithBinaryHalfDriftsToo) {
  // Drifts of about 2 from the reference 0: binary16 rounds each by up to 2^-11 of that, and a
  // set's sum is preserved up to those roundings.
  concurrent_violations_on_a_ring_of_eight(WirePrecision::f16, 5e-3);
}

// Runs one full synchronization of a ring of 8 from models near `reference` (drifts of about
// 0.1); returns every node's update and the bytes the whole cluster sent.
struct FullSyncRun {
  std::vector<std::vector<float>> models;
  std::vector<std::vector<DynamicUpdate>> updates;
  std::vector<std::vector<float>> references;
  std::uint64_t bytes = 0;
};

FullSyncRun full_synchronization(WirePrecision precision, const std::vector<float>& reference) {
  const std::size_t n = 8, dim = reference.size();
  Cluster c(n, dim, 1e9, 10s, precision, reference);
  FullSyncRun run;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.1f, 0.05f);  // all drift the same way: no local fix
  run.models.assign(n, reference);
  for (std::size_t i = 0; i < n; ++i) {
    for (float& v : run.models[i]) v += normal(rng);
    c.nodes[i]->check(run.models[i]);
  }
  c.nodes[0]->set_delta(1e-6);
  c.nodes[0]->check(run.models[0]);
  run.updates = c.settle();
  for (std::size_t i = 0; i < n; ++i) {
    run.references.push_back(c.nodes[i]->reference());
    for (const auto& peer : c.network.node(i).peers().snapshot()) run.bytes += peer.bytes_sent;
  }
  return run;
}

TEST(DynamicAveraging, BinaryHalfDriftsHalveTheBytesAndKeepTheReferencesIdentical) {
  // A reference far from zero (about 4) with drifts of about 0.1: rounding the models to
  // binary16 would err by up to 4 * 2^-11 = 2e-3; rounding their drifts errs by 0.1 * 2^-11.
  const std::size_t dim = 4096;
  std::vector<float> reference(dim);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> far(3.0f, 5.0f);
  for (float& v : reference) v = far(rng);

  FullSyncRun f32 = full_synchronization(WirePrecision::f32, reference);
  FullSyncRun f16 = full_synchronization(WirePrecision::f16, reference);
  const double ratio = static_cast<double>(f16.bytes) / static_cast<double>(f32.bytes);
  EXPECT_GT(ratio, 0.45);
  EXPECT_LT(ratio, 0.55) << f16.bytes << " against " << f32.bytes;

  const std::size_t n = f16.models.size();
  std::vector<double> mean(dim, 0.0);
  for (const auto& m : f16.models) {
    for (std::size_t k = 0; k < dim; ++k) mean[k] += m[k] / static_cast<double>(n);
  }
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(f16.updates[i].size(), 1u) << i;
    EXPECT_TRUE(f16.updates[i][0].full_sync);
    EXPECT_EQ(f16.references[i], f16.references[0]) << "node " << i;  // bit for bit
    double worst = 0;
    for (std::size_t k = 0; k < dim; ++k) {
      worst = std::max(worst, std::abs(f16.models[i][k] + f16.updates[i][0].delta[k] - mean[k]));
    }
    EXPECT_LT(worst, 2e-4) << "node " << i << " took an average this far from the mean";
  }
}

TEST(DynamicAveraging, AMemberWithAnotherReferenceSendsItsWholeModelAndEndsWithTheSameReference) {
  // Ring of 4 with f16: node 2 missed a full synchronization (its reference differs), so its
  // drift would decode wrongly at the driver. It answers with its float32 model, gets the
  // average back in float32, and ends with the reference the others rebuilt from binary16.
  const std::size_t n = 4, dim = 1024;
  Cluster c(n, dim, 1e9, 10s, WirePrecision::f16, constant(dim, 1.0f));
  c.nodes[2]->restore_reference(constant(dim, 0.5f));
  std::vector<std::vector<float>> models(n);
  for (std::size_t i = 0; i < n; ++i) {
    models[i] = constant(dim, 1.0f + 0.1f * static_cast<float>(i + 1));
    c.nodes[i]->check(models[i]);
  }
  c.nodes[0]->set_delta(1e-6);
  c.nodes[0]->check(models[0]);
  auto updates = c.settle();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(updates[i].size(), 1u) << i;
    EXPECT_TRUE(updates[i][0].full_sync);
    EXPECT_EQ(c.nodes[i]->reference(), c.nodes[0]->reference()) << "node " << i;
    EXPECT_NEAR(models[i][0] + updates[i][0].delta[0], 1.25f, 1e-4) << "node " << i;
  }
  auto bytes_to = [&](std::size_t from, std::size_t to) {
    return c.network.node(from).peers().snapshot().at(to).bytes_sent;
  };
  EXPECT_GT(bytes_to(2, 0), dim * sizeof(float));  // its whole model
  EXPECT_LT(bytes_to(1, 0), dim * sizeof(float));   // a binary16 drift
  EXPECT_GT(bytes_to(0, 2), dim * sizeof(float));   // the average, in float32
  EXPECT_LT(bytes_to(0, 1), dim * sizeof(float));
}

TEST(DynamicAveraging, DriftsBeyondBinaryHalfTravelAsFloat32AndEveryoneTakesTheAverage) {
  // Ring of 4 with f16, reference 0: node 1's model is 3e5 away (its drift would be Inf in
  // binary16), and so is the average (75,000.25 > 65,504). Node 1 answers with its float32
  // model and the driver sends the average in float32; before, node 1's reply was refused as
  // non-finite and left out, and the driver took r + Inf.
  const std::size_t n = 4, dim = 512;
  Cluster c(n, dim, 1e9, 10s, WirePrecision::f16);
  std::vector<std::vector<float>> models = {constant(dim, 0.2f), constant(dim, 3e5f),
                                            constant(dim, 0.3f), constant(dim, 0.5f)};
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->check(models[i]);
  c.nodes[0]->set_delta(1e-6);
  c.nodes[0]->check(models[0]);
  auto updates = c.settle();
  const float mean = (0.2f + 3e5f + 0.3f + 0.5f) / 4;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(updates[i].size(), 1u) << "node " << i << " took no average";
    EXPECT_TRUE(updates[i][0].full_sync);
    EXPECT_EQ(c.nodes[i]->reference(), c.nodes[0]->reference()) << "node " << i;
    for (std::size_t k = 0; k < dim; k += 97) {
      const float taken = models[i][k] + updates[i][0].delta[k];
      ASSERT_TRUE(std::isfinite(taken)) << "node " << i;
      EXPECT_NEAR(taken, mean, 0.05f) << "node " << i;
    }
  }
}

TEST(DynamicAveraging, BackToBackBalancingsSeeTheAveragedModel) {
  // Node 0 drives a full synchronization of 4 nodes; then node 2 drives another before anyone
  // checks again. Members must answer the second with the average of the first, or the old
  // snapshot's correction would be applied twice.
  const std::size_t n = 4, dim = 8;
  Cluster c(n, dim, 1e9);
  std::vector<std::vector<float>> models = {constant(dim, 4), constant(dim, 0), constant(dim, -2),
                                            constant(dim, 2)};
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->check(models[i]);
  c.nodes[0]->set_delta(0.0);
  c.nodes[0]->check(models[0]);
  auto first = c.settle();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(first[i].size(), 1u) << i;
    for (std::size_t k = 0; k < dim; ++k) models[i][k] += first[i][0].delta[k];  // all at 1
  }
  c.nodes[2]->set_delta(0.0);
  c.nodes[2]->check(models[2]);
  auto second = c.settle();
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& u : second[i]) {
      for (std::size_t k = 0; k < dim; ++k) models[i][k] += u.delta[k];
    }
    for (float v : models[i]) EXPECT_FLOAT_EQ(v, 1.0f) << "node " << i;
  }
}

TEST(DynamicAveraging, ADeadMemberIsLeftOutAfterTheReplyTimeout) {
  const std::size_t n = 16, dim = 4;
  Cluster c(n, dim, 1e9);
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->check(constant(dim, i == 1 ? -2.0f : 0.0f));
  // Node 15 cannot answer (its process is gone, but the others do not know yet).
  c.network.cut(15, 0);
  c.nodes[0]->set_delta(1.0);
  c.nodes[0]->check(constant(dim, 2.0f));
  auto start = Clock::now();
  auto updates = c.settle(10s, 2500ms);
  EXPECT_LT(Clock::now() - start, 8s);
  // {15, 0, 1} minus the silent 15: {0, 1} averages 0 and satisfies the condition.
  ASSERT_EQ(updates[0].size(), 1u);
  EXPECT_EQ(updates[0][0].set_size, 2u);
  EXPECT_EQ(updates[1].size(), 1u);
  EXPECT_TRUE(updates[15].empty());
}

TEST(DynamicAveraging, ADriverSlowerThanItsMembersLockTimeoutGivesUpRatherThanCommit) {
  // Node 0's request to node 3 is lost, so its gather waits the whole reply timeout (2 s);
  // node 1 answered at once and frees itself after its lock timeout (500 ms). Committing
  // then would give node 0 the average while node 1 ignores it.
  const std::size_t n = 4, dim = 4;
  Cluster c(n, dim, 1e9, 500ms);
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->check(constant(dim, 0.0f));
  c.network.cut(0, 3);
  c.nodes[0]->set_delta(20.0);  // drift 64 violates; {0, 1} averages 2, at 16 it satisfies
  c.nodes[0]->check(constant(dim, 4.0f));
  auto updates = c.settle(10s, 4000ms);  // quiet for longer than the gather takes
  EXPECT_EQ(updates[0].size(), updates[1].size()) << "the driver and a member disagree on the average";
  EXPECT_TRUE(updates[0].empty());
  EXPECT_EQ(c.nodes[0]->stats().aborted, 1u);
}

TEST(DynamicAveraging, ANodeThatLeftIsAskedAgainOnceItsNextProcessIsHeard) {
  // Node 1 stops (leave(): it answers "left"); later it starts again under a new process.
  // Balancings must take it back, or it would miss every reference update from then on.
  // (A ring of 8: on a ring of 4 every balancing is a full synchronization.)
  const std::size_t n = 8, dim = 4;
  Cluster c(n, dim, 1e9);
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->check(constant(dim, 0.0f));
  c.nodes[1]->leave(0ms);
  c.nodes[0]->set_delta(5.0);
  c.nodes[0]->check(constant(dim, 2.0f));  // drift 16; {0, 7} averages 1, at 4 it satisfies
  auto first = c.settle();
  ASSERT_EQ(first[0].size(), 1u);
  EXPECT_EQ(first[0][0].set_size, 2u);
  EXPECT_TRUE(first[1].empty()) << "a node that left was averaged";

  c.nodes[1].reset();
  c.network.kill(1);
  c.network.revive(1);
  DynamicOptions o;
  o.delta = 1e9;
  c.nodes[1] = std::make_unique<DynamicAverager>(c.network.node(1), c.topo, o, constant(dim, 0.0f));
  c.nodes[1]->check(constant(dim, 0.0f));
  OutgoingMessage heartbeat;  // what its transport sends first: node 0 hears the new process
  heartbeat.type = MessageType::heartbeat;
  c.network.node(1).send(0, heartbeat);

  c.nodes[0]->check(constant(dim, 2.0f));  // {7, 0, 1} averages 1: satisfied, with node 1
  auto second = c.settle();
  ASSERT_EQ(second[0].size(), 1u);
  EXPECT_EQ(second[1].size(), 1u) << "the restarted node was left out";
}

TEST(DynamicAveraging, AveragesQueuedForAPausedNodeStayBoundedAndSumUp) {
  // Node 1 takes no updates (its training loop is paused) while node 0 drives 20 full
  // synchronizations (a ring of 4). Its queue must stay bounded and still bring it exactly to
  // the last average.
  const std::size_t n = 4, dim = 4;
  Cluster c(n, dim, 1e9);
  for (std::size_t i = 0; i < n; ++i) c.nodes[i]->check(constant(dim, static_cast<float>(i)));
  std::vector<float> driver = constant(dim, 0.0f);
  for (int b = 0; b < 20; ++b) {
    for (float& v : driver) v += 1.0f;  // the driver trains on; its drift violates delta 0
    c.nodes[0]->set_delta(0.0);
    c.nodes[0]->check(driver);
    std::optional<DynamicUpdate> mine;
    ASSERT_TRUE(eventually_take(*c.nodes[0], mine)) << "balancing " << b;
    for (std::size_t k = 0; k < dim; ++k) driver[k] += mine->delta[k];
    for (std::size_t i : {2u, 3u}) {  // they apply theirs, and publish nothing new
      std::optional<DynamicUpdate> u;
      ASSERT_TRUE(eventually_take(*c.nodes[i], u));
    }
  }
  std::vector<float> paused = constant(dim, 1.0f);  // node 1's model since its last check
  std::size_t queued = 0, merged = 0;
  while (auto u = c.nodes[1]->take_update()) {
    ++queued;
    merged += u->merged;
    for (std::size_t k = 0; k < dim; ++k) paused[k] += u->delta[k];
  }
  EXPECT_LE(queued, DynamicAverager::kMaxQueuedUpdates);
  EXPECT_EQ(merged, 20u);
  for (std::size_t k = 0; k < dim; ++k) EXPECT_FLOAT_EQ(paused[k], driver[k]) << k;
}

// One averager (node 0) among raw transports that play drivers, so a test can hold node 0 in a
// balancing that never ends, the way a driver that crashed mid-balancing does.
struct HeldMember {
  topology::ClusterSpec spec = ring_spec(4);
  topology::Topology topo = topology::Topology::compile(spec);
  FakeNetwork network{topo.names(), 1};
  std::unique_ptr<DynamicAverager> member;

  explicit HeldMember(std::chrono::milliseconds lock_timeout) {
    DynamicOptions o;
    o.delta = 1e9;  // node 0 never violates: it only answers
    o.lock_timeout = lock_timeout;
    member = std::make_unique<DynamicAverager>(network.node(0), topo, o, constant(4, 0));
    member->check(constant(4, 1));  // publishes a model to answer with
    for (std::size_t i = 1; i < 4; ++i) DynamicAverager::open_mailbox(network.node(i));
  }

  void request(std::size_t driver, std::uint64_t balancing, std::uint64_t attempt) {
    OutgoingMessage m;
    m.type = MessageType::model_request;
    m.tag = balancing;
    m.aux0 = attempt;
    network.node(driver).send(0, std::move(m));
  }

  // Node 0's answer to `driver`: a model_reply (true), "busy" (false), or nothing (nullopt).
  std::optional<bool> answer(std::size_t driver, std::chrono::milliseconds wait) {
    auto m = network.node(driver).mailbox().take_any_of(
        {MessageType::model_reply, MessageType::balance_release}, Clock::now() + wait);
    if (!m) return std::nullopt;
    return m->header().type == MessageType::model_reply;
  }
};

TEST(DynamicAveraging, AMemberHeldByACrashedDriverAnswersItsNextProcess) {
  HeldMember c(60s);  // the lock timeout plays no part here
  c.request(3, 5, 0);
  ASSERT_EQ(c.answer(3, 2s), std::optional<bool>(true));  // node 0 is now in 3's balancing 5
  c.request(3, 6, 0);
  EXPECT_EQ(c.answer(3, 2s), std::optional<bool>(false)) << "same process, balancing 5 still open";
  // Node 3 crashes and comes back; the new process numbers its balancings from the start.
  c.network.kill(3);
  c.network.revive(3);
  DynamicAverager::open_mailbox(c.network.node(3));
  c.request(3, 1, 0);
  EXPECT_EQ(c.answer(3, 2s), std::optional<bool>(true));
}

TEST(DynamicAveraging, AStreamOfRequestsDoesNotHoldAMemberPastTheLockTimeout) {
  HeldMember c(300ms);
  c.request(3, 5, 0);
  ASSERT_EQ(c.answer(3, 2s), std::optional<bool>(true));  // held by 3, which then goes quiet
  // Node 2 retries every 10 ms, as a driver told "busy" does; node 0 must still let 3's
  // balancing go after the lock timeout and join 2's.
  const auto start = Clock::now();
  bool joined = false;
  for (std::uint64_t attempt = 0; !joined && Clock::now() - start < 5s; ++attempt) {
    c.request(2, 7, attempt);
    joined = c.answer(2, 10ms) == std::optional<bool>(true);
  }
  EXPECT_TRUE(joined) << "node 0 stayed in a balancing that could not end";
  EXPECT_LT(Clock::now() - start, 2s);
}

// A member's training thread: steps until a balancing involves the node, then stands still
// with `model` (what it has at that step boundary) until the balancing ends.
std::thread member_training_thread(DynamicAverager& node, std::vector<float> model) {
  return std::thread([&node, model = std::move(model)] {
    const auto deadline = Clock::now() + 5s;
    while (!node.involved() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    node.stand_still(model, 5s);
  });
}

// A ring of 4 whose members answer at their next step boundary (stand_still).
DynamicOptions answering_at_step_boundaries() {
  DynamicOptions o;
  o.delta = 1e9;
  o.fresh_reply_wait = 5s;
  return o;
}

TEST(DynamicAveraging, AMemberAnswersWithItsModelAtItsNextStepBoundary) {
  // Ring of 4 (every balancing is a full synchronization). The members published 1, 2, 3 at
  // their last check and trained on to 11, 12, 13 when the request came; each hands over the
  // model it has at its next step boundary, so the average includes that progress: with node
  // 0's 1, (1 + 11 + 12 + 13) / 4, not (1 + 1 + 2 + 3) / 4.
  const std::size_t n = 4, dim = 8;
  Cluster c(n, dim, answering_at_step_boundaries());
  for (std::size_t i = 1; i < n; ++i) c.nodes[i]->check(constant(dim, static_cast<float>(i)));
  std::vector<std::thread> training;
  for (std::size_t i = 1; i < n; ++i) {
    training.push_back(member_training_thread(*c.nodes[i], constant(dim, 10.0f + static_cast<float>(i))));
  }
  c.nodes[0]->set_delta(1e-6);
  c.nodes[0]->check(constant(dim, 1.0f));  // drift 8 > delta: node 0 drives
  for (auto& t : training) t.join();
  auto updates = c.settle();
  const float average = (1.0f + 11.0f + 12.0f + 13.0f) / 4.0f;
  ASSERT_EQ(updates[0].size(), 1u);
  EXPECT_FLOAT_EQ(1.0f + updates[0][0].delta[0], average);
  for (std::size_t i = 1; i < n; ++i) {
    ASSERT_EQ(updates[i].size(), 1u) << i;
    EXPECT_FLOAT_EQ(10.0f + static_cast<float>(i) + updates[i][0].delta[0], average) << "node " << i;
  }
}

TEST(DynamicAveraging, AMemberWhoseTrainingThreadDoesNotComeAnswersWithItsLastCheck) {
  // Paused, evaluating or finished: nobody calls stand_still(). After fresh_reply_wait the
  // member answers with the model of its last check, well within the driver's reply timeout.
  const std::size_t n = 4, dim = 8;
  DynamicOptions o;
  o.delta = 1e9;
  o.reply_timeout = 2000ms;
  o.fresh_reply_wait = 200ms;
  Cluster c(n, dim, o);
  for (std::size_t i = 1; i < n; ++i) c.nodes[i]->check(constant(dim, static_cast<float>(i)));
  const auto start = Clock::now();
  c.nodes[0]->set_delta(1e-6);
  c.nodes[0]->check(constant(dim, 2.0f));
  std::optional<DynamicUpdate> update;
  ASSERT_TRUE(eventually_take(*c.nodes[0], update));
  EXPECT_GE(Clock::now() - start, 200ms);
  EXPECT_LT(Clock::now() - start, 1500ms);
  EXPECT_EQ(update->set_size, 4u);
  EXPECT_FLOAT_EQ(2.0f + update->delta[0], (2.0f + 1.0f + 2.0f + 3.0f) / 4.0f);
}

TEST(DynamicAveraging, AveragesNotAppliedYetCountInTheModelANodeHandsOver) {
  // Node 1 takes part in two full synchronizations of a ring of 4 and applies neither average
  // before the second asks for its model (its training thread was slow to take them). What it
  // hands over must count the first average, or the second's correction lands on top of the
  // first's: its own deviation subtracted twice, which made real clusters diverge.
  const std::size_t n = 4, dim = 4;
  Cluster c(n, dim, answering_at_step_boundaries());
  std::vector<std::vector<float>> model(n);
  for (std::size_t i = 0; i < n; ++i) model[i] = constant(dim, 4.0f * static_cast<float>(i + 1));
  for (std::size_t i = 1; i < n; ++i) c.nodes[i]->check(model[i]);

  auto balance = [&](float node0_moves_by) {
    std::vector<std::thread> members;
    for (std::size_t i = 1; i < n; ++i) members.push_back(member_training_thread(*c.nodes[i], model[i]));
    for (float& v : model[0]) v += node0_moves_by;
    c.nodes[0]->set_delta(1e-6);
    c.nodes[0]->check(model[0]);
    for (auto& t : members) t.join();
    c.nodes[0]->set_delta(1e9);
    std::optional<DynamicUpdate> update;
    ASSERT_TRUE(eventually_take(*c.nodes[0], update));
    for (std::size_t k = 0; k < dim; ++k) model[0][k] += update->delta[k];
    for (std::size_t i = 2; i < n; ++i) {  // nodes 2 and 3 apply at once; node 1 does not
      ASSERT_TRUE(eventually_take(*c.nodes[i], update));
      for (std::size_t k = 0; k < dim; ++k) model[i][k] += update->delta[k];
    }
  };
  balance(0.0f);  // average (4 + 8 + 12 + 16) / 4 = 10
  balance(8.0f);  // node 0 at 18, the rest at 10: average 12
  // Node 1 applies both averages now.
  std::vector<DynamicUpdate> late;
  std::optional<DynamicUpdate> update;
  while (late.size() < 2 && eventually_take(*c.nodes[1], update)) late.push_back(std::move(*update));
  ASSERT_EQ(late.size(), 2u);
  for (const auto& u : late) {
    for (std::size_t k = 0; k < dim; ++k) model[1][k] += u.delta[k];
  }
  for (std::size_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(model[i][0], 12.0f) << "node " << i;
}

}  // namespace
}  // namespace starling::gossip
