// The harness's own promise: a failed assertion that prints a node's log also says what its
// process was doing, running (and where each thread waits) or how it ended. Without it a node
// that hung and one that died leave the same log behind.
#include <gtest/gtest.h>

#include <csignal>

#include "support/local_cluster.h"

namespace starling::testing {
namespace {

using namespace std::chrono_literals;

TEST(LocalClusterLog, SaysWhetherTheNodeRunsAndHowItEnded) {
  LocalClusterOptions o;
  o.nodes = 2;
  o.training = "model = \"logreg\"\ndataset = \"synthetic\"\nmax_steps = 100";
  o.sync = "mode = \"gossip\"\nperiod = 8";
  LocalCluster cluster(o);
  EXPECT_NE(cluster.log(0).find("[n0: not started by this test]"), std::string::npos) << cluster.log(0);
  cluster.start(0);  // n1 never comes: n0 waits for it, alive
  ASSERT_TRUE(eventually([&] { return cluster.ask(0, "status").has_value(); }, 20s)) << cluster.log(0);
  const std::string running = cluster.log(0);
  EXPECT_NE(running.find("is running"), std::string::npos) << running;
  EXPECT_NE(running.find("thread "), std::string::npos) << running;
  EXPECT_NE(running.find("syscall "), std::string::npos) << running;

  cluster.signal(0, SIGKILL);
  // Ended but not yet reaped: the log looks without reaping, so wait_exit still sees it.
  ASSERT_TRUE(eventually([&] { return cluster.log(0).find("killed by signal 9") != std::string::npos; }, 5s))
      << cluster.log(0);
  ASSERT_TRUE(cluster.wait_exit(0, 5s).has_value());
  EXPECT_NE(cluster.log(0).find("was killed by signal 9 (Killed)]"), std::string::npos) << cluster.log(0);

  cluster.start(0, {"--no-such-option"});
  ASSERT_TRUE(cluster.wait_exit(0, 10s).has_value());
  EXPECT_NE(cluster.log(0).find("exited with code 2]"), std::string::npos) << cluster.log(0);
}

}  // namespace
}  // namespace starling::testing
