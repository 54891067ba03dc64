#pragma once
// Where a node keeps things on disk, shared by starlingd and starlingctl so both agree on
// default paths.
//
// Control socket: the node's `control` endpoint, or by default
//   ipc://<runtime dir>/<cluster>-<node>.sock
// where the runtime dir is $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else
// $XDG_RUNTIME_DIR/starling, else /run/starling for root, else /tmp/starling-<uid>; created
// with mode 0700 so only this user can reach the control socket.
//
// Node output (metrics, checkpoints, logs): <run dir>/<node id>, where the run dir is the
// --run-dir option, else [run] dir, else $STATE_DIRECTORY/<cluster> (systemd's
// StateDirectory=), else ./runs/<cluster>.
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "topology/cluster_spec.h"

namespace starling::daemon {

std::filesystem::path runtime_directory();
// Creates Starling's runtime directory (0700) if needed; one that exists with wider
// permissions is made 0700, with a warning; throws std::runtime_error if it belongs to
// someone else. Only for Starling's own directory: never for a directory an operator named.
void ensure_private_directory(const std::filesystem::path& dir);
// Creates `dir` and its missing parents (owner-only) if it is not a directory yet; leaves an
// existing one as it is. Throws std::runtime_error naming it if it cannot be created.
void ensure_directory(const std::filesystem::path& dir);

// Sets the process's umask for its lifetime and restores the one before (also when what it
// guards throws). The umask is the process's: use it only around a short call, where no other
// thread creates files.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : before_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(before_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t before_;
};

// The control endpoint of `node` (explicit, or the default ipc path).
std::string control_endpoint(const topology::ClusterSpec& spec, std::size_t node);
// Throws topology::ConfigError (naming the node's control field) if node's control endpoint is
// the default one and its path is too long for a Unix socket: it depends on the runtime
// directory, the cluster name and the node id, so the cluster file alone cannot tell. (An
// explicit control path is checked with the cluster file.)
void check_control_endpoint(const topology::ClusterSpec& spec, std::size_t node);

std::filesystem::path run_directory(const topology::ClusterSpec& spec,
                                    const std::string& override_dir);
std::filesystem::path node_directory(const topology::ClusterSpec& spec, std::size_t node,
                                     const std::string& override_dir);

// For ipc:// endpoints: the socket path (empty for other transports).
std::filesystem::path ipc_path(const std::string& endpoint);

}  // namespace starling::daemon
