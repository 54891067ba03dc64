#pragma once
// NodeDirectoryLock: one starlingd per node directory (<run dir>/<node id>/). Two daemons
// running the same node into the same directory would interleave its checkpoints and metrics.
// The endpoints catch most such starts (a bound port, a control socket where a live node
// answers), but not all: in local mode, from a copy of the cluster file with another control
// endpoint, nothing else stopped the second one. The lock is an
// flock(2) on <node dir>/starlingd.lock, held for the life of the process, so a crash or a
// SIGKILL releases it and a restarted node never finds a stale lock. The file holds the pid of
// the holder, for the message.
#include <filesystem>
#include <stdexcept>

#include "training/file_descriptor.h"

namespace starling::daemon {

// The node directory is in use by another live starlingd. starlingd exits with kExitNetwork,
// as for any address or resource another process holds.
class NodeBusyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NodeDirectoryLock {
 public:
  // Takes the lock or throws NodeBusyError naming the directory and the holder's pid; throws
  // std::runtime_error with errno's text if the lock file cannot be made.
  explicit NodeDirectoryLock(const std::filesystem::path& node_dir);

 private:
  training::FileDescriptor file_;  // closing it releases the lock
};

}  // namespace starling::daemon
