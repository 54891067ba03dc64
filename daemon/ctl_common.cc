#include "daemon/ctl_common.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "topology/cluster_file.h"
#include "topology/config_error.h"

namespace starling::daemon {

topology::ClusterSpec load_cluster_for_ctl(const std::string& path) {
  if (!path.empty()) return topology::parse_cluster_file(path);
  const std::filesystem::path latest = "runs/latest/cluster.toml";
  if (!std::filesystem::exists(latest)) {
    throw topology::ConfigError("", 0, 0, "",
                                "no cluster file given and no runs/latest/cluster.toml here "
                                "(left by `starlingctl up`); pass the cluster file");
  }
  return topology::parse_cluster_file(latest.string());
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 4) {
    bytes /= 1000.0;
    ++unit;
  }
  std::ostringstream os;
  os << std::fixed << std::setprecision(unit == 0 ? 0 : 1) << bytes << " " << units[unit];
  return os.str();
}

std::string fixed_digits(double value, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << value;
  return os.str();
}

namespace {

// Levenshtein distance: insertions, deletions and substitutions each cost one.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string unknown_command_message(const std::string& word, const std::vector<std::string>& commands) {
  std::string message = "starlingctl: \"" + word + "\" is not a command.";
  const std::string* nearest = nullptr;
  std::size_t best = 3;  // suggest only within two edits
  for (const std::string& command : commands) {
    const std::size_t d = edit_distance(word, command);
    if (d < best) {
      best = d;
      nearest = &command;
    }
  }
  if (nearest) message += " Did you mean \"" + *nearest + "\"?";
  message += " Commands:";
  for (std::size_t k = 0; k < commands.size(); ++k) message += (k ? ", " : " ") + commands[k];
  return message + " (see starlingctl --help).";
}

}  // namespace starling::daemon
