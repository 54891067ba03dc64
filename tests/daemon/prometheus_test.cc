#include <gtest/gtest.h>

#include "daemon/prometheus.h"

namespace starling::daemon {
namespace {

TEST(Prometheus, RendersStatusAndPeersInTheTextFormat) {
  nlohmann::json status = {{"node", "n0"},       {"cluster", "c\"1"}, {"step", 120},
                           {"epoch", 0.5},       {"loss", 0.7},       {"accuracy", nullptr},
                           {"samples_per_s", 900}, {"lr", 0.05},      {"consensus_distance", 0.01},
                           {"peers_alive", 1},   {"peers_total", 2},  {"paused", false},
                           {"checkpoint_failures", 2},
                           {"metrics_write_failures", 4},
                           {"sync",
                            {{"rounds", 15},
                             {"neighbours_left_out", 2},
                             {"apply_lag_steps", 51},
                             {"rounds_a_period_late", 3}}}};
  nlohmann::json peers = {
      {"peers",
       {{{"id", "n1"}, {"state", "alive"}, {"rtt_ms", 0.5}, {"bytes_sent", 1000},
         {"bytes_received", 2000}, {"messages_sent", 3}, {"messages_received", 4},
         {"send_failures", 0}, {"rejected", {{"wrong magic", 2}}}},
        {{"id", "n2"}, {"state", "dead"}, {"rtt_ms", nullptr}, {"bytes_sent", 0},
         {"bytes_received", 0}, {"messages_sent", 0}, {"messages_received", 0},
         {"send_failures", 7}, {"rejected", nlohmann::json::object()}}}},
      {"rejected_from_unknown", {{"unknown sender", 1}}},
      {"handshake_failures", 3}};
  std::string text = render_prometheus(status, peers);
  const std::string labels = "node=\"n0\",cluster=\"c\\\"1\"";
  EXPECT_NE(text.find("# TYPE starling_steps_total counter\nstarling_steps_total{" + labels + "} 120\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("starling_test_accuracy{" + labels + "} NaN"), std::string::npos);
  EXPECT_NE(text.find("starling_peer_up{" + labels + ",peer=\"n1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("starling_peer_up{" + labels + ",peer=\"n2\"} 0"), std::string::npos);
  EXPECT_NE(text.find("starling_peer_rtt_seconds{" + labels + ",peer=\"n1\"} 0.0005"), std::string::npos);
  EXPECT_EQ(text.find("starling_peer_rtt_seconds{" + labels + ",peer=\"n2\"}"), std::string::npos);
  EXPECT_NE(text.find("starling_messages_rejected_total{" + labels +
                      ",peer=\"n1\",reason=\"wrong magic\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("starling_gossip_rounds_total{" + labels + "} 15"), std::string::npos);
  EXPECT_NE(text.find("starling_gossip_apply_lag_steps_total{" + labels + "} 51"), std::string::npos);
  EXPECT_NE(text.find("starling_gossip_rounds_a_period_late_total{" + labels + "} 3"),
            std::string::npos);
  EXPECT_NE(text.find("starling_checkpoint_failures_total{" + labels + "} 2"), std::string::npos);
  EXPECT_NE(text.find("starling_metrics_write_failures_total{" + labels + "} 4"), std::string::npos);
  EXPECT_NE(text.find("starling_handshake_failures_total{" + labels + "} 3"), std::string::npos);
  // Every sample line belongs to a family declared before it.
  std::istringstream lines(text);
  std::string line, family;
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.rfind("#", 0) != 0) {
      EXPECT_EQ(line.rfind(family + "{", 0), 0u) << line;
    }
  }
}

}  // namespace
}  // namespace starling::daemon
