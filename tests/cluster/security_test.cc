// CURVE between starlingd processes: encrypted connections among the cluster file's keys, an
// unlisted key kept out, and a secret key file others may read refused at start.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "daemon/curve_keys.h"
#include "support/local_cluster.h"

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

}  // namespace
}  // namespace starling::testing
