#pragma once
// LocalCluster: a real cluster of starlingd processes on loopback for multi-process tests. It
// writes a cluster file with ephemeral ports and control sockets in a private temp directory,
// starts and signals daemons, and reads their status (control socket) and metrics (JSON lines).
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <string>
#include <vector>

namespace starling::testing {

struct LocalClusterOptions {
  std::size_t nodes = 4;
  std::string topology = "kind = \"ring\"";  // body of [topology]
  std::string training;                      // body of [training]
  std::string sync;                          // body of [sync]
  std::string run;                           // more lines for [run] (after its dir)
  std::string name = "test";
  bool metrics = false;  // give every node a Prometheus endpoint on a free loopback port
  std::vector<std::string> node_lines;  // more lines for node i's [[node]] table (e.g. keys)
  // Where given, node i's data endpoint (else a free loopback port) and the network namespace
  // its starlingd runs in (`ip netns exec`; empty: this one).
  std::vector<std::string> endpoints;
  std::vector<std::string> namespaces;
  std::vector<std::string> controls;  // node i's control endpoint (else an ipc path)
  // Data endpoints not given in `endpoints` are ipc:// paths in the cluster's directory rather
  // than loopback ports (collectives then travel over Unix-domain socket links).
  bool ipc_endpoints = false;
};

class LocalCluster {
 public:
  explicit LocalCluster(const LocalClusterOptions& options);
  ~LocalCluster();  // SIGKILLs whatever still runs and removes the directory

  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& cluster_file() const { return cluster_file_; }
  std::size_t size() const { return ids_.size(); }
  const std::string& id(std::size_t i) const { return ids_[i]; }
  std::string control_endpoint(std::size_t i) const;
  std::string data_endpoint(std::size_t i) const { return endpoints_[i]; }
  int metrics_port(std::size_t i) const { return metrics_ports_.at(i); }

  // Starts node i's starlingd; `config` replaces the cluster file (e.g. a variant with another
  // model) when given.
  void start(std::size_t i, const std::vector<std::string>& extra_args = {},
             const std::filesystem::path& config = {});
  void start_all();
  void signal(std::size_t i, int sig);
  // Waits for node i to exit; returns its wait status, or nullopt on timeout.
  std::optional<int> wait_exit(std::size_t i, std::chrono::milliseconds timeout);
  bool running(std::size_t i);

  // The node's status reply, or nullopt when it does not answer within `timeout`.
  std::optional<nlohmann::json> ask(std::size_t i, const std::string& command,
                                    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  std::vector<nlohmann::json> metrics(std::size_t i, const std::string& event = "") const;
  // Node i's log (stdout and stderr of its starlingd), then one line on its process: still
  // running (with each thread's state and kernel wait point, for a node that hangs), exited
  // with a code, or killed by a signal. A failed assertion that prints it says which.
  std::string log(std::size_t i) const;

 private:
  std::filesystem::path dir_;
  std::filesystem::path cluster_file_;
  std::vector<std::string> ids_;
  std::vector<std::string> endpoints_;
  std::vector<int> metrics_ports_;
  std::vector<std::string> namespaces_;
  std::vector<std::string> controls_;
  std::vector<pid_t> pids_;
  std::vector<std::string> pid_notes_;  // node i's last process, once reaped: how it ended
};

// "exited with code 2", "was killed by signal 9 (Killed)": for failure messages.
std::string describe_wait_status(int status);

// True for the wait status of a process that exited with 0.
bool exited_cleanly(std::optional<int> status);

// Runs a shell command; returns what it wrote to stdout and stderr.
std::string run_command(const std::string& command);

// Polls `predicate` every 20 ms until it holds or `limit` passes.
template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return predicate();
}

}  // namespace starling::testing
