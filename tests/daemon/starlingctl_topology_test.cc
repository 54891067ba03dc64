// End to end: the starlingctl binary on every shipped config, and on a broken one.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <unistd.h>

#include "training/temp_dir.h"

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

// --node takes one value per occurrence. It took every word after it: `status --node n9 FILE`
// read FILE as a second node and then said that no cluster file was given.
// A mistyped command is named, with the nearest command and the list; before, CLI11 said "A
// subcommand is required", which hid the typo.
TEST(StarlingctlCommands, AMistypedCommandIsNamedWithTheNearestOne) {
  Result typo = run(std::string(STARLINGCTL_PATH) + " stauts " STARLING_SOURCE_DIR "/configs/ring4.toml");
  EXPECT_EQ(typo.status, 2);
  EXPECT_NE(typo.output.find("\"stauts\" is not a command. Did you mean \"status\"?"), std::string::npos)
      << typo.output;
  EXPECT_NE(typo.output.find("topology, up, status, peers"), std::string::npos) << typo.output;
  Result far = run(std::string(STARLINGCTL_PATH) + " frobnicate");
  EXPECT_EQ(far.status, 2);
  EXPECT_NE(far.output.find("\"frobnicate\" is not a command. Commands:"), std::string::npos)
      << far.output;
  // Commands and options still parse as before.
  EXPECT_EQ(run(std::string(STARLINGCTL_PATH) + " --version").status, 0);
  EXPECT_EQ(run(std::string(STARLINGCTL_PATH) + " topology " STARLING_SOURCE_DIR "/configs/ring4.toml").status, 0);
}

// `up` finds its starlingd before it creates or starts anything: a missing one is one clear
// error (exit 2) and no run directory, where before every node failed to exec (exit 127) and
// the run directory stayed behind.
TEST(StarlingctlCommands, UpWithoutAStarlingdSaysWhereItLookedAndStartsNothing) {
  starling::training::testing::TempDir scratch;
  const std::filesystem::path& dir = scratch.path();
  Result missing = run(std::string(STARLINGCTL_PATH) + " up --starlingd " + (dir / "nope").string() +
                       " --run-dir " + (dir / "run").string());
  EXPECT_EQ(missing.status, 2) << missing.output;
  EXPECT_NE(missing.output.find("--starlingd " + (dir / "nope").string() + " is not an executable file"),
            std::string::npos) << missing.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
  // A starlingctl with no starlingd beside it nor on PATH.
  std::filesystem::copy_file(STARLINGCTL_PATH, dir / "starlingctl");
  Result alone = run("PATH=/nonexistent " + (dir / "starlingctl").string() + " up --run-dir " +
                     (dir / "run").string());
  EXPECT_EQ(alone.status, 2) << alone.output;
  EXPECT_NE(alone.output.find("no starlingd next to this starlingctl (in " + dir.string() +
                              ") or on PATH; pass --starlingd PATH"),
            std::string::npos) << alone.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
}

TEST(StarlingctlCommands, NodeTakesOneValueSoTheFileAfterItIsTheFile) {
  const std::string file = STARLING_SOURCE_DIR "/configs/ring4.toml";
  Result unknown = run(std::string(STARLINGCTL_PATH) + " status --node n9 " + file);
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.output.find(file + ": no node \"n9\" in this cluster"), std::string::npos)
      << unknown.output;
  // Two nodes are two --node options; nothing answers here, so each is shown unreachable.
  Result two = run(std::string(STARLINGCTL_PATH) + " status --timeout-ms 50 -n n0 -n n1 " + file);
  EXPECT_EQ(two.status, 1) << two.output;
  EXPECT_NE(two.output.find("n0 "), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("n1 "), std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("n2 "), std::string::npos) << two.output;
}

// `status` asks every node at once, a socket each. Under a soft limit of 256 open files (the
// hard one stays higher), 300 nodes whose control ports refuse connections must all be shown
// as unreachable for that reason. Before, starlingctl kept the soft limit, and the nodes past
// it were reported with "Too many open files".
TEST(StarlingctlCommands, StatusOfManyNodesIsNotLimitedByTheSoftFileLimit) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("starling-many-nodes-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(path);
    out << "[cluster]\nname = \"many\"\n[topology]\nkind = \"ring\"\n";
    for (int i = 0; i < 300; ++i) {
      // Nothing listens on 127.0.0.2, so every connection is refused at once.
      out << "[[node]]\nid = \"n" << i << "\"\nendpoint = \"tcp://127.0.0.1:" << 20000 + i
          << "\"\ncontrol = \"tcp://127.0.0.2:" << 40000 + i << "\"\n";
    }
  }
  Result hard = run("bash -c 'ulimit -Hn'");
  if (std::stol(hard.output) < 1024) GTEST_SKIP() << "hard limit on open files below 1024";
  Result result = run("bash -c 'ulimit -Sn 256 && " + std::string(STARLINGCTL_PATH) +
                      " status --timeout-ms 300 " + path.string() + "'");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_EQ(result.output.find("Too many open files"), std::string::npos) << result.output;
  std::size_t rows = 0;
  for (std::size_t pos = result.output.find("unreachable"); pos != std::string::npos;
       pos = result.output.find("unreachable", pos + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, 300u) << result.output;
  std::filesystem::remove(path);
}

}  // namespace
