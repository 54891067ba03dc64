#pragma once
// Pieces shared by starlingctl's subcommands: finding the cluster file, formatting numbers.
#include <optional>
#include <string>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::daemon {

// The cluster file a subcommand works on: `path` if given, else the one `starlingctl up` left
// in runs/latest/. Throws topology::ConfigError with a message that says what to pass.
topology::ClusterSpec load_cluster_for_ctl(const std::string& path);

// `starlingctl WORD ...` where WORD is no command: names it, suggests the nearest command when
// one is within two edits (a typo), and lists them all.
std::string unknown_command_message(const std::string& word, const std::vector<std::string>& commands);

std::string human_bytes(double bytes);
std::string fixed_digits(double value, int digits);

}  // namespace starling::daemon
