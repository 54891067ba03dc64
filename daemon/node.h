#pragma once
// Node: one starlingd. Wires a cluster file's node into a running daemon: trainer, transport,
// sync strategy, control socket, metrics, checkpoints, signals and systemd notification, and
// runs the training loop on the calling thread.
#include <memory>
#include <optional>
#include <string>

#include "daemon/exit_codes.h"
#include "gossip/zmq_transport.h"

namespace starling::daemon {

struct NodeOptions {
  std::string config_path;
  std::string node_id;
  std::string run_dir;                   // overrides [run] dir
  std::optional<std::string> log_level;  // overrides [run] log_level
  gossip::FaultInjection faults;         // test hooks
};

// For starlingd's signal thread: asks the running Node to stop (and, if none is running yet,
// the next one built stops as soon as it is). Thread-safe; not async-signal-safe (call it
// from a thread that took the signal with sigwait).
void request_stop_from_signal(int signal);

class Node {
 public:
  // Loads and checks everything and binds the sockets; throws topology::ConfigError,
  // training::TrainingError, gossip::TransportError, ControlError or NodeBusyError.
  explicit Node(const NodeOptions& options);
  ~Node();

  // Trains until done or asked to stop; returns an ExitCode.
  int run();
  // Thread-safe: ends the run at the next step boundary, after a checkpoint.
  void request_stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace starling::daemon
