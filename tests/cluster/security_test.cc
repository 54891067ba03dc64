// CURVE between starlingd processes: encrypted connections among the cluster file's keys, an
// unlisted key kept out, and a secret key file others may read refused at start.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "daemon/control_client.h"
#include "daemon/curve_keys.h"
#include "support/local_cluster.h"
#include "support/ports.h"

namespace starling::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Key pairs for n nodes, secret halves in files under a directory of their own.
struct Keys {
  fs::path dir;
  std::vector<daemon::KeyPair> pairs;
  std::vector<std::string> node_lines;  // public_key and secret_key_file, per node

  explicit Keys(std::size_t n) {
    static int made = 0;
    dir = fs::temp_directory_path() /
          ("starling-keys-" + std::to_string(::getpid()) + "-" + std::to_string(made++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (std::size_t i = 0; i < n; ++i) {
      pairs.push_back(daemon::generate_key_pair());
      fs::path file = dir / ("n" + std::to_string(i) + ".key");
      daemon::write_secret_key_file(file.string(), pairs.back().secret_key);
      node_lines.push_back("public_key = \"" + pairs.back().public_key + "\"\nsecret_key_file = \"" +
                           file.string() + "\"");
    }
  }
  ~Keys() { fs::remove_all(dir); }
};

std::string peer_state(LocalCluster& cluster, std::size_t i, const std::string& peer) {
  auto peers = cluster.ask(i, "peers", 1000ms);
  if (!peers) return "unreachable";
  for (const auto& p : (*peers)["peers"]) {
    if (p.value("id", "") == peer) return p.value("state", "");
  }
  return "absent";
}

TEST(Security, NodesWithKeysTrainOverEncryptedConnectionsAndAgree) {
  Keys keys(3);
  LocalClusterOptions o;
  o.nodes = 3;
  o.training = "model = \"mlp\"\nepochs = 1\nlr = 0.05";
  o.sync = "mode = \"gossip\"\nperiod = 8\nfinal_allreduce = true";
  o.node_lines = keys.node_lines;
  LocalCluster cluster(o);
  cluster.start_all();
  for (std::size_t i = 0; i < 3; ++i) ASSERT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  const double accuracy = cluster.metrics(0, "summary").back().value("accuracy", 0.0);
  EXPECT_GT(accuracy, 0.75);
  for (std::size_t i = 0; i < 3; ++i) {
    auto summary = cluster.metrics(i, "summary").back();
    EXPECT_DOUBLE_EQ(summary.value("accuracy", 0.0), accuracy) << "node " << i;
    EXPECT_NE(cluster.log(i).find("CURVE: every connection is encrypted"), std::string::npos);
  }
}

TEST(Security, ANodeWhoseKeyIsNotInTheClusterFileIsKeptOut) {
  Keys keys(3);
  LocalClusterOptions o;
  o.nodes = 3;
  o.training = "model = \"mlp\"\nepochs = 4\nlr = 0.05\neval_every = 100000";
  o.sync = "mode = \"gossip\"\nperiod = 8\nstartup_timeout_ms = 1000";
  o.node_lines = keys.node_lines;
  LocalCluster cluster(o);
  // n2 runs with a key pair of its own that the others' cluster file does not list.
  Keys other(1);
  std::ifstream in(cluster.cluster_file());
  std::stringstream text;
  text << in.rdbuf();
  std::string variant = text.str();
  const std::string original = keys.node_lines[2];
  const std::string replacement = "public_key = \"" + other.pairs[0].public_key +
                                  "\"\nsecret_key_file = \"" + (other.dir / "n0.key").string() + "\"";
  variant.replace(variant.find(original), original.size(), replacement);
  const fs::path variant_file = cluster.dir() / "intruder.toml";
  std::ofstream(variant_file) << variant;

  cluster.start(0);
  cluster.start(1);
  cluster.start(2, {}, variant_file);
  ASSERT_TRUE(eventually([&] { return peer_state(cluster, 0, "n1") == "alive"; }, 20s)) << cluster.log(0);
  for (int k = 0; k < 10; ++k) {
    for (std::size_t i : {0u, 1u}) {
      EXPECT_NE(peer_state(cluster, i, "n2"), "alive") << "node " << i << " let n2's unlisted key in";
    }
    std::this_thread::sleep_for(100ms);
  }
  auto peers = cluster.ask(0, "peers", 1000ms);
  ASSERT_TRUE(peers);
  EXPECT_GT((*peers).value("handshake_failures", 0), 0) << peers->dump();
  EXPECT_NE(cluster.log(0).find("is not another node's key in the cluster file"), std::string::npos)
      << cluster.log(0);
  for (std::size_t i : {0u, 1u}) EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  cluster.signal(2, SIGTERM);
  cluster.wait_exit(2, 30s);
}

TEST(Security, ASecretKeyFileOthersMayReadIsRefusedWithItsName) {
  Keys keys(2);
  const fs::path key_file = keys.dir / "n0.key";
  ASSERT_EQ(::chmod(key_file.c_str(), 0644), 0);
  LocalClusterOptions o;
  o.nodes = 2;
  o.training = "model = \"mlp\"\nepochs = 1";
  o.sync = "mode = \"gossip\"";
  o.node_lines = keys.node_lines;
  LocalCluster cluster(o);
  cluster.start(0);
  auto status = cluster.wait_exit(0, 30s);
  ASSERT_TRUE(status && WIFEXITED(*status)) << cluster.log(0);
  EXPECT_EQ(WEXITSTATUS(*status), 2) << cluster.log(0);
  EXPECT_NE(cluster.log(0).find(key_file.string() + ": group or others may read"), std::string::npos)
      << cluster.log(0);
}

TEST(Security, AnEncryptedControlSocketAnswersNodeKeysOnly) {
  // tcp:// control sockets of a keyed cluster are CURVE servers that admit the node keys:
  // anyone who can reach one could otherwise stop or pause training.
  Keys keys(2);
  LocalClusterOptions o;
  o.nodes = 2;
  o.training = "model = \"mlp\"\nepochs = 30\neval_every = 100000";
  o.sync = "mode = \"gossip\"\nperiod = 8";
  o.node_lines = keys.node_lines;
  o.controls = {"tcp://127.0.0.1:" + std::to_string(free_tcp_port()),
                "tcp://127.0.0.1:" + std::to_string(free_tcp_port())};
  LocalCluster cluster(o);
  cluster.start_all();
  const std::string ctl = std::string(STARLINGCTL_PATH);
  const std::string file = cluster.cluster_file().string();

  // starlingctl finds a node's secret key file (readable here) and is answered by both.
  std::string table;
  EXPECT_TRUE(eventually(
      [&] {
        table = run_command(ctl + " status " + file + " --json");
        auto doc = nlohmann::json::parse(table, nullptr, false);
        if (!doc.is_array() || doc.size() != 2) return false;
        for (const auto& row : doc) {
          if (!row.value("answered", false)) return false;
        }
        return true;
      },
      60s))
      << table << cluster.log(0);
  EXPECT_NE(cluster.log(0).find("control socket tcp://127.0.0.1:"), std::string::npos);

  // A plain client gets nothing; one with a key the cluster does not list is told it is
  // refused, at once, and the node logs the key once.
  auto plain = daemon::query_node(cluster.control_endpoint(0), {{"cmd", "status"}}, 1000ms);
  EXPECT_FALSE(plain.answered);
  const auto stranger = daemon::generate_key_pair();
  daemon::ControlClientCurve curve{stranger.public_key, stranger.secret_key, {keys.pairs[0].public_key}};
  const auto start = std::chrono::steady_clock::now();
  auto refused = daemon::query_node(cluster.control_endpoint(0), {{"cmd", "stop"}}, 5000ms, &curve);
  EXPECT_FALSE(refused.answered);
  EXPECT_EQ(refused.error.rfind("refused", 0), 0u) << refused.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s) << "a refusal looked like a silent node";
  EXPECT_TRUE(eventually(
      [&] {
        return cluster.log(0).find("is not a node's key in the cluster file") != std::string::npos;
      },
      5s))
      << cluster.log(0);
  EXPECT_TRUE(cluster.running(0)) << "a refused client stopped the node";

  // --key with a key that is not a node's is a bad command line.
  const fs::path stranger_file = keys.dir / "stranger.key";
  daemon::write_secret_key_file(stranger_file.string(), stranger.secret_key);
  std::string bad = run_command(ctl + " status " + file + " --key " + stranger_file.string() +
                                " 2>&1; echo rc=$?");
  EXPECT_NE(bad.find("is not a node's public_key"), std::string::npos) << bad;
  EXPECT_NE(bad.find("rc=2"), std::string::npos) << bad;

  // A node's key, named with --key, may stop the cluster; the nodes log whose key asked.
  std::string stop = run_command(ctl + " stop " + file + " --key " + (keys.dir / "n1.key").string() +
                                 " 2>&1; echo rc=$?");
  EXPECT_NE(stop.find("rc=0"), std::string::npos) << stop;
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 60s))) << cluster.log(i);
    EXPECT_NE(cluster.log(i).find("stop requested by control request (key of n1)"), std::string::npos)
        << cluster.log(i);
  }
}

}  // namespace
}  // namespace starling::testing
