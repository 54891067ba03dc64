#pragma once
// MetricsLog: a node's metrics as JSON lines (one object per line, each with "event" and
// "time" in seconds since the node started), appended with one write(2) per line so a crash
// or a full disk loses at most the line being written, and any tool can tail or plot them.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "training/file_descriptor.h"

namespace starling::daemon {

class MetricsLog {
 public:
  // Opens `path` for appending (ending a line a crash left unfinished); throws
  // std::runtime_error naming the path.
  explicit MetricsLog(const std::filesystem::path& path);

  // Adds "time" and writes one line. Thread-safe. A line that cannot be written (a full
  // disk) is lost, logged the first time, and counted; the lines after it stay whole.
  void write(nlohmann::json line);
  std::uint64_t failed_writes() const {
    std::lock_guard lock(mutex_);
    return failed_writes_;
  }
  double seconds() const;  // since construction
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  training::FileDescriptor file_;
  mutable std::mutex mutex_;
  bool fragment_ = false;  // the file ends in a partial line (guarded by mutex_)
  std::uint64_t failed_writes_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace starling::daemon
