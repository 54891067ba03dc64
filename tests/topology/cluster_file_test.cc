#include <gtest/gtest.h>

#include <filesystem>

#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/topology.h"

namespace starling::topology {
namespace {

const char* kMinimal = R"(
[cluster]
name = "t"
[topology]
kind = "ring"
[[node]]
id = "a"
endpoint = "tcp://127.0.0.1:7000"
[[node]]
id = "b"
endpoint = "tcp://127.0.0.1:7001"
[[node]]
id = "c"
endpoint = "ipc:///tmp/c.sock"
)";

TEST(ClusterFile, ParsesMinimalFileWithDefaults) {
  ClusterSpec spec = parse_cluster_text(kMinimal, "mini.toml");
  EXPECT_EQ(spec.name, "t");
  EXPECT_EQ(spec.seed, 1u);
  ASSERT_EQ(spec.nodes.size(), 3u);
  EXPECT_EQ(spec.nodes[2].endpoint, "ipc:///tmp/c.sock");
  EXPECT_EQ(spec.nodes[1].line, 9);
  EXPECT_EQ(spec.topology.kind, TopologyKind::ring);
  EXPECT_EQ(spec.topology.weights, WeightScheme::metropolis);
  EXPECT_EQ(spec.training.model, "mlp");
  EXPECT_EQ(spec.training.batch_size, 32);
  EXPECT_EQ(spec.sync.mode, "local");
  EXPECT_EQ(spec.index_of("b"), 1u);
  EXPECT_EQ(spec.index_of("zz"), 3u);
}

// "auto" sends collective chunks over TCP links only where every node can take them: all
// endpoints tcp:// and no CURVE keys (links are not encrypted). Local mode has no collectives.
TEST(ClusterFile, CollectivesUseTcpLinksWhereEveryEndpointIsTcpAndNothingIsEncrypted) {
  const std::string two_tcp = "[cluster]\nname = \"t\"\n[topology]\nkind = \"ring\"\n"
                              "[[node]]\nid = \"a\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
                              "[[node]]\nid = \"b\"\nendpoint = \"tcp://[::1]:7001\"\n";
  EXPECT_FALSE(collectives_use_tcp_links(parse_cluster_text(two_tcp, "t.toml")));  // local mode
  EXPECT_TRUE(collectives_use_tcp_links(
      parse_cluster_text(two_tcp + "[sync]\nmode = \"allreduce\"\n", "t.toml")));
  EXPECT_FALSE(collectives_use_tcp_links(parse_cluster_text(
      two_tcp + "[sync]\nmode = \"allreduce\"\ncollective_transport = \"zeromq\"\n", "t.toml")));
  EXPECT_FALSE(collectives_use_tcp_links(
      parse_cluster_text(std::string(kMinimal) + "[sync]\nmode = \"gossip\"\n", "t.toml")));  // an ipc node
  const std::string keyed = "[cluster]\nname = \"t\"\n[topology]\nkind = \"ring\"\n"
                            "[[node]]\nid = \"a\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
                            "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
                            "[sync]\nmode = \"allreduce\"\n";
  EXPECT_FALSE(collectives_use_tcp_links(parse_cluster_text(keyed, "t.toml")));
}

// In a cluster of ipc:// endpoints "auto" puts the links on Unix-domain sockets beside the
// endpoints, unless a link's path would not fit a socket address (ZeroMQ then); a mixed
// cluster, or CURVE keys, keep them in ZeroMQ.
TEST(ClusterFile, CollectivesUseUnixSocketLinksWhereEveryEndpointIsIpc) {
  auto links_of = [](const std::string& nodes, const std::string& sync) {
    return collective_links(parse_cluster_text(
        "[cluster]\nname = \"t\"\n[topology]\nkind = \"ring\"\n" + nodes + "[sync]\n" + sync, "t.toml"));
  };
  const std::string two_ipc = "[[node]]\nid = \"a\"\nendpoint = \"ipc:///run/s/a\"\n"
                              "[[node]]\nid = \"b\"\nendpoint = \"ipc:///run/s/b\"\n";
  EXPECT_EQ(links_of(two_ipc, "mode = \"gossip\"\n"), CollectiveLinks::unix_socket);
  EXPECT_EQ(links_of(two_ipc, "mode = \"allreduce\"\ncollective_transport = \"unix\"\n"),
            CollectiveLinks::unix_socket);
  EXPECT_EQ(links_of(two_ipc, "mode = \"allreduce\"\ncollective_transport = \"zeromq\"\n"),
            CollectiveLinks::zeromq);
  EXPECT_EQ(links_of(two_ipc, "mode = \"local\"\n"), CollectiveLinks::zeromq);
  EXPECT_EQ(ring_link_socket_path("/run/s/a"), "/run/s/a.link");
  // 102 bytes of path: the endpoint fits (107 at most), its link ("...link", 107) too; 103
  // does not leave room for ".link".
  const std::string fits = "[[node]]\nid = \"a\"\nendpoint = \"ipc:///" + std::string(101, 'p') + "\"\n";
  const std::string too_long = "[[node]]\nid = \"a\"\nendpoint = \"ipc:///" + std::string(102, 'p') + "\"\n";
  EXPECT_EQ(links_of(fits, "mode = \"gossip\"\n"), CollectiveLinks::unix_socket);
  EXPECT_EQ(links_of(too_long, "mode = \"gossip\"\n"), CollectiveLinks::zeromq);
  const std::string mixed = "[[node]]\nid = \"a\"\nendpoint = \"ipc:///run/s/a\"\n"
                            "[[node]]\nid = \"b\"\nendpoint = \"tcp://127.0.0.1:7001\"\n";
  EXPECT_EQ(links_of(mixed, "mode = \"gossip\"\n"), CollectiveLinks::zeromq);
  const std::string keyed = "[[node]]\nid = \"a\"\nendpoint = \"ipc:///run/s/a\"\n"
                            "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n";
  EXPECT_EQ(links_of(keyed, "mode = \"gossip\"\n"), CollectiveLinks::zeromq);
}

TEST(ClusterFile, ANodeMayFixItsRingLinkPort) {
  const std::string text = "[cluster]\nname = \"t\"\n[topology]\nkind = \"ring\"\n"
                           "[[node]]\nid = \"a\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
                           "ring_link_port = 7100\n"
                           "[[node]]\nid = \"b\"\nendpoint = \"tcp://10.0.0.2:7000\"\n"
                           "ring_link_port = 7100\n"  // another host: no collision
                           "[sync]\nmode = \"allreduce\"\n";
  ClusterSpec spec = parse_cluster_text(text, "t.toml");
  EXPECT_EQ(spec.nodes[0].ring_link_port, 7100);
  EXPECT_EQ(spec.nodes[1].ring_link_port, 7100);
}

TEST(ClusterFile, ANodeMayNameItsOwnDevice) {
  std::string text = kMinimal;
  const std::string first_endpoint = "endpoint = \"tcp://127.0.0.1:7000\"\n";
  text.insert(text.find(first_endpoint) + first_endpoint.size(), "device = \"cuda:1\"\n");
  ClusterSpec spec = parse_cluster_text(text + "[training]\ndevice = \"cpu\"\n", "devices.toml");
  EXPECT_EQ(spec.nodes[0].device, "cuda:1");
  EXPECT_EQ(spec.nodes[1].device, "");  // training.device applies
  EXPECT_EQ(spec.training.device, "cpu");
}

// Nodes on machines of their own may all serve metrics on one wildcard address; the duplicate
// check refuses only addresses that name one machine (broken_files_test.cc).
TEST(ClusterFile, NodesOnSeveralMachinesMayShareAWildcardMetricsAddress) {
  ClusterSpec spec = parse_cluster_text(
      "[cluster]\nname = \"wide\"\n[topology]\nkind = \"ring\"\n"
      "[[node]]\nid = \"a\"\nendpoint = \"tcp://10.0.0.1:7000\"\nmetrics = \"0.0.0.0:9100\"\n"
      "[[node]]\nid = \"b\"\nendpoint = \"tcp://10.0.0.2:7000\"\nmetrics = \"0.0.0.0:9100\"\n",
      "wide.toml");
  EXPECT_EQ(spec.nodes[0].metrics, "0.0.0.0:9100");
  EXPECT_EQ(spec.nodes[1].metrics, "0.0.0.0:9100");
  // IPv6 addresses are written in brackets, as in a URL, and localhost is accepted.
  spec = parse_cluster_text(
      "[cluster]\nname = \"six\"\n[topology]\nkind = \"ring\"\n"
      "[[node]]\nid = \"a\"\nendpoint = \"tcp://[::1]:7000\"\nmetrics = \"[::1]:9100\"\n"
      "[[node]]\nid = \"b\"\nendpoint = \"tcp://[::1]:7001\"\nmetrics = \"localhost:9101\"\n",
      "six.toml");
  EXPECT_EQ(spec.nodes[0].metrics, "[::1]:9100");
}

TEST(ClusterFile, ParsesTrainingSyncAndRunSections) {
  std::string text = std::string(kMinimal) + R"(
[training]
model = "cnn"
dataset = "synthetic"
partition = "dirichlet:0.3"
batch_size = 64
lr = 0.1
momentum = 0.0
weight_decay = 5e-4
lr_schedule = "step"
milestones = [1, 2.5]
gamma = 0.5
epochs = 0.5
device = "cuda:1"
[sync]
mode = "local"
period = 4
round_timeout_ms = 500
[run]
dir = "/tmp/x"
log_level = "debug"
round_metrics_interval_ms = 1000
)";
  ClusterSpec spec = parse_cluster_text(text, "full.toml");
  EXPECT_EQ(spec.training.model, "cnn");
  EXPECT_EQ(spec.training.partition.kind, PartitionKind::dirichlet);
  EXPECT_DOUBLE_EQ(spec.training.partition.alpha, 0.3);
  EXPECT_EQ(spec.training.batch_size, 64);
  EXPECT_DOUBLE_EQ(spec.training.weight_decay, 5e-4);
  ASSERT_EQ(spec.training.milestones.size(), 2u);
  EXPECT_DOUBLE_EQ(spec.training.milestones[1], 2.5);
  EXPECT_DOUBLE_EQ(spec.training.epochs, 0.5);
  EXPECT_EQ(spec.training.device, "cuda:1");
  EXPECT_EQ(spec.sync.period, 4);
  EXPECT_EQ(spec.sync.round_timeout_ms, 500);
  EXPECT_EQ(spec.run.dir, "/tmp/x");
  EXPECT_EQ(spec.run.log_level, "debug");
  EXPECT_EQ(spec.run.round_metrics_interval_ms, 1000);
}

TEST(ClusterFile, ParsesAPeriodSchedule) {
  ClusterSpec spec = parse_cluster_text(std::string(kMinimal) + R"(
[sync]
mode = "gossip"
period = 16
period_schedule = [{ until_step = 468, period = 4 }, { until_step = 700, period = 8 }]
)", "schedule.toml");
  EXPECT_EQ(spec.sync.period, 16);
  EXPECT_EQ(spec.sync.period_schedule,
            (std::vector<PeriodPhase>{{.until_step = 468, .period = 4}, {.until_step = 700, .period = 8}}));
  EXPECT_TRUE(parse_cluster_text(kMinimal, "plain.toml").sync.period_schedule.empty());
}

TEST(ClusterFile, ParsesShardPartition) {
  std::string text = std::string(kMinimal) + "[training]\npartition = \"shards:2\"\n";
  ClusterSpec spec = parse_cluster_text(text, "s.toml");
  EXPECT_EQ(spec.training.partition.kind, PartitionKind::shards);
  EXPECT_EQ(spec.training.partition.shards, 2);
}

TEST(ClusterFile, MissingFileNamesThePath) {
  try {
    parse_cluster_file("/nonexistent/cluster.toml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/cluster.toml");
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos) << e.what();
  }
}

TEST(ClusterFile, ADirectoryIsNotACluster) {
  const auto dir = std::filesystem::temp_directory_path();
  try {
    parse_cluster_file(dir.string());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory, not a cluster file"), std::string::npos)
        << e.what();
  }
}

TEST(ClusterFile, EveryShippedConfigCompiles) {
  for (const char* name : {"ring4", "torus2x4", "hypercube8", "exponential16", "one-peer-exp8",
                           "edges5", "allreduce4", "dynamic8"}) {
    std::string path = std::string(STARLING_SOURCE_DIR) + "/configs/" + name + ".toml";
    SCOPED_TRACE(path);
    ClusterSpec spec = parse_cluster_file(path);
    Topology topo = Topology::compile(spec);
    EXPECT_EQ(topo.size(), spec.nodes.size());
    EXPECT_EQ(topo.graph().components().size(), 1u);
  }
}

}  // namespace
}  // namespace starling::topology
