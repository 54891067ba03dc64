// starlingd: one node of a Starling cluster. Runs in the foreground (systemd style), logs to
// stderr, and stops cleanly (after a checkpoint) on SIGTERM, SIGINT or SIGHUP.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "daemon/control_server.h"
#include "daemon/curve_keys.h"
#include "daemon/file_limit.h"
#include "daemon/node.h"
#include "daemon/node_lock.h"
#include "daemon/runtime_paths.h"
#include "gossip/malloc_tuning.h"
#include "gossip/zmq_transport.h"
#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/topology.h"
#include "training/host_dataset.h"
#include "training/trainer.h"

using namespace starling;

namespace {

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int signal) {
  // Async-signal-safe: one byte naming the signal; the watcher thread does the rest.
  auto byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &byte, 1);
}

// SIGINT, SIGTERM and SIGHUP (a closed terminal: the node stops with a checkpoint rather than
// die without one) get a handler (installed first thing in main) that hands them to a
// watcher thread through a pipe, so a stop request is never lost and never fatal, whichever
// thread the kernel picks (LibTorch and OpenBLAS start threads of their own before main, so
// blocking the signals in our threads alone would not do). A request that arrives while the
// node is still starting (loading the dataset) stops it as soon as it is built.
class StopSignals {
 public:
  StopSignals() {
    if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGHUP, &action, nullptr);
    // A log pipe whose reader went away (`starlingd ... | tee`, tee killed) must not kill
    // training: the write fails with EPIPE and the line is lost, nothing else.
    ::signal(SIGPIPE, SIG_IGN);
    thread_ = std::thread([] {
      unsigned char byte = 0;
      while (::read(g_signal_pipe[0], &byte, 1) == 1 && byte != 0) {
        daemon::request_stop_from_signal(byte);
      }
    });
  }
  ~StopSignals() {
    unsigned char stop = 0;  // not a signal number: ends the watcher
    [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &stop, 1);
    thread_.join();
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  std::thread thread_;
};

// The exit code for what ended a node (daemon/exit_codes.h): the operator's input, the data
// or device, an address or node directory another process holds, or anything else.
int exit_code_for(const std::exception& e) {
  // The cluster file no longer matches the run directory: not worth a restart either.
  if (dynamic_cast<const topology::ConfigError*>(&e) ||
      dynamic_cast<const training::IncompatibleCheckpointError*>(&e)) {
    return daemon::kExitConfig;
  }
  if (dynamic_cast<const training::TrainingError*>(&e)) return daemon::kExitTraining;
  if (dynamic_cast<const gossip::TransportError*>(&e) ||
      dynamic_cast<const daemon::ControlError*>(&e) ||
      dynamic_cast<const daemon::NodeBusyError*>(&e)) {
    return daemon::kExitNetwork;
  }
  return daemon::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  gossip::tune_malloc_for_large_messages();
  // At the soft limit, libzmq aborts the node when its ipc listener cannot accept, and
  // checkpoints cannot be opened: every connection to the data port, the control socket or
  // the metrics endpoint holds a descriptor.
  daemon::raise_open_file_limit();
  CLI::App app{"starlingd: one node of a Starling decentralized training cluster.\n"
               "Trains its shard of the data and averages parameters with its peers as the\n"
               "cluster file's [sync] section says. Logs to stderr; metrics, checkpoints and\n"
               "the node's output go to <run dir>/<node id>/.\n\n"
               "Exit codes: 0 finished (or stopped on request after a checkpoint), 1 runtime\n"
               "failure, 2 invalid cluster file or arguments (or a run directory that\n"
               "cannot hold the node's files, or whose checkpoints are of another model or\n"
               "shard), 3 dataset/device problem,\n"
               "4 cannot bind the data, control or metrics address, or another starlingd\n"
               "runs this node with the same run directory."};
  daemon::NodeOptions options;
  std::string log_level;
  bool check_only = false;
  app.add_option("-c,--config", options.config_path, "cluster file (TOML)")->required();
  app.add_option("-n,--node", options.node_id, "this node's id in the cluster file")->required();
  app.add_option("--run-dir", options.run_dir,
                 "directory for node output (overrides [run] dir; default $STATE_DIRECTORY/<cluster> "
                 "under systemd, else ./runs/<cluster>)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error (overrides [run])")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("--check", check_only,
               "validate the cluster file and this node's place in it, and that its dataset "
               "files are on this machine and load (exit 3 if not), and with CURVE that its secret key "
               "file is its own and readable by it alone (exit 2 if not), then exit");
  auto* hooks = app.add_option_group(
      "Test hooks", "fault injection for tests; never in production. They act on ZeroMQ messages "
                    "and on gossip payloads over ring links, not on allreduce chunks over ring links");
  hooks->add_option("--test-drop-rate", options.faults.drop_probability,
                    "drop this fraction of outgoing messages")
      ->check(CLI::Range(0.0, 1.0));
  int delay_ms = 0;
  hooks->add_option("--test-delay-ms", delay_ms, "delay every outgoing message by this many ms")
      ->check(CLI::Range(0, 60000));
  app.set_version_flag("--version", "starlingd 0.1.0");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a bad command line exits 2, like a bad cluster file.
    return app.exit(e) == 0 ? 0 : daemon::kExitConfig;
  }
  options.faults.delay = std::chrono::milliseconds(delay_ms);
  if (!log_level.empty()) options.log_level = log_level;

  if (check_only) {
    try {
      auto spec = topology::parse_cluster_file(options.config_path);
      auto topo = topology::Topology::compile(spec);
      if (spec.index_of(options.node_id) == spec.nodes.size()) {
        std::string ids;
        for (const auto& node : spec.nodes) ids += (ids.empty() ? "" : ", ") + node.id;
        std::cerr << "starlingd: node \"" << options.node_id << "\" is not in "
                  << options.config_path << "; its nodes are " << ids << "\n";
        return daemon::kExitConfig;
      }
      // Its default control socket's path depends on this machine's runtime directory.
      daemon::check_control_endpoint(spec, spec.index_of(options.node_id));
      // The data this node will train on must be on this machine, and load (a missing or
      // broken file would otherwise only show when the daemon starts).
      const std::string data_dir = training::check_dataset_files(spec.training);
      // So must this node's secret key, readable by it alone and matching its public key.
      const auto& self = spec.nodes[spec.index_of(options.node_id)];
      if (!self.public_key.empty()) {
        try {
          daemon::load_secret_key(self);
        } catch (const daemon::KeyError& e) {
          std::cerr << "starlingd: " << options.config_path << ": node " << self.id << ": "
                    << e.what() << "\n";
          return daemon::kExitConfig;
        }
      }
      std::cout << options.config_path << ": valid; node " << options.node_id << " of "
                << spec.nodes.size() << " in cluster " << spec.name << ", mode " << spec.sync.mode
                << "\n";
      if (!data_dir.empty()) std::cout << "dataset " << spec.training.dataset << ": " << data_dir << "\n";
      return daemon::kExitOk;
    } catch (const topology::ConfigError& e) {
      std::cerr << "starlingd: " << e.what() << "\n";
      return daemon::kExitConfig;
    } catch (const training::TrainingError& e) {
      std::cerr << "starlingd: " << e.what() << "\n";
      return daemon::kExitTraining;
    }
  }

  StopSignals signals;
  try {
    daemon::Node node(options);
    return node.run();
  } catch (const std::exception& e) {
    std::cerr << "starlingd: " << e.what() << "\n";
    return exit_code_for(e);
  }
}
