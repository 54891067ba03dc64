// starlingctl's status table, from replies as the nodes send them.
#include <gtest/gtest.h>

#include <sstream>

#include "daemon/ctl_status.h"

namespace starling::daemon {
namespace {

NodeAnswer gossip_node(const nlohmann::json& sync) {
  NodeAnswer a;
  a.node = "n0";
  a.answered = true;
  a.reply = {{"ok", true}, {"state", "training"}, {"mode", "gossip"}, {"step", 400},
             {"sync", sync}};
  return a;
}

std::string table_of(const NodeAnswer& answer) {
  std::ostringstream out;
  print_status_table({answer}, out);
  return out.str();
}

// With overlapped rounds the mean delay hides the tail that costs the accuracy, so the
// table shows both: the mean, and the share of rounds applied a whole period late.
TEST(StatusTable, OverlappedGossipShowsTheMeanDelayAndTheRoundsAPeriodLate) {
  const std::string table = table_of(gossip_node({{"round", 40},
                                                  {"rounds", 40},
                                                  {"staleness", 1},
                                                  {"mean_apply_lag_steps", 3.4},
                                                  {"rounds_a_period_late", 8}}));
  EXPECT_NE(table.find("round 40, applied 3.4 steps late (20% a period late)"), std::string::npos)
      << table;
}

TEST(StatusTable, BlockingGossipShowsNoDelay) {
  const std::string table = table_of(gossip_node({{"round", 40},
                                                  {"rounds", 40},
                                                  {"staleness", 0},
                                                  {"mean_apply_lag_steps", 0.0},
                                                  {"rounds_a_period_late", 0}}));
  EXPECT_NE(table.find("round 40"), std::string::npos) << table;
  EXPECT_EQ(table.find("late"), std::string::npos) << table;
}

// A node of an older build, without the count, still gets its mean delay shown.
TEST(StatusTable, ANodeWithoutTheLateCountShowsTheMeanDelayAlone) {
  const std::string table = table_of(gossip_node(
      {{"round", 8}, {"rounds", 8}, {"staleness", 1}, {"mean_apply_lag_steps", 2.0}}));
  EXPECT_NE(table.find("round 8, applied 2.0 steps late"), std::string::npos) << table;
  EXPECT_EQ(table.find("a period late"), std::string::npos) << table;
}

}  // namespace
}  // namespace starling::daemon
