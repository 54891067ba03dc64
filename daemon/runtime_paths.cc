#include "daemon/runtime_paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <stdexcept>

#include "topology/cluster_file.h"
#include "topology/config_error.h"

namespace starling::daemon {

std::filesystem::path runtime_directory() {
  if (const char* dir = std::getenv("RUNTIME_DIRECTORY"); dir && *dir) {
    // systemd may list several, separated by ':'; the first is ours.
    std::string first(dir);
    return first.substr(0, first.find(':'));
  }
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    return std::filesystem::path(xdg) / "starling";
  }
  if (::geteuid() == 0) return "/run/starling";
  return "/tmp/starling-" + std::to_string(::geteuid());
}

void ensure_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return;
  {
    const ScopedUmask owner_only(0077);  // new directories on the way are this node's own
    std::filesystem::create_directories(dir, ec);
  }
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
}

void ensure_private_directory(const std::filesystem::path& dir) {
  ensure_directory(dir);  // a new one is 0700 from the start: no warning below
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + dir.string());
  if (st.st_uid != ::geteuid()) {
    throw std::runtime_error(dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
                             ", not to this user; refusing to put a control socket there");
  }
  if ((st.st_mode & 0077) != 0) {
    if (::chmod(dir.c_str(), 0700) != 0) {
      throw std::runtime_error("cannot make " + dir.string() + " private (chmod 0700)");
    }
    spdlog::warn("made {} private: its mode was {:o}, now 700 (it holds control sockets)",
                 dir.string(), st.st_mode & 07777);
  }
}

std::string control_endpoint(const topology::ClusterSpec& spec, std::size_t node) {
  const auto& n = spec.nodes.at(node);
  if (!n.control.empty()) return n.control;
  return "ipc://" + (runtime_directory() / (spec.name + "-" + n.id + ".sock")).string();
}

void check_control_endpoint(const topology::ClusterSpec& spec, std::size_t node) {
  const auto& n = spec.nodes.at(node);
  if (!n.control.empty()) return;
  const std::string endpoint = control_endpoint(spec, node);
  if (auto problem = topology::ipc_path_problem(ipc_path(endpoint).string())) {
    throw topology::ConfigError(
        spec.file, n.line, 0, "node[" + std::to_string(node) + "].control",
        "the default control socket " + endpoint + ": " + *problem + "; give this node control = "
        "\"ipc://<shorter path>\", or shorten the cluster name or the node id");
  }
}

std::filesystem::path run_directory(const topology::ClusterSpec& spec,
                                    const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  if (!spec.run.dir.empty()) return spec.run.dir;
  if (const char* state = std::getenv("STATE_DIRECTORY"); state && *state) {
    std::string first(state);
    return std::filesystem::path(first.substr(0, first.find(':'))) / spec.name;
  }
  return std::filesystem::path("runs") / spec.name;
}

std::filesystem::path node_directory(const topology::ClusterSpec& spec, std::size_t node,
                                     const std::string& override_dir) {
  return run_directory(spec, override_dir) / spec.nodes.at(node).id;
}

std::filesystem::path ipc_path(const std::string& endpoint) {
  return topology::ipc_endpoint_path(endpoint).value_or(std::string());
}

}  // namespace starling::daemon
