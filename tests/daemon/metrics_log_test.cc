// MetricsLog: one JSON object per line, kept readable across crashes and restarts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/metrics_log.h"
#include "training/temp_dir.h"

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
  training::testing::TempDir scratch;
  const auto& dir = scratch.path();
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
}

// A full disk, simulated with a file size limit (writes past it fail with EFBIG, as they fail
// with ENOSPC on a full disk): the line that did not fit is lost, counted, and the lines
// written once there is room again are whole, not glued to the fragment it left.
TEST(MetricsLog, AFullDiskLosesTheLineThatDidNotFitAndNoOther) {
  training::testing::TempDir scratch;
  const auto& dir = scratch.path();
  const auto path = dir / "metrics.jsonl";
  {
    MetricsLog log(path);
    log.write({{"event", "start"}});
    const auto size = std::filesystem::file_size(path);
    struct sigaction ignore {}, previous {};
    ignore.sa_handler = SIG_IGN;
    ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &previous), 0);
    rlimit limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &limit), 0);
    rlimit full = limit;
    full.rlim_cur = size + 10;  // room for 10 more bytes
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &full), 0);
    log.write({{"event", "train"}, {"step", 100}});  // 10 bytes of it fit
    log.write({{"event", "train"}, {"step", 200}});  // nothing fits
    ::setrlimit(RLIMIT_FSIZE, &limit);
    ::sigaction(SIGXFSZ, &previous, nullptr);
    log.write({{"event", "eval"}});
    EXPECT_EQ(log.failed_writes(), 2u);
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).value("event", ""), "start");
  EXPECT_EQ(lines[1].size(), 10u);  // the fragment, a line of its own
  EXPECT_EQ(nlohmann::json::parse(lines[2]).value("event", ""), "eval");
}

TEST(MetricsLog, ANewFileStartsWithItsFirstLine) {
  training::testing::TempDir scratch;
  const auto& dir = scratch.path();
  {
    MetricsLog log(dir / "metrics.jsonl");
    log.write({{"event", "start"}});
  }
  const auto lines = lines_of(dir / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).value("event", ""), "start");
}

}  // namespace
}  // namespace starling::daemon
