// GossipSync on the in-process fake network, with a real (tiny, synthetic) trainer.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "daemon/gossip_sync.h"
#include "daemon/metrics_log.h"
#include "gossip/fake_transport.h"
#include "topology/cluster_file.h"
#include "topology/topology.h"
#include "training/trainer.h"

namespace starling::daemon {
namespace {

using namespace std::chrono_literals;

// A node that jumps past a scheduled sync (it was far behind its neighbours) never runs that
// sync. The allreduce window must still follow its rounds: pinned at the skipped sync's round
// it refused later collectives, the final allreduce among them.
TEST(GossipSyncWindow, FollowsTheRoundPastASkippedScheduledSync) {
  const auto spec = topology::parse_cluster_text(R"(
[cluster]
name = "w"
[topology]
kind = "ring"
[[node]]
id = "n0"
endpoint = "tcp://127.0.0.1:7000"
[[node]]
id = "n1"
endpoint = "tcp://127.0.0.1:7001"
[training]
model = "logreg"
dataset = "synthetic"
max_steps = 200
)", "w.toml");
  const auto topo = topology::Topology::compile(spec);
  gossip::FakeNetwork network(topo.names(), 1);
  training::Trainer trainer(spec.training, training::NodeShard{0, 2, 1});
  const auto dir = std::filesystem::temp_directory_path() /
                   ("starling-gossip-sync-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    MetricsLog metrics(dir / "metrics.jsonl");
    GossipSyncOptions o;
    o.period = 1;
    o.staleness = 0;
    o.round_timeout = 20ms;
    o.startup_timeout = 0ms;
    GossipSync sync(network.node(0), topo, o, metrics);
    sync.start(trainer);
    const std::uint64_t scheduled = sync.request_sync("test");  // at round 6
    ASSERT_EQ(scheduled, GossipSync::kSyncLead);
    // n1 reports round 40: this node is far behind and jumps there, past round 6.
    network.node(0).peers().on_heartbeat(1, 40, 40);
    trainer.step();
    sync.after_step(trainer);
    EXPECT_EQ(sync.status().value("round", std::uint64_t{0}), 41u);

    // A collective of n1 at round 100 (its next sync, say) lies within 64 rounds of this
    // node's round 40, but not within 64 of round 6.
    gossip::OutgoingMessage chunk;
    chunk.type = gossip::MessageType::allreduce_chunk;
    chunk.tag = 100;
    chunk.payload = gossip::copy_payload(std::vector<float>{1, 2});
    const std::size_t buffered = network.node(0).mailbox().buffered();
    network.node(1).send(0, chunk);
    EXPECT_EQ(network.node(0).mailbox().buffered(), buffered + 1)
        << "the allreduce window stayed at the skipped sync's round";
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace starling::daemon
