#pragma once
// `starlingctl up [FILE]`: starts one starlingd per node of a cluster file on this machine,
// shows live progress, stops them all on Ctrl-C, SIGTERM or SIGHUP, and ends with a summary.
// Without FILE it runs the embedded default cluster (default_cluster.h).
#include <chrono>
#include <iosfwd>
#include <string>

namespace starling::daemon {

struct UpOptions {
  std::string cluster_path;  // empty: the embedded default
  std::string run_dir;       // empty: runs/<cluster>-<timestamp>
  std::string starlingd;     // empty: next to starlingctl, else from PATH
  std::chrono::seconds stop_grace{60};  // SIGTERM -> SIGKILL
};

// Returns 0 when every node exited cleanly, 1 when a node failed, 2 for a bad cluster file.
int run_up(const UpOptions& options, std::ostream& out, std::ostream& err);

}  // namespace starling::daemon
