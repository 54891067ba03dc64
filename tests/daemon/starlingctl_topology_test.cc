// End to end: the starlingctl binary on every shipped config, and on a broken one.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

struct Result {
  int status;
  std::string output;
};

Result run(const std::string& command) {
  Result result{-1, ""};
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe)) result.output += buffer.data();
  int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(StarlingctlTopology, WorksOnEveryShippedConfig) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(STARLING_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    Result text = run(std::string(STARLINGCTL_PATH) + " topology " + entry.path().string());
    EXPECT_EQ(text.status, 0) << text.output;
    EXPECT_NE(text.output.find("spectral gap"), std::string::npos) << text.output;

    Result json = run(std::string(STARLINGCTL_PATH) + " topology --json " + entry.path().string());
    ASSERT_EQ(json.status, 0) << json.output;
    auto doc = nlohmann::json::parse(json.output);
    EXPECT_FALSE(doc["nodes"].empty());
    double gap = doc["analysis"]["spectral_gap"].get<double>();
    EXPECT_GT(gap, 0.0);
    EXPECT_LE(gap, 1.0);
  }
  EXPECT_GE(seen, 4);
}

TEST(StarlingctlTopology, BrokenFileExitsTwoWithLocatedMessage) {
  auto path = std::filesystem::temp_directory_path() / "starling-broken-hypercube.toml";
  {
    std::ofstream out(path);
    out << "[cluster]\nname = \"b\"\n[topology]\nkind = \"hypercube\"\n";
    for (int i = 0; i < 3; ++i) {
      out << "[[node]]\nid = \"n" << i << "\"\nendpoint = \"tcp://127.0.0.1:" << 7000 + i << "\"\n";
    }
  }
  Result result = run(std::string(STARLINGCTL_PATH) + " topology " + path.string());
  EXPECT_EQ(result.status, 2);
  EXPECT_NE(result.output.find(path.string() + ":3"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("power-of-two"), std::string::npos) << result.output;
  std::filesystem::remove(path);
}

TEST(StarlingctlTopology, MissingFileIsAClearError) {
  Result result = run(std::string(STARLINGCTL_PATH) + " topology /nonexistent.toml");
  EXPECT_EQ(result.status, 2);
  EXPECT_NE(result.output.find("/nonexistent.toml: cannot open cluster file"), std::string::npos)
      << result.output;
}

}  // namespace
