// GossipSync on the in-process fake network, with a real (tiny, synthetic) trainer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <future>
#include <thread>
#include <unistd.h>

#include "daemon/gossip_sync.h"
#include "daemon/metrics_log.h"
#include "gossip/fake_transport.h"
#include "gossip/gossip_averager.h"
#include "topology/cluster_file.h"
#include "topology/topology.h"
#include "training/trainer.h"

namespace starling::daemon {
namespace {

using namespace std::chrono_literals;

// Two nodes on a ring (n0 and n1) with the given [training] body.
topology::ClusterSpec two_node_ring(const std::string& training) {
  return topology::parse_cluster_text(R"(
[cluster]
name = "t"
[topology]
kind = "ring"
[[node]]
id = "n0"
endpoint = "tcp://127.0.0.1:7000"
[[node]]
id = "n1"
endpoint = "tcp://127.0.0.1:7001"
[training]
)" + training, "t.toml");
}

// n0 of a two-node ring on the in-process fake network, with a trainer for the given
// [training] body: what every test here but the CUDA one starts from.
struct TwoNodeRing {
  topology::ClusterSpec spec;
  topology::Topology topo;
  gossip::FakeNetwork network;
  training::Trainer trainer;
  explicit TwoNodeRing(const std::string& training)
      : spec(two_node_ring(training)),
        topo(topology::Topology::compile(spec)),
        network(topo.names(), 1),
        trainer(spec.training, training::NodeShard{0, 2, 1}) {}
};

// Options for n0's GossipSync: no wait for n1 at start (in most tests it never sends).
GossipSyncOptions options(std::int64_t period, std::int64_t staleness,
                          std::chrono::milliseconds round_timeout) {
  GossipSyncOptions o;
  o.period = period;
  o.staleness = staleness;
  o.round_timeout = round_timeout;
  o.startup_timeout = std::chrono::milliseconds(0);
  return o;
}

// A metrics log in a directory of its own, removed with it.
struct ScratchMetrics {
  std::filesystem::path dir;
  std::unique_ptr<MetricsLog> log;
  explicit ScratchMetrics(const std::string& name)
      : dir(std::filesystem::temp_directory_path() /
            ("starling-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
    log = std::make_unique<MetricsLog>(dir / "metrics.jsonl");
  }
  ~ScratchMetrics() {
    log.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

// A node that jumps past a scheduled sync (it was far behind its neighbours) never runs that
// sync. The allreduce window must still follow its rounds: pinned at the skipped sync's round
// it refused later collectives, the final allreduce among them.
TEST(GossipSyncWindow, FollowsTheRoundPastASkippedScheduledSync) {
  TwoNodeRing ring("model = \"logreg\"\ndataset = \"synthetic\"\nmax_steps = 200\n");
  ScratchMetrics metrics("gossip-sync-test");
  {
    GossipSyncOptions o = options(1, 0, 20ms);
    GossipSync sync(ring.network.node(0), ring.topo, o, *metrics.log);
    sync.start(ring.trainer);
    const std::uint64_t scheduled = sync.request_sync("test");  // at round 6
    ASSERT_EQ(scheduled, GossipSync::kSyncLead);
    // n1 reports round 40: this node is far behind and jumps there, past round 6.
    ring.network.node(0).peers().on_heartbeat(1, 40, 40);
    ring.trainer.step();
    sync.after_step(ring.trainer);
    EXPECT_EQ(sync.status().value("round", std::uint64_t{0}), 41u);

    // A collective of n1 at round 100 (its next sync, say) lies within 64 rounds of this
    // node's round 40, but not within 64 of round 6.
    gossip::OutgoingMessage chunk;
    chunk.type = gossip::MessageType::allreduce_chunk;
    chunk.tag = 100;
    chunk.payload = gossip::copy_payload(std::vector<float>{1, 2});
    const std::size_t buffered = ring.network.node(0).mailbox().buffered();
    ring.network.node(1).send(0, chunk);
    EXPECT_EQ(ring.network.node(0).mailbox().buffered(), buffered + 1)
        << "the allreduce window stayed at the skipped sync's round";
  }
}

// A node restarted from an old checkpoint may hear its peers' chunks of the final allreduce
// (tag: the last round + 1) before it has caught up with them, even before start(). Refused,
// they would be lost, and the final allreduce of every node would wait out its timeout.
TEST(GossipSyncWindow, BuffersTheFinalAllreduceFromTheStartHoweverFarBehind) {
  TwoNodeRing ring("model = \"logreg\"\ndataset = \"synthetic\"\nepochs = 1000\nmax_steps = 2000\n");
  ASSERT_EQ(ring.trainer.total_steps(), 2000);
  ScratchMetrics metrics("gossip-final-window-test");
  GossipSyncOptions o;
  o.period = 8;  // rounds at steps 8, 16, ..., 2000: 250 rounds, the final allreduce is 250
  o.staleness = 0;
  o.final_allreduce = true;
  o.total_steps = ring.trainer.total_steps();
  GossipSync sync(ring.network.node(0), ring.topo, o, *metrics.log);
  auto send_chunk = [&](std::uint64_t tag) {
    gossip::OutgoingMessage chunk;
    chunk.type = gossip::MessageType::allreduce_chunk;
    chunk.tag = tag;
    chunk.payload = gossip::copy_payload(std::vector<float>{1, 2});
    const std::size_t buffered = ring.network.node(0).mailbox().buffered();
    ring.network.node(1).send(0, chunk);
    return ring.network.node(0).mailbox().buffered() == buffered + 1;
  };
  EXPECT_TRUE(send_chunk(250)) << "the final allreduce's chunk was refused";
  EXPECT_TRUE(send_chunk(251)) << "a retry's chunk was refused";
  EXPECT_FALSE(send_chunk(250 + 100)) << "tags past the final allreduce's retries are buffered";
}

// With a period schedule, rounds start at the schedule's steps, and a node that jumps to its
// neighbours' round lands on the step the schedule gives that round (not round * period).
TEST(GossipSyncSchedule, RoundsStartAtTheSchedulesStepsAndAJumpLandsOnOne) {
  TwoNodeRing ring("model = \"logreg\"\ndataset = \"synthetic\"\nepochs = 100\nmax_steps = 400\n");
  ASSERT_EQ(ring.trainer.total_steps(), 400);
  ScratchMetrics metrics("gossip-schedule-test");
  GossipSyncOptions o;
  o.period = 5;
  o.period_schedule = {{.until_step = 6, .period = 2}};  // rounds at 2, 4, 6, 11, 16, ...
  o.staleness = 0;
  o.round_timeout = 1ms;  // n1 never answers: each round leaves it out and goes on
  o.startup_timeout = 0ms;
  GossipSync sync(ring.network.node(0), ring.topo, o, *metrics.log);
  sync.start(ring.trainer);
  EXPECT_EQ(sync.status().value("period", std::int64_t{0}), 2);
  std::vector<std::int64_t> round_steps;
  std::uint64_t rounds = 0;
  while (ring.trainer.step_count() < 21) {
    ring.trainer.step();
    sync.after_step(ring.trainer);
    const auto now = sync.status().value("rounds", std::uint64_t{0});
    if (now != rounds) round_steps.push_back(ring.trainer.step_count());
    rounds = now;
  }
  EXPECT_EQ(round_steps, (std::vector<std::int64_t>{2, 4, 6, 11, 16, 21}));
  EXPECT_EQ(sync.status().value("period", std::int64_t{0}), 5);

  // n1 reports round 40: far behind, this node moves to round 40's step at its next sync
  // point (step 26) and launches round 40 there.
  ring.network.node(0).peers().on_heartbeat(1, 40, 200);
  while (sync.status().value("round", std::uint64_t{0}) == 6 && ring.trainer.step_count() < 26) {
    ring.trainer.step();
    sync.after_step(ring.trainer);
  }
  EXPECT_EQ(sync.status().value("round", std::uint64_t{0}), 41u);
  EXPECT_EQ(ring.trainer.step_count(), RoundSchedule(o.period_schedule, o.period).step_of_round(40));
  EXPECT_EQ(ring.trainer.step_count(), 6 + (40 - 3 + 1) * 5);
}

std::vector<float> pulled(training::Trainer& trainer) {
  trainer.pull_parameters();
  auto p = trainer.parameters();
  return {p.begin(), p.end()};
}

// A mix computed from round r's snapshot s is applied at a later step as x <- x + (m - s), so
// the steps taken while the exchange was in flight stay in the model. On CUDA the trainer's
// host span is a mirror last pulled at the snapshot: apply() must read the device's model, or
// it pushes the snapshot back and drops those steps (it did, before the CUDA path was run).
// On the CPU the span is the live model, so there the test checks the arithmetic only; the
// CUDA pass, where a GPU is visible, is the one that catches a stale mirror.
TEST(GossipSyncApply, AMixKeepsTheStepsTakenWhileItWasInFlight) {
  std::vector<std::string> devices{"cpu"};
  if (training::cuda_device_count() > 0) devices.push_back("cuda");
  for (const std::string& device : devices) {
    SCOPED_TRACE(device);
    const auto spec = two_node_ring("model = \"mlp\"\ndataset = \"synthetic\"\nmax_steps = 50\n"
                                     "lr = 0.5\ndevice = \"" + device + "\"\n");
    const auto topo = topology::Topology::compile(spec);
    gossip::FakeNetwork network(topo.names(), 1);
    training::Trainer trainer(spec.training, training::NodeShard{0, 2, 1});
    auto cpu_spec = spec.training;
    cpu_spec.device = "cpu";
    training::Trainer shadow(cpu_spec, training::NodeShard{0, 2, 1});  // the same steps, on the CPU
    gossip::GossipAverager peer(network.node(1), topo, 5s);
    ScratchMetrics metrics("gossip-apply-test");
    {
      // Staleness 1: round r is applied at the step after it was launched.
      GossipSyncOptions o = options(1, 1, 200ms);
      GossipSync sync(network.node(0), topo, o, *metrics.log);
      sync.start(trainer);

      trainer.step();
      shadow.step();
      const auto snapshot = pulled(shadow);
      // Round 0 is launched from this snapshot before n1 has sent anything (a round that is
      // complete at its launch is applied at once: see RoundCompleteAtItsLaunch...).
      sync.after_step(trainer);
      ASSERT_EQ(sync.status().value("rounds", std::uint64_t{9}), 0u);
      // n1 mixes in round 0 with an all-zero model.
      auto zeros = std::make_shared<const std::vector<float>>(snapshot.size(), 0.0f);
      std::vector<float> peer_delta(snapshot.size());
      ASSERT_EQ(peer.run_round(0, zeros, peer_delta, gossip::GossipAverager::Output::delta).received,
                1u);

      trainer.step();  // the step taken while round 0 is in flight
      shadow.step();
      const auto stepped = pulled(shadow);
      sync.after_step(trainer);  // applies round 0
      // A two-node ring mixes half and half: m = (s + 0) / 2, so x = stepped + m - s.
      const auto mixed = pulled(trainer);
      ASSERT_EQ(mixed.size(), stepped.size());
      float worst = 0, step_size = 0;
      for (std::size_t k = 0; k < mixed.size(); ++k) {
        worst = std::max(worst, std::abs(mixed[k] - (stepped[k] - 0.5f * snapshot[k])));
        step_size = std::max(step_size, std::abs(stepped[k] - snapshot[k]));
      }
      EXPECT_LT(worst, 1e-4f) << "largest change of the in-flight step: " << step_size;
      EXPECT_GT(step_size, 1e-2f) << "the test's step is too small to tell";
      // One step trained between the snapshot and the apply, reported for staleness studies.
      EXPECT_EQ(sync.status().value("mean_apply_lag_steps", -1.0), 1.0);
    }
  }
}

// n0 with overlapped rounds (staleness 1) every 4 steps, and n1 as a bare averager that the
// test drives: n1 sends when the test says, so the test decides which node comes first.
struct OverlappedRounds {
  TwoNodeRing ring{"model = \"logreg\"\ndataset = \"synthetic\"\nmax_steps = 50\n"};
  gossip::GossipAverager peer{ring.network.node(1), ring.topo, 5s};
  ScratchMetrics metrics;
  GossipSync sync;
  std::vector<float> peer_delta;

  explicit OverlappedRounds(const std::string& name)
      : metrics(name), sync(ring.network.node(0), ring.topo, options(4, 1, 5s), *metrics.log) {
    sync.start(ring.trainer);
  }
  void train(int steps) {
    for (int i = 0; i < steps; ++i) {
      ring.trainer.step();
      sync.after_step(ring.trainer);
    }
  }
  // n1 sends its message of `round`, an all-zero model, and returns once it holds n0's.
  gossip::GossipRoundResult peer_round_of_zeros(std::uint64_t round) {
    const std::size_t length = pulled(ring.trainer).size();
    peer_delta.assign(length, 0.0f);
    return peer.run_round(round, std::make_shared<const std::vector<float>>(length, 0.0f),
                          peer_delta, gossip::GossipAverager::Output::delta);
  }
  std::uint64_t count(const char* key) const { return sync.status().value(key, std::uint64_t{99}); }
  double mean_lag() const { return sync.status().value("mean_apply_lag_steps", -1.0); }
};

// A node that reaches a sync point after its in-neighbour already holds the neighbour's
// message for the round: it applies the round there, on time, instead of after one more step
// (with staleness 1 it did, and every round came at least a step late).
TEST(GossipSyncApply, RoundCompleteAtItsLaunchIsAppliedAtOnce) {
  OverlappedRounds n0("gossip-apply-at-once-test");
  n0.train(3);
  // n1 gets to the sync point first: its round-0 message (a zero model) waits for n0.
  auto peer_round = std::async(std::launch::async, [&] { return n0.peer_round_of_zeros(0); });
  auto& mailbox = n0.ring.network.node(0).mailbox();
  const auto waiting_since = std::chrono::steady_clock::now();
  while (mailbox.buffered() == 0 && std::chrono::steady_clock::now() - waiting_since < 5s) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_GT(mailbox.buffered(), 0u) << "n1's round message never arrived";
  n0.ring.trainer.step();  // step 4: a sync point
  const auto snapshot = pulled(n0.ring.trainer);
  n0.sync.after_step(n0.ring.trainer);
  ASSERT_EQ(peer_round.get().received, 1u);
  EXPECT_EQ(n0.count("rounds"), 1u) << "the round was left in flight";
  EXPECT_EQ(n0.mean_lag(), 0.0);
  EXPECT_EQ(n0.count("rounds_a_period_late"), 0u);
  // A two-node ring mixes half and half, and no step came between snapshot and apply.
  const auto mixed = pulled(n0.ring.trainer);
  float worst = 0;
  for (std::size_t k = 0; k < mixed.size(); ++k) {
    worst = std::max(worst, std::abs(mixed[k] - 0.5f * snapshot[k]));
  }
  EXPECT_LT(worst, 1e-6f);
}

// A round still in flight at the next sync point is applied there, a whole period after its
// snapshot, and counted: status and Prometheus show that tail apart from the mean delay.
TEST(GossipSyncApply, ARoundAppliedOnlyAtTheNextSyncPointCountsAsAPeriodLate) {
  OverlappedRounds n0("gossip-period-late-test");
  n0.train(7);  // step 4 launches round 0; n1 stays silent through step 7
  ASSERT_EQ(n0.count("rounds"), 0u);
  // n0's round-0 message is already in n1's mailbox: this sends n1's and returns.
  ASSERT_EQ(n0.peer_round_of_zeros(0).received, 1u);
  n0.train(1);  // step 8, the next sync point
  EXPECT_EQ(n0.count("rounds"), 1u);
  EXPECT_EQ(n0.mean_lag(), 4.0);
  EXPECT_EQ(n0.count("rounds_a_period_late"), 1u);
}

}  // namespace
}  // namespace starling::daemon
