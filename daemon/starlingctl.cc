// starlingctl: the operator's command for Starling clusters.
#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon/ctl_topology.h"

int main(int argc, char** argv) {
  CLI::App app{"starlingctl: inspect and operate Starling training clusters"};
  app.require_subcommand(1);

  std::string topology_file;
  bool topology_json = false;
  auto* topology = app.add_subcommand(
      "topology", "Validate a cluster file and print nodes, neighbours, weights and the spectral "
                  "analysis (degree, diameter, SLEM, spectral gap, rounds to shrink 10x)");
  topology->add_option("FILE", topology_file, "cluster file (TOML)")->required();
  topology->add_flag("--json", topology_json, "print JSON for scripts");

  CLI11_PARSE(app, argc, argv);

  if (topology->parsed()) {
    return starling::daemon::run_topology_command(topology_file, topology_json, std::cout, std::cerr);
  }
  return 1;
}
