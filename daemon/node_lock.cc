#include "daemon/node_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace starling::daemon {

namespace {

std::filesystem::path lock_path(const std::filesystem::path& node_dir) {
  return node_dir / "starlingd.lock";
}

}  // namespace

// A throw below closes file_ (a member already constructed), which releases any lock taken.
NodeDirectoryLock::NodeDirectoryLock(const std::filesystem::path& node_dir)
    : file_(::open(lock_path(node_dir).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
  const auto path = lock_path(node_dir);
  if (file_.get() < 0) {
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(file_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      char pid[32] = {};
      [[maybe_unused]] auto n = ::pread(file_.get(), pid, sizeof pid - 1, 0);
      std::string holder(pid);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw NodeBusyError("another starlingd" + (holder.empty() ? "" : " (pid " + holder + ")") +
                          " is running this node with the node directory " + node_dir.string() +
                          "; stop it first, or give this one another --run-dir");
    }
    throw std::runtime_error("cannot lock " + path.string() + ": " + std::strerror(error));
  }
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(file_.get(), 0) != 0 || ::pwrite(file_.get(), text.data(), text.size(), 0) < 0) {
    // The lock holds without the pid; only the message to a second daemon is poorer.
  }
}

}  // namespace starling::daemon
