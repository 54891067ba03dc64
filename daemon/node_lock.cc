#include "daemon/node_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace starling::daemon {

NodeDirectoryLock::NodeDirectoryLock(const std::filesystem::path& node_dir) {
  const auto path = node_dir / "starlingd.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char pid[32] = {};
    [[maybe_unused]] auto n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      std::string holder(pid);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw NodeBusyError("another starlingd" + (holder.empty() ? "" : " (pid " + holder + ")") +
                          " is running this node with the node directory " + node_dir.string() +
                          "; stop it first, or give this one another --run-dir");
    }
    throw std::runtime_error("cannot lock " + path.string() + ": " + std::strerror(error));
  }
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
    // The lock holds without the pid; only the message to a second daemon is poorer.
  }
}

NodeDirectoryLock::~NodeDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace starling::daemon
