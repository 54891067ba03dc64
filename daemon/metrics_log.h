#pragma once
// MetricsLog: a node's metrics as JSON lines (one object per line, each with "event" and
// "time" in seconds since the node started), appended and flushed line by line so a crash
// loses at most the line being written, and any tool can tail or plot them.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

namespace starling::daemon {

class MetricsLog {
 public:
  // Opens `path` for appending (ending a line a crash left unfinished); throws
  // std::runtime_error naming the path.
  explicit MetricsLog(const std::filesystem::path& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Adds "time" and writes one line. Thread-safe.
  void write(nlohmann::json line);
  double seconds() const;  // since construction
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace starling::daemon
