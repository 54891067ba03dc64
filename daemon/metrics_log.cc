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
  // A node that died mid-line (a full disk, a power cut) left a line without its newline; a
  // restarted node appends to the same file, and its first line would be glued to that
  // fragment and lost to every reader. End the fragment first: it stays one bad line.
  if (std::FILE* tail = std::fopen(path.c_str(), "rb")) {
    if (std::fseek(tail, -1, SEEK_END) == 0 && std::fgetc(tail) != '\n') {
      std::fputc('\n', file_);
      std::fflush(file_);
    }
    std::fclose(tail);
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
