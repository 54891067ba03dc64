#pragma once
// The embedded default cluster that `starlingctl up` runs without a file: 4 nodes on a ring
// on loopback, mlp on Fashion-MNIST, gossip every 8 steps.
#include <string>
#include <vector>

namespace starling::daemon {

// The cluster file text, with data endpoints on the given loopback ports and control sockets
// under `run_dir`.
std::string default_cluster_text(const std::vector<int>& ports, const std::string& run_dir);
inline constexpr int kDefaultClusterNodes = 4;

}  // namespace starling::daemon
