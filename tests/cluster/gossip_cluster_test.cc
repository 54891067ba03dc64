// Multi-process tests: real starlingd processes gossiping over loopback TCP.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <set>

#include "support/local_cluster.h"

namespace starling::testing {
namespace {

using namespace std::chrono_literals;

nlohmann::json summary_of(const LocalCluster& cluster, std::size_t i) {
  auto lines = cluster.metrics(i, "summary");
  return lines.empty() ? nlohmann::json() : lines.back();
}

// Fashion-MNIST, mlp, one epoch of each node's shard. final_rounds gossip rounds without
// training end the run: on a ring of 4 with Metropolis weights each round shrinks the
// disagreement by the SLEM, 1/3, so 10 rounds shrink it by 3^-10 = 1.7e-5. At the end of
// training neighbours differ by well under the models' norm (about 20), so the distance left
// after those rounds is below 20 * 1.7e-5 = 3.4e-4; we allow 1e-3 for float rounding.
TEST(GossipCluster, RingOfFourReachesConsensusAndAccuracy) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.topology = "kind = \"ring\"";
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05\nlr_schedule = \"cosine\"";
  o.sync = "mode = \"gossip\"\nperiod = 8\nfinal_rounds = 10";
  LocalCluster cluster(o);
  cluster.start_all();

  // The control socket answers while the node trains.
  bool seen_training = eventually(
      [&] {
        auto status = cluster.ask(0, "status", 500ms);
        return status && status->value("state", "") == "training" && status->value("step", 0) > 0;
      },
      60s);
  EXPECT_TRUE(seen_training) << cluster.log(0);

  std::vector<double> accuracies;
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 180s))) << cluster.log(i);
    auto summary = summary_of(cluster, i);
    ASSERT_FALSE(summary.is_null()) << cluster.log(i);
    EXPECT_TRUE(summary.value("finished", false));
    EXPECT_LT(summary.value("consensus_distance", 1.0), 1e-3) << summary.dump();
    double accuracy = summary.value("accuracy", 0.0);
    EXPECT_GT(accuracy, 0.80) << summary.dump();
    accuracies.push_back(accuracy);
    EXPECT_GT(summary.value("bytes_sent", 0.0), 0.0);
    // Every round heard both neighbours (nobody was slow enough to be left out for long).
    auto rounds = cluster.metrics(i, "gossip");
    ASSERT_FALSE(rounds.empty());
    std::size_t complete = 0;
    for (const auto& r : rounds) complete += r.value("received", 0) == 2 ? 1 : 0;
    EXPECT_GT(complete, rounds.size() * 9 / 10) << "rounds with both neighbours: " << complete
                                                << " of " << rounds.size();
  }
  // Consensus: the four replicas are one model, so they score the same.
  auto [lo, hi] = std::minmax_element(accuracies.begin(), accuracies.end());
  EXPECT_LT(*hi - *lo, 0.002);
}

// Eight nodes on the time-varying one-peer exponential graph: any three consecutive rounds
// (log2 8) average exactly, so after three final rounds only float rounding separates the
// replicas; the fourth final round measures that (a round reports the distance of its inputs).
TEST(GossipCluster, EightOnTheOnePeerExponentialGraph) {
  LocalClusterOptions o;
  o.nodes = 8;
  o.topology = "kind = \"one-peer-exponential\"";
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05\nlr_schedule = \"cosine\"";
  o.sync = "mode = \"gossip\"\nperiod = 4\nfinal_rounds = 4";
  LocalCluster cluster(o);
  cluster.start_all();
  std::vector<double> accuracies;
  for (std::size_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 240s))) << cluster.log(i);
    auto summary = summary_of(cluster, i);
    ASSERT_FALSE(summary.is_null()) << cluster.log(i);
    EXPECT_LT(summary.value("consensus_distance", 1.0), 1e-4) << summary.dump();
    accuracies.push_back(summary.value("accuracy", 0.0));
    EXPECT_GT(accuracies.back(), 0.78) << summary.dump();
    // One peer per round: each round expects exactly one message.
    for (const auto& r : cluster.metrics(i, "gossip")) EXPECT_EQ(r.value("expected", 0), 1);
  }
  auto [lo, hi] = std::minmax_element(accuracies.begin(), accuracies.end());
  EXPECT_LT(*hi - *lo, 0.001);
}

// What a run of 4 nodes on the one-peer exponential graph (1 epoch of the mlp, 4 final
// rounds) must show with a compressed wire precision.
struct CompressedWire {
  std::string precision;            // wire_precision
  double max_consensus_distance;    // at the end, after the final rounds
  double bytes_per_value_low;       // bytes sent per round and model value: bounds
  double bytes_per_value_high;
  double max_accuracy_spread;       // between the nodes' final test accuracies
};

void train_and_check(const CompressedWire& wire) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.topology = "kind = \"one-peer-exponential\"";
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05\nlr_schedule = \"cosine\"";
  o.sync = "mode = \"gossip\"\nperiod = 8\nfinal_rounds = 4\nwire_precision = \"" +
           wire.precision + "\"";
  LocalCluster cluster(o);
  cluster.start_all();
  constexpr double kModelFloats = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10;
  std::vector<double> accuracies;
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 180s))) << cluster.log(i);
    auto summary = summary_of(cluster, i);
    ASSERT_FALSE(summary.is_null()) << cluster.log(i);
    EXPECT_EQ(summary["sync"].value("wire_precision", ""), wire.precision) << summary.dump();
    EXPECT_LT(summary.value("consensus_distance", 1.0), wire.max_consensus_distance)
        << summary.dump();
    accuracies.push_back(summary.value("accuracy", 0.0));
    EXPECT_GT(accuracies.back(), 0.80) << summary.dump();
    // One compressed model per round, plus headers and heartbeats.
    const auto rounds = static_cast<double>(cluster.metrics(i, "gossip").size());
    ASSERT_GT(rounds, 50.0);
    const double sent = summary.value("bytes_sent", 0.0);
    EXPECT_GT(sent, rounds * kModelFloats * wire.bytes_per_value_low);
    EXPECT_LT(sent, rounds * kModelFloats * wire.bytes_per_value_high)
        << "bytes per round: " << sent / rounds;
  }
  auto [lo, hi] = std::minmax_element(accuracies.begin(), accuracies.end());
  EXPECT_LT(*hi - *lo, wire.max_accuracy_spread);
}

// wire_precision = "f16": the parameters travel as binary16, half the bytes of f32, and the
// cluster still trains and agrees. On the one-peer exponential graph of 4 any two consecutive
// rounds average exactly, so after the final rounds the replicas differ only by binary16
// rounding of their parameters: about 2^-12 relative per parameter, for a model of norm about
// 20 a distance of about 20 * 2^-12 = 5e-3. We allow 2e-2.
TEST(GossipCluster, HalfPrecisionWireHalvesTheBytesAndTheReplicasStillAgree) {
  train_and_check({.precision = "f16",
                   .max_consensus_distance = 2e-2,
                   .bytes_per_value_low = 2.0,
                   .bytes_per_value_high = 2.2,
                   .max_accuracy_spread = 0.003});
}

// wire_precision = "int8": 8-bit codes with a float32 scale per 256 values, a quarter of f32's
// bytes and a little more. After the final rounds the replicas differ by the rounding of
// what they last mixed: up to half a step, m / 254, per parameter (m: the block's largest
// |x|, about 0.1 for this mlp's weights), about 0.1 / 254 / sqrt(3) = 2.3e-4 rms, so a
// distance of about 512 * 2.3e-4 = 0.12 over its 262,000 parameters. We allow 0.4. Accuracy
// as with f32 and f16 (the cluster's average is never moved by the rounding), the nodes a
// little further apart.
TEST(GossipCluster, Int8WireQuartersTheBytesAndTheClusterStillTrains) {
  train_and_check({.precision = "int8",
                   .max_consensus_distance = 0.4,
                   .bytes_per_value_low = 1.0 + 4.0 / 256,
                   .bytes_per_value_high = 1.15,
                   .max_accuracy_spread = 0.01});
}

// A period schedule: every node runs each round at the step the schedule gives it (every 2
// steps up to step 40, then every 10), and the rounds pair up across the processes (each
// round hears its one in-neighbour). With staleness 0 a round is applied at its own step,
// so the `gossip` lines' steps are the schedule's.
TEST(GossipCluster, APeriodScheduleRunsEveryRoundAtItsStepOnEveryNode) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.topology = "kind = \"one-peer-exponential\"";
  o.training = "model = \"logreg\"\ndataset = \"synthetic\"\nepochs = 100\nmax_steps = 200\n"
               "eval_every = 100000";
  o.sync = "mode = \"gossip\"\nstaleness = 0\nperiod = 10\n"
           "period_schedule = [{ until_step = 40, period = 2 }]";
  LocalCluster cluster(o);
  cluster.start_all();
  std::vector<std::int64_t> expected;
  for (std::int64_t s = 2; s <= 40; s += 2) expected.push_back(s);
  for (std::int64_t s = 50; s <= 200; s += 10) expected.push_back(s);
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 60s))) << cluster.log(i);
    std::vector<std::int64_t> steps;
    std::size_t heard = 0;
    for (const auto& line : cluster.metrics(i, "gossip")) {
      steps.push_back(line.value("step", std::int64_t{-1}));
      heard += line.value("received", 0) == 1 ? 1 : 0;
    }
    EXPECT_EQ(steps, expected) << cluster.log(i);
    EXPECT_EQ(heard, expected.size()) << "rounds that heard the neighbour";
    auto summary = summary_of(cluster, i);
    EXPECT_EQ(summary["sync"].value("rounds", 0), static_cast<int>(expected.size())) << summary.dump();
  }
}

// Two nodes, logistic regression on synthetic data, 800 steps (100 rounds every 8 steps, in a
// few seconds), with `sync` as the [sync] table.
LocalClusterOptions synthetic_pair(const std::string& sync) {
  LocalClusterOptions o;
  o.nodes = 2;
  o.training = "model = \"logreg\"\ndataset = \"synthetic\"\nepochs = 100\nmax_steps = 800\n"
               "eval_every = 100000";
  o.sync = sync;
  return o;
}

// `[run] round_metrics_interval_ms` bounds how many `gossip` lines a node writes (a round every
// 8 steps is hundreds a second on a fast node), while status and the summary still count every
// round, and rounds that left a neighbour out are always written.
TEST(GossipCluster, RoundMetricsIntervalBoundsTheGossipLines) {
  LocalClusterOptions o = synthetic_pair("mode = \"gossip\"\nperiod = 8");
  o.run = "round_metrics_interval_ms = 60000";
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 60s))) << cluster.log(i);
    auto summary = summary_of(cluster, i);
    ASSERT_FALSE(summary.is_null()) << cluster.log(i);
    EXPECT_GE(summary["sync"].value("rounds", 0), 100) << summary.dump();
    const auto lines = cluster.metrics(i, "gossip");
    ASSERT_FALSE(lines.empty());  // the first round is always written
    for (std::size_t k = 1; k < lines.size(); ++k) {
      EXPECT_FALSE(lines[k]["left_out"].empty()) << "a round within the interval was written: "
                                                 << lines[k].dump();
    }
  }
}

// starlingd's --test-drop-rate reaches the gossip payloads that go over ring links (they went
// around it before): the neighbour of a node that drops half of what it sends has rounds
// without that node's model. (The node that drops misses a few rounds too: its neighbour
// waits out round_timeout_ms for a lost payload before it sends its next one.)
TEST(GossipCluster, TheDropTestHookReachesPayloadsOverRingLinks) {
  LocalCluster cluster(synthetic_pair("mode = \"gossip\"\nperiod = 8\nround_timeout_ms = 200"));
  cluster.start(0, {"--test-drop-rate", "0.5"});
  cluster.start(1);
  std::vector<nlohmann::json> sync(2);
  for (std::size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
    auto summary = summary_of(cluster, i);
    ASSERT_FALSE(summary.is_null()) << cluster.log(i);
    sync[i] = summary["sync"];
  }
  EXPECT_GE(sync[1].value("rounds", 0), 100) << sync[1].dump();
  // About half of n0's 100 payloads were lost; n1 went on without them.
  EXPECT_GE(sync[1].value("neighbours_left_out", 0), 20) << sync[1].dump();
}

// The final allreduce meets every node at the same round even when rounds run far past the
// allreduce window (here about 120 rounds), and leaves one model everywhere.
TEST(GossipCluster, FinalAllreduceLeavesOneModel) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05";
  o.sync = "mode = \"gossip\"\nperiod = 4\nfinal_allreduce = true";
  LocalCluster cluster(o);
  cluster.start_all();
  std::set<double> accuracies;
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
    auto final_event = cluster.metrics(i, "final_allreduce");
    ASSERT_EQ(final_event.size(), 1u) << cluster.log(i);
    EXPECT_TRUE(final_event[0].value("ok", false)) << final_event[0].dump();
    EXPECT_EQ(final_event[0].value("members", 0), 4);
    accuracies.insert(cluster.metrics(i, "summary").back().value("accuracy", 0.0));
  }
  EXPECT_EQ(accuracies.size(), 1u);
}

}  // namespace
}  // namespace starling::testing
