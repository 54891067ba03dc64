// The table of broken cluster files: each must be refused with a ConfigError whose message says
// what is wrong and what would be valid, pointing at the right line (marked "# <-" in the text).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/topology.h"

namespace starling::topology {
namespace {

struct BrokenFile {
  const char* name;
  std::string text;
  std::string field;     // ConfigError::field()
  std::string message;   // must appear in what()
};

std::string nodes(int n, int base_port = 7000) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += "[[node]]\nid = \"n" + std::to_string(i) + "\"\nendpoint = \"tcp://127.0.0.1:" +
           std::to_string(base_port + i) + "\"\n";
  }
  return out;
}

// Lets gtest name a failing case by its name instead of dumping its bytes.
void PrintTo(const BrokenFile& file, std::ostream* os) { *os << file.name; }

const std::string kHead = "[cluster]\nname = \"broken\"\n";
const std::string kRing = "[topology]\nkind = \"ring\"\n";

int marked_line(const std::string& text) {
  int line = 1;
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    if (text.compare(pos, 4, "# <-") == 0) return line;
    if (text[pos] == '\n') ++line;
  }
  return 0;  // no marker: the error is not tied to a line of its own
}

std::vector<BrokenFile> broken_files() {
  return {
      {"duplicate_id",
       kHead + kRing + nodes(2) + "[[node]]\nid = \"n1\"  # <-\nendpoint = \"tcp://127.0.0.1:7009\"\n",
       "node[2].id", "duplicate node id \"n1\" (first defined at line 8); node ids must be unique"},
      {"duplicate_endpoint",
       kHead + kRing + nodes(2) + "[[node]]\nid = \"n2\"\nendpoint = \"tcp://127.0.0.1:7001\"  # <-\n",
       "node[2].endpoint", "duplicate endpoint \"tcp://127.0.0.1:7001\" (the same socket as at line 8)"},
      {"duplicate_endpoint_spelled_localhost",
       kHead + kRing + nodes(2) + "[[node]]\nid = \"n2\"\nendpoint = \"tcp://LocalHost:7001\"  # <-\n",
       "node[2].endpoint", "duplicate endpoint \"tcp://LocalHost:7001\" (the same socket as at line 8)"},
      {"duplicate_ipc_endpoint_spelled_otherwise",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"ipc:///run/s/n0\"\n" +
           "[[node]]\nid = \"n1\"\nendpoint = \"ipc:///run/s/../s/./n0\"  # <-\n",
       "node[1].endpoint", "duplicate endpoint \"ipc:///run/s/../s/./n0\" (the same socket as at line 5)"},
      {"control_spelled_as_a_data_endpoint",
       kHead + kRing + nodes(2) + "[[node]]\nid = \"n2\"\nendpoint = \"tcp://127.0.0.1:7002\"\n" +
           "control = \"tcp://localhost:7000\"  # <-\n",
       "node[2].control", "duplicate endpoint \"tcp://localhost:7000\""},
      {"metrics_host_is_a_name",
       kHead + kRing + nodes(1) + "[[node]]\nid = \"n1\"\nendpoint = \"tcp://127.0.0.1:7001\"\n" +
           "metrics = \"metrics.example:9100\"  # <-\n",
       "node[1].metrics", "the host must be an IP address"},
      {"ipc_path_too_long_for_a_unix_socket",
       kHead + kRing + nodes(1) + "[[node]]\nid = \"n1\"\nendpoint = \"ipc:///" +
           std::string(120, 'p') + "\"  # <-\n",
       "node[1].endpoint", "the path is 121 bytes; a Unix socket's path holds at most 107"},
      {"endpoint_on_an_earlier_nodes_control",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n" +
           "control = \"tcp://127.0.0.1:7200\"\n[[node]]\nid = \"n1\"\n" +
           "endpoint = \"tcp://127.0.0.1:7200\"  # <-\n",
       "node[1].endpoint", "\"tcp://127.0.0.1:7200\" is the control endpoint of the node at line 5"},
      {"metrics_on_a_data_endpoint",
       kHead + kRing + nodes(2) + "[[node]]\nid = \"n2\"\nendpoint = \"tcp://127.0.0.1:7002\"\n" +
           "metrics = \"localhost:7001\"  # <-\n",
       "node[2].metrics", "\"localhost:7001\" is a socket another node or endpoint of this cluster uses"},
      {"endpoint_on_an_earlier_nodes_metrics",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n" +
           "metrics = \"127.0.0.1:9100\"\n[[node]]\nid = \"n1\"\n" +
           "endpoint = \"tcp://127.0.0.1:9100\"  # <-\n",
       "node[1].endpoint", "\"tcp://127.0.0.1:9100\" is the metrics address of the node at line 5"},
      {"two_nodes_on_one_metrics_address",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n" +
           "metrics = \"127.0.0.1:9100\"\n[[node]]\nid = \"n1\"\n" +
           "endpoint = \"tcp://127.0.0.1:7001\"\nmetrics = \"127.0.0.1:9100\"  # <-\n",
       "node[1].metrics", "\"127.0.0.1:9100\" is a socket another node or endpoint of this cluster uses"},
      {"edge_to_unknown_node",
       kHead + "[topology]\nkind = \"edges\"\nedges = [[\"n0\", \"n1\"],\n  [\"n1\", \"n7\"]]  # <-\n" +
           nodes(3),
       "topology.edges[1]", "unknown node \"n7\"; nodes are n0, n1, n2"},
      {"self_loop",
       kHead + "[topology]\nkind = \"edges\"\nedges = [\n  [\"n0\", \"n0\"],  # <-\n  [\"n0\", \"n1\"]]\n" +
           nodes(2),
       "topology.edges[0]", "self-loop on \"n0\""},
      {"disconnected_graph",
       kHead + "[topology]  # <-\nkind = \"edges\"\nedges = [[\"n0\", \"n1\"], [\"n2\", \"n3\"], [\"n3\", \"n4\"]]\n" +
           nodes(5),
       "topology", "the graph is disconnected; its components are {n0, n1} | {n2, n3, n4}"},
      {"hypercube_not_power_of_two", kHead + "[topology]  # <-\nkind = \"hypercube\"\n" + nodes(6),
       "topology.kind",
       "\"hypercube\" needs a power-of-two number of nodes; the cluster has 6 (nearest: 4 or 8)"},
      {"torus_size_mismatch",
       kHead + "[topology]  # <-\nkind = \"torus\"\nrows = 2\ncols = 3\n" + nodes(8), "topology.rows",
       "rows * cols = 2 * 3 = 6 but the cluster has 8 nodes"},
      {"row_does_not_sum_to_one",
       kHead + "[topology]\nkind = \"ring\"\nweights = \"explicit\"\nmatrix = [  # <-\n"
               "  [0.5, 0.25, 0.25],\n  [0.25, 0.5, 0.15],\n  [0.25, 0.25, 0.5]]\n" + nodes(3),
       "topology.matrix", "row 1 (n1) sums to 0.9; each row must sum to 1 within 1e-09"},
      {"row_off_by_more_than_tolerance",
       kHead + "[topology]\nkind = \"ring\"\nweights = \"explicit\"\nmatrix = [  # <-\n"
               "  [0.5, 0.25, 0.25],\n  [0.25, 0.5, 0.25],\n  [0.25, 0.25, 0.500000002]]\n" + nodes(3),
       "topology.matrix", "row 2 (n2) sums to 1.000000002"},
      {"negative_weight",
       kHead + "[topology]\nkind = \"ring\"\nweights = \"explicit\"\nmatrix = [  # <-\n"
               "  [1.5, -0.25, -0.25],\n  [0.25, 0.5, 0.25],\n  [0.25, 0.25, 0.5]]\n" + nodes(3),
       "topology.matrix", "is -0.25; weights must be non-negative"},
      {"weight_on_non_edge",
       kHead + "[topology]\nkind = \"edges\"\nedges = [[\"n0\", \"n1\"], [\"n1\", \"n2\"]]\n"
               "weights = \"explicit\"\nmatrix = [  # <-\n"
               "  [0.5, 0.25, 0.25],\n  [0.25, 0.5, 0.25],\n  [0.25, 0.25, 0.5]]\n" + nodes(3),
       "topology.matrix", "but n0 and n2 are not neighbours"},
      {"matrix_wrong_shape",
       kHead + "[topology]\nkind = \"ring\"\nweights = \"explicit\"\nmatrix = [[1.0]]  # <-\n" + nodes(3),
       "topology.matrix", "has 1 rows; the cluster has 3 nodes, so it needs 3"},
      {"misspelt_key",
       kHead + kRing + nodes(2) + "[training]\nbatchsize = 64  # <-\n", "training.batchsize",
       "unknown key; did you mean \"batch_size\"?"},
      {"unknown_table", kHead + kRing + nodes(2) + "[trainig]  # <-\nlr = 0.1\n", "trainig",
       "unknown key; did you mean \"training\"?"},
      {"wrong_type", kHead + kRing + nodes(2) + "[training]\nbatch_size = \"32\"  # <-\n",
       "training.batch_size", "must be an integer, not a string"},
      {"out_of_range", kHead + kRing + nodes(2) + "[training]\nbatch_size = 0  # <-\n",
       "training.batch_size", "0 is out of range; valid: 1 to"},
      {"bad_endpoint",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"127.0.0.1:7000\"  # <-\n",
       "node[0].endpoint", "must start with tcp:// or ipc://"},
      {"bad_port",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:99999\"  # <-\n",
       "node[0].endpoint", "port \"99999\" must be a number from 1 to 65535"},
      {"period_schedule_without_gossip",
       kHead + kRing + nodes(2) +
           "[sync]\nmode = \"dynamic\"\nperiod_schedule = [{ until_step = 10, period = 2 }]  # <-\n",
       "sync.period_schedule", "applies only when mode = \"gossip\""},
      {"period_schedule_not_tables",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"gossip\"\nperiod_schedule = [[10, 2]]  # <-\n",
       "sync.period_schedule[0]", "must be a table such as { until_step = 500, period = 4 }, not an array"},
      {"period_schedule_phase_without_period",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"gossip\"\nperiod_schedule = [{ until_step = 10 }]  # <-\n",
       "sync.period_schedule[0].period", "is required (local steps between rounds in this phase)"},
      {"period_schedule_out_of_order",
       kHead + kRing + nodes(2) +
           "[sync]\nmode = \"gossip\"\nperiod_schedule = [\n  { until_step = 100, period = 2 },\n"
           "  { until_step = 100, period = 4 },  # <-\n]\n",
       "sync.period_schedule[1].until_step", "100 must be greater than the previous phase's 100"},
      {"period_schedule_unknown_key",
       kHead + kRing + nodes(2) +
           "[sync]\nmode = \"gossip\"\nperiod_schedule = [{ until = 0.5, until_step = 9, period = 2 }]  # <-\n",
       "sync.period_schedule[0].until", "unknown key (valid keys here: period, until_step)"},
      {"period_schedule_zero_period",
       kHead + kRing + nodes(2) +
           "[sync]\nmode = \"gossip\"\nperiod_schedule = [{ until_step = 9, period = 0 }]  # <-\n",
       "sync.period_schedule[0].period", "0 is out of range; valid: 1 to 1073741824"},
      {"staleness_without_gossip",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"allreduce\"\nstaleness = 0  # <-\n",
       "sync.staleness", "applies only when mode = \"gossip\""},
      {"wire_precision_in_allreduce_mode",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"allreduce\"\nwire_precision = \"f16\"  # <-\n",
       "sync.wire_precision", "applies only when mode = \"gossip\" or \"dynamic\""},
      {"unknown_collective_transport",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"allreduce\"\ncollective_transport = \"udp\"  # <-\n",
       "sync.collective_transport", "\"udp\" is not valid"},
      {"collective_transport_in_local_mode",
       kHead + kRing + nodes(2) + "[sync]\ncollective_transport = \"tcp\"  # <-\n",
       "sync.collective_transport", "needs a mode that talks to peers, not \"local\""},
      {"tcp_collectives_with_an_ipc_endpoint",
       kHead + kRing + nodes(1) + "[[node]]\nid = \"n1\"\nendpoint = \"ipc:///run/s/n1\"\n" +
           "[sync]\nmode = \"allreduce\"\ncollective_transport = \"tcp\"  # <-\n",
       "sync.collective_transport", "\"tcp\" needs tcp:// endpoints, and node[1] has ipc:///run/s/n1"},
      {"unix_collectives_with_a_tcp_endpoint",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"ipc:///run/s/n0\"\n" +
           "[[node]]\nid = \"n1\"\nendpoint = \"tcp://127.0.0.1:7001\"\n" +
           "[sync]\nmode = \"allreduce\"\ncollective_transport = \"unix\"  # <-\n",
       "sync.collective_transport", "\"unix\" needs ipc:// endpoints, and node[1] has tcp://127.0.0.1:7001"},
      {"unix_collectives_with_a_link_path_too_long",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"ipc:///" + std::string(102, 'p') + "\"\n" +
           "[sync]\nmode = \"allreduce\"\ncollective_transport = \"unix\"  # <-\n",
       "sync.collective_transport",
       "the path is 108 bytes; a Unix socket's path holds at most 107; use a shorter endpoint path"},
      {"unix_collectives_with_curve_keys",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"ipc:///run/s/n0\"\n"
           "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
           "[sync]\nmode = \"allreduce\"\ncollective_transport = \"unix\"  # <-\n",
       "sync.collective_transport", "\"unix\" links are not encrypted, and node[0] has a CURVE public_key"},
      {"unix_link_on_another_nodes_endpoint",
       kHead + kRing + "[[node]]  # <-\nid = \"n0\"\nendpoint = \"ipc:///run/s/n0\"\n" +
           "[[node]]\nid = \"n1\"\nendpoint = \"ipc:///run/s/n0.link\"\n" +
           "[sync]\nmode = \"allreduce\"\n",
       "node[0].endpoint",
       "its ring link would listen at /run/s/n0.link, which node[1]'s endpoint uses"},
      {"tcp_collectives_with_curve_keys",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
           "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
           "[sync]\nmode = \"allreduce\"\ncollective_transport = \"tcp\"  # <-\n",
       "sync.collective_transport", "\"tcp\" links are not encrypted, and node[0] has a CURVE public_key"},
      {"ring_link_port_on_the_data_port",
       kHead + kRing + nodes(1) +
           "[[node]]\nid = \"n1\"\nendpoint = \"tcp://127.0.0.1:7001\"\nring_link_port = 7000  # <-\n"
           "[sync]\nmode = \"allreduce\"\n",
       "node[1].ring_link_port",
       "7000 is taken on that host by node[0]'s endpoint; every listener needs its own port"},
      {"ring_link_port_twice_on_one_host",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\nring_link_port = 7100\n"
           "[[node]]\nid = \"n1\"\nendpoint = \"tcp://localhost:7001\"\nring_link_port = 7100  # <-\n"
           "[sync]\nmode = \"allreduce\"\n",
       "node[1].ring_link_port", "7100 is taken on that host by node[0]'s ring link"},
      {"ring_link_port_with_zeromq_collectives",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\nring_link_port = 7100  # <-\n"
           "[sync]\nmode = \"allreduce\"\ncollective_transport = \"zeromq\"\n",
       "node[0].ring_link_port", "applies only where ring allreduce chunks travel over TCP links"},
      {"ring_link_port_on_an_ipc_node",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"ipc:///run/s/n0\"\nring_link_port = 7100  # <-\n",
       "node[0].ring_link_port", "needs a tcp:// endpoint"},
      {"max_lead_steps_without_dynamic",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"gossip\"\nmax_lead_steps = 32  # <-\n",
       "sync.max_lead_steps", "applies only when mode = \"dynamic\""},
      {"negative_max_lead_steps",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"dynamic\"\nmax_lead_steps = -1  # <-\n",
       "sync.max_lead_steps", "-1"},
      {"int8_wire_precision_in_dynamic_mode",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"dynamic\"\nwire_precision = \"int8\"  # <-\n",
       "sync.wire_precision", "\"int8\" is for mode = \"gossip\" only"},
      {"unknown_wire_precision",
       kHead + kRing + nodes(2) + "[sync]\nmode = \"gossip\"\nwire_precision = \"f8\"  # <-\n",
       "sync.wire_precision", "\"f8\" is not valid"},
      {"gamma_without_step_schedule",
       kHead + kRing + nodes(2) + "[training]\nlr_schedule = \"cosine\"\ngamma = 0.5  # <-\n",
       "training.gamma", "applies only when lr_schedule = \"step\""},
      {"wildcard_host",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://*:7000\"  # <-\n",
       "node[0].endpoint", "\"*\" is not an address peers can connect to"},
      {"bad_host",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://no such host:7000\"  # <-\n",
       "node[0].endpoint", "host \"no such host\" is not a host name or address"},
      {"bad_node_device",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
           "device = \"gpu1\"  # <-\n",
       "node[0].device", "\"gpu1\" is not valid; use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\""},
      {"bad_training_device", kHead + kRing + nodes(2) + "[training]\ndevice = \"cuda:\"  # <-\n",
       "training.device", "\"cuda:\" is not valid"},
      {"bad_public_key",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
           "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL\"  # <-\n",
       "node[0].public_key", "is not a CURVE public key: 40 characters of Z85"},
      {"duplicate_public_key",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
           "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
           "[[node]]\nid = \"n1\"\nendpoint = \"tcp://127.0.0.1:7001\"\n"
           "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"  # <-\n",
       "node[1].public_key", "the same key as the node at line"},
      {"public_key_on_some_nodes_only",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
           "public_key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"
           "[[node]]  # <-\nid = \"n1\"\nendpoint = \"tcp://127.0.0.1:7001\"\n",
       "node[1].public_key", "either every node has a public_key or none does"},
      {"secret_key_file_without_public_key",
       kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = \"tcp://127.0.0.1:7000\"\n"
           "secret_key_file = \"n0.key\"  # <-\n",
       "node[0].secret_key_file", "needs the node's public_key beside it"},
      {"bad_topology_kind", kHead + "[topology]\nkind = \"star\"  # <-\n" + nodes(2), "topology.kind",
       "\"star\" is not valid; use \"ring\" | \"torus\" | \"hypercube\" | \"exponential\" | "
       "\"one-peer-exponential\" | \"complete\" | \"edges\""},
      {"rows_without_torus", kHead + "[topology]\nkind = \"ring\"\nrows = 2  # <-\n" + nodes(2),
       "topology.rows", "applies only when kind = \"torus\""},
      {"bad_partition",
       kHead + kRing + nodes(2) + "[training]\npartition = \"dirichlet:-1\"  # <-\n",
       "training.partition", "use \"iid\", \"dirichlet:ALPHA\" (ALPHA > 0) or \"shards:K\""},
      {"unknown_sync_mode", kHead + kRing + nodes(2) + "[sync]\nmode = \"sgd\"  # <-\n", "sync.mode",
       "\"sgd\" is not a sync mode; this build has"},
      {"dead_before_suspect",
       kHead + kRing + nodes(2) + "[sync]\nsuspect_after_ms = 1000\ndead_after_ms = 500  # <-\n",
       "sync.dead_after_ms", "must be at least suspect_after_ms (1000)"},
      {"negative_round_metrics_interval",
       kHead + kRing + nodes(2) + "[run]\nround_metrics_interval_ms = -1  # <-\n",
       "run.round_metrics_interval_ms", "-1 is out of range; valid: 0"},
      {"missing_cluster_table", kRing + nodes(2), "cluster", "the [cluster] table is required"},
      {"no_nodes", kHead + kRing, "node", "at least one [[node]] table is required"},
      {"bad_node_id", kHead + kRing + "[[node]]\nid = \"n 0\"  # <-\nendpoint = \"tcp://127.0.0.1:7000\"\n",
       "node[0].id", "must be 1-64 characters of letters, digits"},
      {"toml_syntax_error", kHead + kRing + "[[node]]\nid = \"n0\"\nendpoint = = 3  # <-\n", "",
       "TOML syntax error"},
      {"explicit_weights_on_one_peer_graph",
       kHead + "[topology]\nkind = \"one-peer-exponential\"\nweights = \"explicit\"\nmatrix = [  # <-\n"
               "  [0.5, 0.5],\n  [0.5, 0.5]]\n" + nodes(2),
       "topology.matrix", "a one-peer exponential graph fixes its weights"},
  };
}

class BrokenFileTest : public ::testing::TestWithParam<BrokenFile> {};

TEST_P(BrokenFileTest, IsRefusedWithItsMessage) {
  const BrokenFile& file = GetParam();
  std::string source = std::string(file.name) + ".toml";
  try {
    ClusterSpec spec = parse_cluster_text(file.text, source);
    Topology::compile(spec);
    FAIL() << "accepted a broken file:\n" << file.text;
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_EQ(e.file(), source);
    EXPECT_EQ(e.field(), file.field) << what;
    EXPECT_NE(what.find(file.message), std::string::npos)
        << "message: " << what << "\nexpected to contain: " << file.message;
    int line = marked_line(file.text);
    if (line > 0) {
      EXPECT_EQ(e.line(), line) << what;
    }
    // The formatted message starts with file:line so editors can jump to it.
    EXPECT_EQ(what.rfind(source, 0), 0u) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BrokenFileTest, ::testing::ValuesIn(broken_files()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace starling::topology
