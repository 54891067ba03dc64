// Fault tests: a node SIGKILLed mid-run, then restarted from its checkpoint; a node stalled
// (SIGSTOP) and resumed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "support/local_cluster.h"

namespace starling::testing {
namespace {

using namespace std::chrono_literals;

std::int64_t step_of(LocalCluster& cluster, std::size_t i) {
  auto status = cluster.ask(i, "status", 1000ms);
  return status ? status->value("step", std::int64_t{-1}) : -1;
}

std::string peer_state(LocalCluster& cluster, std::size_t i, const std::string& peer,
                       bool* back = nullptr) {
  auto peers = cluster.ask(i, "peers", 1000ms);
  if (!peers) return "unreachable";
  for (const auto& p : (*peers)["peers"]) {
    if (p.value("id", "") == peer) {
      if (back) *back = p.value("back", false);
      return p.value("state", "");
    }
  }
  return "absent";
}

// The dynamic-averaging settings of the fault tests: a drift check every 8 steps, and replies
// and liveness fast enough for a fault to show within seconds.
const std::string kDynamicSync =
    "mode = \"dynamic\"\nperiod = 8\ndelta_mode = \"relative\"\ndelta = 0.01\n"
    "reply_timeout_ms = 1000";
const std::string kFastLiveness = "heartbeat_ms = 100\nsuspect_after_ms = 400\ndead_after_ms = 1200";

// `nodes` ended with one final allreduce among themselves: each took part in one of
// `nodes.size()` members, it succeeded everywhere, and every node scores the same.
void expect_one_final_model(LocalCluster& cluster, const std::vector<std::size_t>& nodes) {
  std::set<double> accuracies;
  for (std::size_t i : nodes) {
    auto finals = cluster.metrics(i, "final_allreduce");
    ASSERT_FALSE(finals.empty()) << cluster.log(i);
    EXPECT_TRUE(finals.back().value("ok", false)) << cluster.log(i);
    EXPECT_EQ(finals.back().value("members", 0), static_cast<int>(nodes.size())) << cluster.log(i);
    accuracies.insert(cluster.metrics(i, "summary").back().value("accuracy", -1.0));
  }
  EXPECT_EQ(accuracies.size(), 1u);
}

void expect_one_final_model_of_all_four(LocalCluster& cluster) {
  expect_one_final_model(cluster, {0, 1, 2, 3});
}

// Over `span`, each of `nodes` (the ones not held by the fault on n2) advances by more than
// `more_than` steps.
void expect_steps_advance(LocalCluster& cluster, const std::vector<std::size_t>& nodes,
                          std::chrono::milliseconds span, std::int64_t more_than,
                          const std::string& otherwise) {
  std::vector<std::int64_t> before;
  for (std::size_t i : nodes) before.push_back(step_of(cluster, i));
  std::this_thread::sleep_for(span);
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    EXPECT_GT(step_of(cluster, nodes[k]) - before[k], more_than)
        << "node " << nodes[k] << " " << otherwise << "\n" << cluster.log(nodes[k]);
  }
}

TEST(Fault, SigkilledNodeIsDeadForItsNeighboursAndComesBackFromItsCheckpoint) {
  constexpr auto kSuspect = 400ms;
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 30\ncheckpoint_every = 40\neval_every = 100000";
  o.sync = "mode = \"gossip\"\nperiod = 8\nheartbeat_ms = 100\nsuspect_after_ms = 400\n"
           "dead_after_ms = 1200\nround_timeout_ms = 1000";
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= 100; }, 60s)) << cluster.log(2);

  cluster.signal(2, SIGKILL);
  auto status = cluster.wait_exit(2, 5s);
  ASSERT_TRUE(status && WIFSIGNALED(*status));
  const auto killed_at = std::chrono::steady_clock::now();

  // The others keep stepping: within twice the suspect timeout every survivor has advanced.
  expect_steps_advance(cluster, {0, 1, 3}, 2 * kSuspect, 0, "stalled");
  // Its neighbours (n1, n3) see it dead; nobody hangs (they answer).
  for (std::size_t i : {1u, 3u}) {
    EXPECT_TRUE(eventually([&] { return peer_state(cluster, i, "n2") == "dead"; }, 5s))
        << "node " << i << " does not see n2 dead: " << peer_state(cluster, i, "n2");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 10s);
  for (const auto& round : cluster.metrics(1, "gossip")) {
    EXPECT_LT(round.value("waited_ms", 0.0), 1500.0) << "a round waited past its timeout";
  }

  // Restart: it resumes from its newest checkpoint and is alive again for its neighbours.
  cluster.start(2);
  EXPECT_TRUE(eventually([&] { return !cluster.metrics(2, "resumed").empty(); }, 60s))
      << cluster.log(2);
  auto resumed = cluster.metrics(2, "resumed");
  ASSERT_FALSE(resumed.empty());
  EXPECT_GE(resumed.back().value("step", 0), 80);
  for (std::size_t i : {1u, 3u}) {
    bool back = false;
    EXPECT_TRUE(eventually(
        [&] { return peer_state(cluster, i, "n2", &back) == "alive" && back; }, 30s))
        << "node " << i << " does not see n2 back";
  }
  // And it gossips again: a round after the restart hears from both neighbours.
  EXPECT_TRUE(eventually(
      [&] {
        auto lines = cluster.metrics(2);
        bool restarted = false;
        for (const auto& line : lines) {
          if (line.value("event", "") == "resumed") restarted = true;
          if (restarted && line.value("event", "") == "gossip" && line.value("received", 0) == 2) {
            return true;
          }
        }
        return false;
      },
      30s))
      << cluster.log(2);

  for (std::size_t i = 0; i < 4; ++i) cluster.signal(i, SIGTERM);
  for (std::size_t i = 0; i < 4; ++i) {
    auto exit = cluster.wait_exit(i, 60s);
    ASSERT_TRUE(exit) << "node " << i << " did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0)
        << "node " << i << " wait status " << *exit << "\n" << cluster.log(i);
    auto summaries = cluster.metrics(i, "summary");
    ASSERT_FALSE(summaries.empty());
    EXPECT_FALSE(summaries.back().value("finished", true));  // stopped early, with a checkpoint
  }
}

// A node that resumes from its checkpoint is behind by the rounds its neighbours ran while it
// was down. It must rejoin their round *and* step (round r happens at step (r + 1) * period on
// every node); if it rejoined the round only, it would still have rounds to run after they
// finished, each waiting out the round timeout, and its final allreduce would carry another
// tag than theirs and fail.
// `ipc`: ipc:// endpoints, so the final allreduce's chunks travel over Unix-domain socket
// links (gossip payloads go through ZeroMQ), and the killed node's link socket file is left
// behind for its restart to replace.
void restarted_node_rejoins_and_the_cluster_finishes_together(bool ipc) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.ipc_endpoints = ipc;
  o.training = "model = \"mlp\"\nepochs = 6\ncheckpoint_every = 40\neval_every = 100000";
  o.sync = "mode = \"gossip\"\nperiod = 8\nstaleness = 0\nfinal_allreduce = true\n"
           "heartbeat_ms = 100\nsuspect_after_ms = 400\ndead_after_ms = 1200\nround_timeout_ms = 1000";
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= 200; }, 60s)) << cluster.log(2);
  cluster.signal(2, SIGKILL);
  ASSERT_TRUE(cluster.wait_exit(2, 5s));
  // The others go on by a few hundred steps. Counted, not timed: on a fast machine 1.5 s were
  // most of the run, and the node came back only as the others finished.
  const std::int64_t at_kill = step_of(cluster, 0);
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 0) >= at_kill + 300; }, 60s));
  cluster.start(2);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  }
  auto rejoined = cluster.metrics(2, "rejoined");
  ASSERT_FALSE(rejoined.empty()) << cluster.log(2);
  EXPECT_GT(rejoined.front().value("skipped_steps", 0), 0);
  // One final allreduce of all four: one model, one score.
  expect_one_final_model_of_all_four(cluster);
  if (ipc) {
    // Its second run listened where the first left a socket file.
    const std::string log = cluster.log(2);
    const std::string said = "travel over plain Unix-domain socket links";
    const auto first = log.find(said);
    ASSERT_NE(first, std::string::npos) << log;
    EXPECT_NE(log.find(said, first + 1), std::string::npos) << log;
  }
}

TEST(Fault, ARestartedNodeRejoinsTheRoundAndStepAndTheClusterFinishesTogether) {
  restarted_node_rejoins_and_the_cluster_finishes_together(false);
}

TEST(Fault, ARestartedNodeRejoinsOverUnixSocketLinksAndTheClusterFinishesTogether) {
  restarted_node_rejoins_and_the_cluster_finishes_together(true);
}

// The same for dynamic averaging, whose nodes report their step in heartbeats for this.
TEST(Fault, ARestartedDynamicNodeRejoinsTheStepAndTheClusterFinishesTogether) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 6\ncheckpoint_every = 40\neval_every = 100000";
  o.sync = kDynamicSync + "\nfinal_allreduce = true\n" + kFastLiveness;
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= 200; }, 60s)) << cluster.log(2);
  cluster.signal(2, SIGKILL);
  ASSERT_TRUE(cluster.wait_exit(2, 5s));
  const std::int64_t at_kill = step_of(cluster, 0);  // as above
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 0) >= at_kill + 300; }, 60s));
  cluster.start(2);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  }
  auto rejoined = cluster.metrics(2, "rejoined");
  ASSERT_FALSE(rejoined.empty()) << cluster.log(2);
  EXPECT_GT(rejoined.front().value("skipped_steps", 0), 0);
  expect_one_final_model_of_all_four(cluster);
}

// A stall (SIGSTOP) rather than a crash: the node keeps its state and its process, and comes
// back rounds or collectives behind, holding messages from before the stall. The others must
// go on without it, and it must rejoin them and finish with them on one model.
void stall_and_resume(const std::string& sync) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 6\ncheckpoint_every = 40\neval_every = 100000";
  o.sync = sync + "\nfinal_allreduce = true\nheartbeat_ms = 100\nsuspect_after_ms = 400\n"
                  "dead_after_ms = 1200\nround_timeout_ms = 1000\ncollective_timeout_ms = 2000";
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= 200; }, 60s)) << cluster.log(2);
  cluster.signal(2, SIGSTOP);
  std::this_thread::sleep_for(1500ms);  // past dead_after: its neighbours have given it up
  expect_steps_advance(cluster, {0, 1, 3}, 1500ms, 0, "waits for the stalled node");
  for (std::size_t i : {1u, 3u}) EXPECT_EQ(peer_state(cluster, i, "n2"), "dead") << "node " << i;
  cluster.signal(2, SIGCONT);
  for (std::size_t i : {1u, 3u}) {
    EXPECT_TRUE(eventually([&] { return peer_state(cluster, i, "n2") == "alive"; }, 10s))
        << "node " << i << " does not see n2 back";
  }
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  }
  expect_one_final_model_of_all_four(cluster);
}

// `starlingctl pause` of one node: it stays alive and answers, but its heartbeats say it is
// paused, so the others go on without waiting for it (in allreduce mode the ring re-forms
// without it); on resume it rejoins, and the cluster still ends on one model.
void pause_and_resume(const std::string& sync) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 6\ncheckpoint_every = 40\neval_every = 100000";
  o.sync = sync + "\nfinal_allreduce = true\nround_timeout_ms = 2000\ncollective_timeout_ms = 10000";
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= 200; }, 60s)) << cluster.log(2);
  ASSERT_TRUE(cluster.ask(2, "pause"));
  std::this_thread::sleep_for(500ms);
  // Waiting out a timeout per round or collective would allow a few dozen steps at most.
  expect_steps_advance(cluster, {0, 1, 3}, 2s, 100, "waits for the paused node");
  ASSERT_TRUE(cluster.ask(2, "resume"));
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  }
  expect_one_final_model_of_all_four(cluster);
}

// A dynamic-averaging node stopped early (SIGTERM) while the others train on: it leaves at
// once with a checkpoint (it used to enter the final allreduce and wait up to 120 s for nodes
// still training), and the others' final allreduce, among themselves, still succeeds.
TEST(Fault, AStoppedDynamicNodeLeavesAtOnceAndTheOthersFinishOnOneModel) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nepochs = 6\neval_every = 100000";
  o.sync = kDynamicSync + "\nfinal_allreduce = true\n" + kFastLiveness;
  LocalCluster cluster(o);
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= 200; }, 60s)) << cluster.log(2);
  const auto asked = std::chrono::steady_clock::now();
  cluster.signal(2, SIGTERM);
  EXPECT_TRUE(exited_cleanly(cluster.wait_exit(2, 20s))) << cluster.log(2);
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 10s);
  EXPECT_TRUE(cluster.metrics(2, "final_allreduce").empty()) << "a stopped node joined the final allreduce";
  ASSERT_FALSE(cluster.metrics(2, "summary").empty());
  EXPECT_FALSE(cluster.metrics(2, "summary").back().value("finished", true));
  for (std::size_t i : {0u, 1u, 3u}) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 120s))) << cluster.log(i);
  }
  expect_one_final_model(cluster, {0, 1, 3});
}

constexpr int kFinalSteps = 400;

// Four gossip nodes that end with a final allreduce, with liveness slow enough that a held
// node stays alive for the others for `suspect_after_ms`.
LocalClusterOptions final_allreduce_options(int suspect_after_ms) {
  LocalClusterOptions o;
  o.nodes = 4;
  o.training = "model = \"mlp\"\nmax_steps = " + std::to_string(kFinalSteps) + "\neval_every = 100000";
  o.sync = "mode = \"gossip\"\nperiod = 8\nfinal_allreduce = true\nheartbeat_ms = 100\n"
           "suspect_after_ms = " + std::to_string(suspect_after_ms) + "\ndead_after_ms = " +
           std::to_string(2 * suspect_after_ms) + "\nround_timeout_ms = 50";
  return o;
}

// Holds n2 (SIGSTOP) near the end, so that the others finish and enter the final allreduce
// with it, still alive for them (a margin of seconds over the second or two they take to
// finish); returns once they wait in it.
void hold_n2_while_the_others_enter_the_final_allreduce(LocalCluster& cluster) {
  cluster.start_all();
  ASSERT_TRUE(eventually([&] { return step_of(cluster, 2) >= kFinalSteps - 80; }, 60s)) << cluster.log(2);
  cluster.signal(2, SIGSTOP);
  for (std::size_t i : {0u, 1u, 3u}) {
    ASSERT_TRUE(eventually([&] { return step_of(cluster, i) >= kFinalSteps; }, 30s)) << cluster.log(i);
  }
  std::this_thread::sleep_for(300ms);  // into the final allreduce, waiting for n2
  for (std::size_t i : {0u, 1u, 3u}) {
    ASSERT_TRUE(cluster.metrics(i, "final_allreduce").empty()) << "the attempt did not wait for n2";
  }
}

// A member that dies inside the final allreduce: n2, held there (suspect only after 8 s), is
// killed. The attempt fails for all, and the three survivors try again among themselves and
// end on one model. Before, each kept its own.
TEST(Fault, AMemberKilledInTheFinalAllreduceLeavesTheOthersOnOneModel) {
  LocalCluster cluster(final_allreduce_options(8000));
  hold_n2_while_the_others_enter_the_final_allreduce(cluster);
  if (HasFatalFailure()) return;
  cluster.signal(2, SIGKILL);
  EXPECT_TRUE(cluster.wait_exit(2, 10s));
  for (std::size_t i : {0u, 1u, 3u}) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 60s))) << cluster.log(i);
  }
  for (std::size_t i : {0u, 1u, 3u}) {
    auto attempts = cluster.metrics(i, "final_allreduce");
    ASSERT_EQ(attempts.size(), 2u) << cluster.log(i);
    EXPECT_FALSE(attempts[0].value("ok", true));
    EXPECT_EQ(attempts[0].value("members", 0), 4);
  }
  expect_one_final_model(cluster, {0, 1, 3});
}

// A node asked to stop while its final allreduce waits for a slow member stops at once, with
// its final checkpoint, keeping its own model. n2 is held there (alive for the others for
// 12 s); n0 gets SIGTERM while it waits for n2. Before, the stop waited for the collective:
// until n2 turned suspect, and with a member that keeps heartbeating, up to the final
// allreduce's 120 s, systemd's stop timeout, after which SIGKILL loses the final checkpoint.
// The two others end on one model.
TEST(Fault, AStopDuringTheFinalAllreduceIsNotHeldUpBySlowMembers) {
  LocalCluster cluster(final_allreduce_options(12000));
  hold_n2_while_the_others_enter_the_final_allreduce(cluster);
  if (HasFatalFailure()) return;
  cluster.signal(0, SIGTERM);
  const auto stop_sent = std::chrono::steady_clock::now();
  EXPECT_TRUE(exited_cleanly(cluster.wait_exit(0, 5s))) << cluster.log(0);
  std::printf("n0 stopped %.1f s after SIGTERM\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - stop_sent).count());
  auto attempts = cluster.metrics(0, "final_allreduce");
  ASSERT_EQ(attempts.size(), 1u) << cluster.log(0);
  EXPECT_FALSE(attempts[0].value("ok", true));
  EXPECT_NE(attempts[0].value("error", "").find("stopped while waiting"), std::string::npos)
      << attempts[0].dump();
  EXPECT_NE(cluster.log(0).find("final allreduce abandoned: stop requested"), std::string::npos)
      << cluster.log(0);
  auto summary = cluster.metrics(0, "summary");
  ASSERT_EQ(summary.size(), 1u) << cluster.log(0);
  EXPECT_FALSE(summary[0]["checkpoint"].is_null()) << summary[0].dump();
  EXPECT_EQ(summary[0].value("step", 0), kFinalSteps);

  cluster.signal(2, SIGKILL);
  EXPECT_TRUE(cluster.wait_exit(2, 10s));
  for (std::size_t i : {1u, 3u}) {
    EXPECT_TRUE(exited_cleanly(cluster.wait_exit(i, 60s))) << cluster.log(i);
  }
  expect_one_final_model(cluster, {1, 3});
}

TEST(Fault, APausedAllreduceMemberIsNotWaitedForAndRejoinsOnResume) {
  pause_and_resume("mode = \"allreduce\"");
}

TEST(Fault, AStalledGossipNodeIsGivenUpThenRejoinsAndTheClusterFinishesTogether) {
  stall_and_resume("mode = \"gossip\"\nperiod = 8");
}

TEST(Fault, AStalledAllreduceMemberIsGivenUpThenRejoinsAndTheClusterFinishesTogether) {
  stall_and_resume("mode = \"allreduce\"");
}

TEST(Fault, AStalledDynamicNodeIsGivenUpThenRejoinsAndTheClusterFinishesTogether) {
  stall_and_resume(kDynamicSync);
}

// One node training alone with a checkpoint every 50 steps. break_checkpoints() makes its
// checkpoints fail, as a full or vanished disk would: it moves the checkpoint directory away
// (with the checkpoints written so far) and puts a file in its place; mend_checkpoints()
// puts the directory back.
struct CheckpointingNode {
  LocalCluster cluster;
  std::filesystem::path dir;
  std::filesystem::path moved;

  static LocalClusterOptions options() {
    LocalClusterOptions o;
    o.nodes = 1;
    o.training = "model = \"mlp\"\nepochs = 30\ncheckpoint_every = 50\neval_every = 100000";
    o.sync = "mode = \"local\"";
    return o;
  }

  CheckpointingNode()
      : cluster(options()),
        dir(cluster.dir() / "run" / "n0" / "checkpoints"),
        moved(cluster.dir() / "moved") {}

  // Starts the node; true once it has written a checkpoint.
  bool start_and_checkpoint() {
    cluster.start(0);
    return eventually([&] { return !cluster.metrics(0, "checkpoint").empty(); }, 60s);
  }
  void break_checkpoints() {
    std::filesystem::rename(dir, moved);
    std::ofstream(dir) << "not a directory\n";
  }
  void mend_checkpoints() {
    std::filesystem::remove(dir);
    std::filesystem::rename(moved, dir);
  }
};

// A checkpoint that cannot be written neither ends training nor harms the checkpoint before it.
TEST(Fault, ACheckpointThatCannotBeWrittenDoesNotEndTraining) {
  CheckpointingNode node;
  LocalCluster& cluster = node.cluster;
  const auto& dir = node.dir;
  ASSERT_TRUE(node.start_and_checkpoint()) << cluster.log(0);
  node.break_checkpoints();

  ASSERT_TRUE(eventually([&] { return !cluster.metrics(0, "checkpoint_failed").empty(); }, 30s))
      << cluster.log(0);
  const auto failed = cluster.metrics(0, "checkpoint_failed").front();
  EXPECT_NE(failed.value("error", "").find(dir.string()), std::string::npos) << failed.dump();
  auto status = cluster.ask(0, "status");
  ASSERT_TRUE(status) << cluster.log(0);
  EXPECT_GE(status->value("checkpoint_failures", 0), 1);
  EXPECT_TRUE((*status)["checkpoint_error"].is_string()) << status->dump();
  const std::int64_t failed_at = failed.value("step", std::int64_t{0});
  EXPECT_TRUE(eventually([&] { return step_of(cluster, 0) > failed_at + 100; }, 30s))
      << "training stopped after a failed checkpoint\n" << cluster.log(0);
  EXPECT_NE(cluster.log(0).find("training goes on"), std::string::npos) << cluster.log(0);

  // The disk comes back: the next checkpoint is written, and status says all is well again.
  node.mend_checkpoints();
  EXPECT_TRUE(eventually(
      [&] {
        auto lines = cluster.metrics(0, "checkpoint");
        return !lines.empty() && lines.back().value("step", std::int64_t{0}) > failed_at;
      },
      30s))
      << cluster.log(0);
  status = cluster.ask(0, "status");
  ASSERT_TRUE(status);
  EXPECT_TRUE((*status)["checkpoint_error"].is_null()) << status->dump();
  EXPECT_NE(cluster.log(0).find("checkpoints are written again"), std::string::npos);
  cluster.signal(0, SIGTERM);
  EXPECT_TRUE(exited_cleanly(cluster.wait_exit(0, 60s))) << cluster.log(0);
}

// The final checkpoint is the run's result: if it cannot be written the node says so, still
// writes its summary, and exits with a failure; the checkpoint before it is untouched.
TEST(Fault, AFinalCheckpointThatCannotBeWrittenFailsTheNode) {
  CheckpointingNode node;
  LocalCluster& cluster = node.cluster;
  ASSERT_TRUE(node.start_and_checkpoint()) << cluster.log(0);
  node.break_checkpoints();
  cluster.signal(0, SIGTERM);
  auto status = cluster.wait_exit(0, 60s);
  ASSERT_TRUE(status && WIFEXITED(*status)) << cluster.log(0);
  EXPECT_EQ(WEXITSTATUS(*status), 1) << cluster.log(0);
  EXPECT_NE(cluster.log(0).find("final checkpoint at step"), std::string::npos) << cluster.log(0);
  auto summary = cluster.metrics(0, "summary");
  ASSERT_FALSE(summary.empty()) << cluster.log(0);
  EXPECT_TRUE(summary.back()["checkpoint"].is_null());
  EXPECT_TRUE(summary.back()["checkpoint_error"].is_string());
  // The checkpoint written before is whole: a node started on it resumes from it.
  node.mend_checkpoints();
  cluster.start(0);
  EXPECT_TRUE(eventually([&] { return !cluster.metrics(0, "resumed").empty(); }, 60s))
      << cluster.log(0);
  cluster.signal(0, SIGTERM);
  EXPECT_TRUE(exited_cleanly(cluster.wait_exit(0, 60s))) << cluster.log(0);
}

}  // namespace
}  // namespace starling::testing
