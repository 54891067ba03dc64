// starlingd warns at start about endpoints that other hosts can reach while the cluster has no
// CURVE keys (daemon/curve_keys.h, unprotected_endpoint_warnings).
#include <gtest/gtest.h>

#include <string>

#include "daemon/curve_keys.h"
#include "topology/cluster_file.h"

namespace starling::daemon {
namespace {

// A gossip cluster: node a as given, node b on loopback; with `keyed`, each with a key pair
// of its own.
topology::ClusterSpec two_nodes(const std::string& first_node, bool keyed = false) {
  auto key_lines = [keyed]() -> std::string {
    if (!keyed) return "";
    return "\npublic_key = \"" + generate_key_pair().public_key +
           "\"\nsecret_key_file = \"/nonexistent.key\"\n";
  };
  return topology::parse_cluster_text(
      "[cluster]\nname = \"w\"\n[topology]\nkind = \"ring\"\n[sync]\nmode = \"gossip\"\n"
      "[[node]]\nid = \"a\"\n" +
          first_node + key_lines() + "\n[[node]]\nid = \"b\"\nendpoint = \"tcp://127.0.0.1:7001\"\n" +
          key_lines(),
      "w.toml");
}

TEST(UnprotectedEndpoints, LoopbackAndIpcEndpointsAreNotWarnedAbout) {
  for (const std::string node :
       {"endpoint = \"tcp://127.0.0.1:7000\"", "endpoint = \"tcp://localhost:7000\"",
        "endpoint = \"tcp://[::1]:7000\"", "endpoint = \"ipc:///tmp/a.sock\"",
        "endpoint = \"tcp://127.0.0.2:7000\"\ncontrol = \"tcp://127.0.0.1:7100\""}) {
    EXPECT_TRUE(unprotected_endpoint_warnings(two_nodes(node), 0).empty()) << node;
  }
}

TEST(UnprotectedEndpoints, EndpointsOtherHostsCanReachAreNamedWithWhatTheyAllow) {
  auto warnings = unprotected_endpoint_warnings(
      two_nodes("endpoint = \"tcp://10.1.2.3:7000\"\ncontrol = \"tcp://0.0.0.0:7100\""), 0);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("tcp://10.1.2.3:7000"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("send this node models"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("tcp://0.0.0.0:7100"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[1].find("stop or pause this node"), std::string::npos) << warnings[1];
  // In local mode the data endpoint is not bound.
  auto local = two_nodes("endpoint = \"tcp://10.1.2.3:7000\"");
  local.sync.mode = "local";
  EXPECT_TRUE(unprotected_endpoint_warnings(local, 0).empty());
  // The other node's endpoints are its own business.
  EXPECT_TRUE(unprotected_endpoint_warnings(
                  two_nodes("endpoint = \"tcp://10.1.2.3:7000\""), 1).empty());
}

TEST(UnprotectedEndpoints, AKeyedClusterIsNotWarnedAbout) {
  EXPECT_TRUE(unprotected_endpoint_warnings(
                  two_nodes("endpoint = \"tcp://10.1.2.3:7000\"", true), 0).empty());
}

}  // namespace
}  // namespace starling::daemon
