#include "daemon/ctl_common.h"

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

}  // namespace starling::daemon
