#pragma once
// NodeDirectoryLock: one starlingd per node directory (<run dir>/<node id>/). Two daemons
// running the same node into the same directory would interleave its checkpoints and metrics,
// and in local mode nothing else stops the second one: it would even take over the first
// one's ipc control socket, since ZeroMQ replaces a socket file it binds over. The lock is an
// flock(2) on <node dir>/starlingd.lock, held for the life of the process, so a crash or a
// SIGKILL releases it and a restarted node never finds a stale lock. The file holds the pid of
// the holder, for the message.
#include <filesystem>
#include <stdexcept>

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
  ~NodeDirectoryLock();
  NodeDirectoryLock(const NodeDirectoryLock&) = delete;
  NodeDirectoryLock& operator=(const NodeDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace starling::daemon
