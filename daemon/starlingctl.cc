// starlingctl: the operator's command for Starling clusters.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "daemon/ctl_common.h"
#include "daemon/ctl_status.h"
#include "daemon/curve_keys.h"
#include "daemon/ctl_topology.h"
#include "daemon/ctl_up.h"
#include "daemon/file_limit.h"

using namespace starling;

int main(int argc, char** argv) {
  // `status` of a large cluster asks every node at once, a socket each.
  starling::daemon::raise_open_file_limit();
  CLI::App app{"starlingctl: inspect and operate Starling training clusters.\n"
               "FILE is a cluster file; where it is optional, the default is the cluster of the\n"
               "last `starlingctl up` (runs/latest/cluster.toml).\n\n"
               "Exit codes: 0 success, 1 a node did not answer or failed, 2 invalid cluster file\n"
               "or command line."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "starlingctl 0.1.0");

  std::string topology_file;
  bool topology_json = false;
  auto* topology = app.add_subcommand(
      "topology", "Validate a cluster file and print nodes, neighbours, weights and the spectral "
                  "analysis (degree, diameter, SLEM, spectral gap, rounds to shrink 10x)");
  topology->add_option("FILE", topology_file, "cluster file (TOML)")->required();
  topology->add_flag("--json", topology_json, "print JSON for scripts");

  daemon::UpOptions up_options;
  int stop_grace = 60;
  auto* up = app.add_subcommand(
      "up", "Start one starlingd per node of FILE on this machine, show live progress, stop them "
            "all on Ctrl-C, SIGTERM or SIGHUP, and print a summary. Without FILE: the embedded "
            "default (4 nodes on a ring, mlp on Fashion-MNIST, gossip every 8 steps). Exits "
            "non-zero if a node failed.");
  up->add_option("FILE", up_options.cluster_path, "cluster file (default: the embedded default)");
  up->add_option("--run-dir", up_options.run_dir,
                 "where node output goes (default: runs/<cluster>-<timestamp>)");
  up->add_option("--starlingd", up_options.starlingd,
                 "the starlingd binary (default: next to starlingctl, else from PATH)");
  up->add_option("--stop-grace", stop_grace, "seconds to wait for nodes to stop before SIGKILL")
      ->check(CLI::Range(1, 3600));

  struct ControlSubcommand {
    std::string name;
    CLI::App* app;
    std::string file;
    std::vector<std::string> nodes;
    bool json = false;
    int timeout_ms = 1000;
    std::string key_file = {};
  };
  std::vector<ControlSubcommand> control = {
      {"status", nullptr, {}, {}, false, 1000}, {"peers", nullptr, {}, {}, false, 1000},
      {"pause", nullptr, {}, {}, false, 1000},  {"resume", nullptr, {}, {}, false, 1000},
      {"checkpoint", nullptr, {}, {}, false, 30000}, {"stop", nullptr, {}, {}, false, 1000}};
  const std::string key_help =
      "with CURVE keys in the cluster file, tcp:// control sockets are encrypted: present the "
      "secret key in this file, which must be a node's (default: the first node's "
      "secret_key_file readable here)";
  const std::map<std::string, std::string> descriptions = {
      {"status", "One line per node: state, step, epoch, loss, accuracy, samples/s, mode, peers "
                 "alive/total, bytes sent, consensus distance. Unreachable nodes are shown as such."},
      {"peers", "Each node's view of its peers: state, round-trip time, traffic, rejected messages"},
      {"pause", "Pause training on the nodes (they keep answering; their peers go on without them)"},
      {"resume", "Resume paused nodes"},
      {"checkpoint", "Ask the nodes to write a checkpoint now; prints each path"},
      {"stop", "Stop the nodes gracefully (each writes a checkpoint, then exits)"}};
  for (auto& c : control) {
    c.app = app.add_subcommand(c.name, descriptions.at(c.name));
    c.app->add_option("FILE", c.file, "cluster file (default: runs/latest/cluster.toml)");
    // One value per --node: otherwise `status --node n0 cluster.toml` took the file for a
    // second node and then said that no cluster file was given.
    c.app->add_option("-n,--node", c.nodes, "only this node (repeat for more; default: all)")
        ->allow_extra_args(false);
    c.app->add_flag("--json", c.json, "print JSON for scripts");
    c.app->add_option("--timeout-ms", c.timeout_ms,
                      "how long to wait for answers (a checkpoint is written at the node's next "
                      "step boundary, so it waits longer)")
        ->check(CLI::Range(10, 600000))
        ->capture_default_str();
    c.app->add_option("--key", c.key_file, key_help);
  }

  std::string sync_file;
  std::vector<std::string> sync_nodes;
  int sync_timeout_ms = 1000;
  auto* sync = app.add_subcommand(
      "sync", "Ask a gossip cluster for one ring allreduce of the parameters of all live nodes "
              "(one node schedules it a few rounds ahead and tells the others)");
  sync->add_option("FILE", sync_file, "cluster file (default: runs/latest/cluster.toml)");
  sync->add_option("-n,--node", sync_nodes, "ask this node (default: the first that answers)")
      ->allow_extra_args(false);
  sync->add_option("--timeout-ms", sync_timeout_ms, "how long to wait for an answer")
      ->check(CLI::Range(10, 600000));
  std::string sync_key_file;
  sync->add_option("--key", sync_key_file, key_help);

  std::string keygen_file;
  auto* keygen = app.add_subcommand(
      "keygen", "Make a CURVE key pair for a node: write the secret key to FILE (mode 0600, never "
                "replacing a file) and print the public key to list as the node's public_key");
  keygen->add_option("FILE", keygen_file, "where the secret key goes (the node's secret_key_file)")
      ->required();

  // CLI11 answers a mistyped command ("stauts") with "A subcommand is required", which hides
  // the typo: name the word, the nearest command and the list instead.
  if (argc >= 2 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const CLI::App* command : app.get_subcommands({})) names.push_back(command->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::cerr << daemon::unknown_command_message(argv[1], names) << "\n";
      return 2;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help exits 0; a bad command line 2
  }

  if (keygen->parsed()) {
    try {
      auto pair = daemon::generate_key_pair();
      daemon::write_secret_key_file(keygen_file, pair.secret_key);
      std::cout << "public_key = \"" << pair.public_key << "\"\n";
      std::cerr << "secret key written to " << keygen_file << " (mode 0600); list the line above "
                << "in the node's [[node]] table, with secret_key_file = \"" << keygen_file << "\"\n";
      return 0;
    } catch (const daemon::KeyError& e) {
      std::cerr << "starlingctl keygen: " << e.what() << "\n";
      return 1;
    }
  }
  if (sync->parsed()) {
    return daemon::run_sync_command(sync_file, sync_nodes, std::chrono::milliseconds(sync_timeout_ms),
                                    std::cout, std::cerr, sync_key_file);
  }

  if (topology->parsed()) {
    return daemon::run_topology_command(topology_file, topology_json, std::cout, std::cerr);
  }
  if (up->parsed()) {
    up_options.stop_grace = std::chrono::seconds(stop_grace);
    return daemon::run_up(up_options, std::cout, std::cerr);
  }
  for (auto& c : control) {
    if (c.app->parsed()) {
      return daemon::run_control_command(c.name, c.file, c.nodes, c.json,
                                         std::chrono::milliseconds(c.timeout_ms), std::cout,
                                         std::cerr, c.key_file);
    }
  }
  return 1;
}
