// The training engine's warning sink (trainer.h): standard error until a program routes it.
#include <cstdio>
#include <mutex>
#include <string>

#include "training/trainer.h"

namespace starling::training {
namespace {

std::mutex sink_mutex;
WarningSink& current_sink() {
  static WarningSink sink;
  return sink;
}

}  // namespace

void set_warning_sink(WarningSink sink) {
  std::lock_guard lock(sink_mutex);
  current_sink() = std::move(sink);
}

void warn(const std::string& message) {
  WarningSink sink;
  {
    std::lock_guard lock(sink_mutex);
    sink = current_sink();
  }
  // Called outside the lock: a sink may itself warn, or replace the sink.
  if (sink) {
    sink(message);
  } else {
    std::fprintf(stderr, "training: warning: %s\n", message.c_str());
  }
}

}  // namespace starling::training
