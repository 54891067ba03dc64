#include "daemon/metrics_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "daemon/json_text.h"

namespace starling::daemon {

MetricsLog::MetricsLog(const std::filesystem::path& path)
    : path_(path),
      file_(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644)),
      start_(std::chrono::steady_clock::now()) {
  if (file_.get() < 0) {
    throw std::runtime_error("cannot open metrics file " + path.string() + ": " +
                             std::strerror(errno));
  }
  // A node that died mid-line (a full disk, a power cut) left a line without its newline; a
  // restarted node appends to the same file, and its first line would be glued to that
  // fragment and lost to every reader. End the fragment first: it stays one bad line.
  const off_t size = ::lseek(file_.get(), 0, SEEK_END);
  char last = '\n';
  if (size > 0 && ::pread(file_.get(), &last, 1, size - 1) == 1) fragment_ = last != '\n';
}

double MetricsLog::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void MetricsLog::write(nlohmann::json line) {
  line["time"] = seconds();
  std::lock_guard lock(mutex_);
  // One write(2) per line on an O_APPEND descriptor: no buffer to flush, and a line is either
  // whole or, on a full disk, a fragment. After a fragment the next line starts on a line of
  // its own, so what is lost is the line that did not fit, not also the next one.
  const std::string text = (fragment_ ? "\n" : "") + json_text(line) + "\n";
  const ssize_t written = ::write(file_.get(), text.data(), text.size());
  if (written == static_cast<ssize_t>(text.size())) {
    fragment_ = false;
    return;
  }
  // Nothing written leaves the file as it was; part of it leaves a fragment.
  if (written > 0) fragment_ = text[static_cast<std::size_t>(written) - 1] != '\n';
  ++failed_writes_;
  if (failed_writes_ == 1) {
    spdlog::warn("cannot write to {}: {}; metrics lines are lost until it can be written again "
                 "(further failures are not logged)",
                 path_.string(), written < 0 ? std::strerror(errno) : "short write");
  }
}

}  // namespace starling::daemon
