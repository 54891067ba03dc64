#include "daemon/metrics_log.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "daemon/json_text.h"

namespace starling::daemon {

MetricsLog::MetricsLog(const std::filesystem::path& path)
    : path_(path), start_(std::chrono::steady_clock::now()) {
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) {
    throw std::runtime_error("cannot open metrics file " + path.string() + ": " +
                             std::strerror(errno));
  }
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

double MetricsLog::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void MetricsLog::write(nlohmann::json line) {
  line["time"] = seconds();
  std::string text = json_text(line) + "\n";
  std::lock_guard lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace starling::daemon
