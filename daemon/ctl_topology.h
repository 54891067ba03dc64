#pragma once
// `starlingctl topology FILE [--json]`: nodes, neighbours, weights and the spectral analysis.
#include <iosfwd>
#include <string>

namespace starling::daemon {

// Prints the report for `path` to `out`; errors (a ConfigError's message) go to `err`.
// Returns the process exit code: 0 on success, 2 for an invalid cluster file.
int run_topology_command(const std::string& path, bool json, std::ostream& out, std::ostream& err);

}  // namespace starling::daemon
