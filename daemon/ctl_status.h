#pragma once
// `starlingctl status|peers|pause|resume|checkpoint|stop [FILE] [--node ID]`: ask the nodes of
// a cluster over their control sockets. A node that does not answer within the timeout is
// shown as unreachable; nothing waits longer than that.
#include <chrono>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::daemon {

struct NodeAnswer {
  std::string node;
  bool answered = false;
  nlohmann::json reply;
  std::string error;
};

// Asks `nodes` (all when empty) of the cluster `command`, concurrently. Encrypted control
// sockets (control_uses_curve) are asked with the key from `key_file`, else with the first
// node's secret key file readable here (curve_keys.h); without one they are reported
// unreachable, with the reason.
std::vector<NodeAnswer> ask_cluster(const topology::ClusterSpec& spec, const std::string& command,
                                    const std::vector<std::string>& nodes,
                                    std::chrono::milliseconds timeout,
                                    const std::string& key_file = "");

// The status table: node, state, step, epoch, loss, accuracy, samples/s, mode, peers
// alive/total, bytes sent, consensus distance.
void print_status_table(const std::vector<NodeAnswer>& answers, std::ostream& out);

// Runs a subcommand; returns the exit code (0 when every asked node answered ok; 1 when some
// did not; 2 for a bad cluster file or node name).
// key_file: the secret key to present to encrypted control sockets (empty: look for one);
// an unusable one is a bad command line (2).
int run_control_command(const std::string& command, const std::string& cluster_path,
                        const std::vector<std::string>& nodes, bool json,
                        std::chrono::milliseconds timeout, std::ostream& out, std::ostream& err,
                        const std::string& key_file = "");

// `starlingctl sync [FILE] [--node ID]`: asks one node (the first that answers, or the one
// named) to schedule an allreduce of all live nodes; that node tells the others. Returns 0
// when it is scheduled.
int run_sync_command(const std::string& cluster_path, const std::vector<std::string>& nodes,
                     std::chrono::milliseconds timeout, std::ostream& out, std::ostream& err,
                     const std::string& key_file = "");

}  // namespace starling::daemon
