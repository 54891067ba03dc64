// Dynamic averaging between starlingd processes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <csignal>
#include <thread>

#include "support/local_cluster.h"

namespace starling::testing {
namespace {

using namespace std::chrono_literals;

TEST(Dynamic, ViolationsTriggerBalancingsAndStatusShowsThem) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05";
  o.sync = "mode = \"dynamic\"\nperiod = 8\ndelta = 5.0";
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 4; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  std::uint64_t violations = 0, syncs = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    auto sync = cluster.metrics(i, "summary").back()["sync"];
    EXPECT_DOUBLE_EQ(sync.value("delta", 0.0), 5.0);
    EXPECT_GT(sync.value("checks", 0), 50);
    violations += sync.value("violations", std::uint64_t{0});
    syncs += sync.value("local_balancings", std::uint64_t{0}) + sync.value("full_syncs", std::uint64_t{0});
    // Each average a node took is logged.
    EXPECT_EQ(cluster.metrics(i, "balance").size(), sync.value("averages_taken", std::size_t{0}));
  }
  EXPECT_GT(violations, 0u);
  EXPECT_GT(syncs, 0u);
}

// wire_precision = "f16": balancings send binary16 drifts from the reference. On a ring of 4
// every balancing is a full synchronization of all 4 (the neighbourhood is already half the
// cluster), which costs 3 replies and 3 updates: 6 * 2 bytes per parameter with f16, 6 * 4
// with f32, or per average taken 3 and 6 bytes per parameter.
TEST(Dynamic, BinaryHalfBalancingsSendHalfTheBytes) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05";
  o.sync = "mode = \"dynamic\"\nperiod = 8\ndelta = 5.0\nwire_precision = \"f16\"";
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 4; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  double bytes = 0, averages = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    auto summary = cluster.metrics(i, "summary").back();
    EXPECT_EQ(summary["sync"].value("wire_precision", ""), "f16") << summary.dump();
    EXPECT_GT(summary.value("accuracy", 0.0), 0.75) << summary.dump();
    bytes += summary.value("bytes_sent", 0.0);
    averages += summary["sync"].value("averages_taken", 0.0);
  }
  ASSERT_GT(averages, 0) << "no balancing happened";
  const double parameters = cluster.metrics(0, "start").back().value("parameters", 0.0);
  ASSERT_GT(parameters, 0);
  // Heartbeats, requests and aborted balancings add a little to the 3 bytes per parameter.
  const double per_average = bytes / averages / parameters;
  EXPECT_GT(per_average, 2.5);
  EXPECT_LT(per_average, 4.5) << "float32 models would cost 6 bytes per parameter";
}

std::int64_t step_of(LocalCluster& cluster, std::size_t i) {
  auto status = cluster.ask(i, "status", 1000ms);
  return status ? status->value("step", std::int64_t{-1}) : -1;
}

// max_lead_steps: with one node stalled (SIGSTOP) the others stop within the lead of its last
// reported step, until it turns suspect and stops counting; then they go on without it.
TEST(Dynamic, MaxLeadStepsHoldsNodesBackUntilAStalledPeerTurnsSuspect) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 8\neval_every = 100000";
  o.sync = "mode = \"dynamic\"\nperiod = 8\ndelta = 1e12\nmax_lead_steps = 16\n"
           "heartbeat_ms = 20\nsuspect_after_ms = 2500\ndead_after_ms = 5000";
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 3) >= 100; }, 60s)) << cluster.log(3);
  cluster.signal(3, SIGSTOP);
  const auto stopped = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(500ms);  // the others run into the lead and wait
  std::vector<std::int64_t> held;
  for (std::size_t i = 0; i < 3; ++i) held.push_back(step_of(cluster, i));
  std::this_thread::sleep_for(1000ms);
  ASSERT_LT(std::chrono::steady_clock::now() - stopped, 2500ms) << "the test itself was too slow";
  for (std::size_t i = 0; i < 3; ++i) {
    // At most one check period more (the lead is checked every 8 steps).
    EXPECT_LE(step_of(cluster, i) - held[i], 8) << "node " << i << " ran ahead of the stalled n3";
  }
  // Once n3 is suspect it no longer holds anyone back.
  std::this_thread::sleep_for(2500ms);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_GT(step_of(cluster, i) - held[i], 100) << "node " << i << " still waits for n3";
  }
  cluster.signal(3, SIGCONT);
  for (std::size_t i = 0; i < 4; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  for (std::size_t i = 0; i < 3; ++i) {
    auto sync = cluster.metrics(i, "summary").back()["sync"];
    EXPECT_GT(sync.value("held_back_seconds", 0.0), 1.0) << sync.dump();
  }
}

TEST(Dynamic, WithoutViolationsOnlyHeartbeatsAreSent) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05";
  o.sync = "mode = \"dynamic\"\nperiod = 8\ndelta = 1e12";
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 4; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  for (std::size_t i = 0; i < 4; ++i) {
    auto summary = cluster.metrics(i, "summary").back();
    EXPECT_EQ(summary["sync"].value("violations", 1), 0);
    // Heartbeats and their acks are bare 64-byte headers; no model ever left the node.
    EXPECT_LT(summary.value("bytes_sent", 0.0), 64.0 * 3 * 10 * 60) << summary.dump();
    EXPECT_TRUE(cluster.metrics(i, "balance").empty());
  }
}

TEST(Dynamic, ABudgetRaisesDeltaWhenANodeSendsMoreThanItMay) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 3\nlr = 0.05";
  // 1 kB per epoch: any balancing overspends, so delta doubles at every epoch end.
  o.sync = "mode = \"dynamic\"\nperiod = 8\ndelta = 1.0\ndelta_mode = \"budget\"\n"
           "budget_bytes_per_epoch = 1000";
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 4; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  for (std::size_t i = 0; i < 4; ++i) {
    auto events = cluster.metrics(i, "delta");
    ASSERT_GE(events.size(), 2u) << cluster.log(i);
    double previous = 1.0;
    for (const auto& e : events) {
      double delta = e.value("delta", 0.0);
      if (e.value("bytes", 0) > 2000) {
        EXPECT_DOUBLE_EQ(delta, 2 * previous) << e.dump();  // clamped at twice
      }
      previous = delta;
    }
  }
}

TEST(Dynamic, ARelativeDeltaScalesWithTheReference) {
  LocalClusterOptions o;
  o.nodes = 2;
  o.training = "model = \"logreg\"\nepochs = 0.2\nlr = 0.01";
  // A factor so large that nothing violates: the reference stays the initial model.
  o.sync = "mode = \"dynamic\"\nperiod = 8\ndelta = 1e6\ndelta_mode = \"relative\"";
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 2; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  auto sync = cluster.metrics(0, "summary").back()["sync"];
  // logreg starts from uniform(+-1/28) weights and biases: E||r||^2 = 7850 / (3 * 784) = 3.34.
  double delta = sync.value("delta", 0.0);
  EXPECT_GT(delta, 1e6 * 3.2);
  EXPECT_LT(delta, 1e6 * 3.5);
  EXPECT_EQ(sync.value("violations", 1), 0);
  EXPECT_EQ(sync.value("delta_mode", ""), "relative");
}

}  // namespace
}  // namespace starling::testing
