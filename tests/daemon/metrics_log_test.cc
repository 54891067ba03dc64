// MetricsLog: one JSON object per line, kept readable across crashes and restarts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/metrics_log.h"

namespace starling::daemon {
namespace {

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A node that died mid-line left a fragment; the restarted node's lines must not be glued to
// it: every line but the fragment parses, and the fragment stays a line of its own.
TEST(MetricsLog, ARestartAfterACrashMidLineKeepsEveryNewLineWhole) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("starling-metrics-log-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "metrics.jsonl";
  std::ofstream(path) << "{\"event\":\"start\"}\n{\"event\":\"train\",\"st";  // the crash
  {
    MetricsLog log(path);
    log.write({{"event", "resumed"}});
  }
  {
    MetricsLog log(path);  // a file that ends with a newline gets none added
    log.write({{"event", "train"}});
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1], "{\"event\":\"train\",\"st");
  EXPECT_EQ(nlohmann::json::parse(lines[2]).value("event", ""), "resumed");
  EXPECT_EQ(nlohmann::json::parse(lines[3]).value("event", ""), "train");
  std::filesystem::remove_all(dir);
}

TEST(MetricsLog, ANewFileStartsWithItsFirstLine) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("starling-metrics-log-new-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    MetricsLog log(dir / "metrics.jsonl");
    log.write({{"event", "start"}});
  }
  const auto lines = lines_of(dir / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).value("event", ""), "start");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace starling::daemon
