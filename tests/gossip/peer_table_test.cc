#include <gtest/gtest.h>

#include "gossip/peer_table.h"

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;

TEST(PeerTable, StatesFollowSilence) {
  PeerTable table({"a", "b", "c"}, 0, PeerTiming{100ms, 300ms});
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(table.state(1), PeerState::connecting);
  table.on_received(1, 64, 1, t0);
  auto transitions = table.update(t0);
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].to, PeerState::alive);
  table.update(t0 + 150ms);
  EXPECT_EQ(table.state(1), PeerState::suspect);
  table.update(t0 + 350ms);
  EXPECT_EQ(table.state(1), PeerState::dead);
  EXPECT_TRUE(table.is_dead(1));
  table.on_received(1, 64, 2, t0 + 400ms);
  transitions = table.update(t0 + 400ms);
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, PeerState::dead);
  auto snapshot = table.snapshot();
  EXPECT_TRUE(snapshot[1].back);
  EXPECT_EQ(snapshot[1].returns, 1u);
  EXPECT_EQ(snapshot[1].incarnation, 2u);
  EXPECT_EQ(snapshot[1].bytes_received, 128u);
  EXPECT_EQ(table.state(2), PeerState::connecting);  // never heard from
}

TEST(PeerTable, APeerNeverHeardFromIsEventuallyDead) {
  PeerTable table({"a", "b"}, 0, PeerTiming{100ms, 300ms, 1000ms});
  auto t0 = std::chrono::steady_clock::now();
  table.update(t0 + 900ms);
  EXPECT_EQ(table.state(1), PeerState::connecting);
  table.update(t0 + 1100ms);
  EXPECT_EQ(table.state(1), PeerState::dead);
}

TEST(PeerTable, CountsRejectionsAndReportsTheFirstOfEachKind) {
  PeerTable table({"a", "b"}, 0, PeerTiming{});
  EXPECT_TRUE(table.on_rejected(1, RejectReason::bad_magic));
  EXPECT_FALSE(table.on_rejected(1, RejectReason::bad_magic));
  EXPECT_TRUE(table.on_rejected(1, RejectReason::non_finite));
  auto snapshot = table.snapshot();
  EXPECT_EQ(snapshot[1].rejected[static_cast<std::size_t>(RejectReason::bad_magic)], 2u);
}

TEST(PeerTable, SmoothsRoundTripTime) {
  PeerTable table({"a", "b"}, 0, PeerTiming{});
  table.on_rtt(1, 10ms);
  EXPECT_DOUBLE_EQ(table.snapshot()[1].rtt_ms, 10.0);
  table.on_rtt(1, 20ms);
  EXPECT_DOUBLE_EQ(table.snapshot()[1].rtt_ms, 12.0);
}

TEST(PeerTable, SlowRoundTripsStretchTheSilenceAPeerIsAllowed) {
  PeerTiming timing{100ms, 300ms, 1000ms, 2000ms};
  PeerTable table({"a", "b", "c"}, 0, timing);
  auto t0 = std::chrono::steady_clock::now();
  table.on_received(1, 64, 1, t0);
  table.on_received(2, 64, 1, t0);
  // Fast round trips (a LAN) leave the configured times alone.
  table.on_rtt(2, 1ms);
  EXPECT_EQ(table.suspect_after(2), 100ms);
  EXPECT_EQ(table.dead_after(2), 300ms);
  // A link whose round trips take 400 ms: SRTT 400, RTTVAR 200 after the first sample
  // (RFC 6298), so 400 + 4 * 200 = 1200 ms of silence before suspect, and dead 1100 ms later
  // than configured.
  table.on_rtt(1, 400ms);
  EXPECT_EQ(table.suspect_after(1), 1200ms);
  EXPECT_EQ(table.dead_after(1), 1400ms);
  EXPECT_EQ(table.snapshot()[1].suspect_after, 1200ms);
  table.update(t0 + 1100ms);
  EXPECT_EQ(table.state(1), PeerState::alive);  // what the configured times call dead
  EXPECT_EQ(table.state(2), PeerState::dead);
  table.update(t0 + 1300ms);
  EXPECT_EQ(table.state(1), PeerState::suspect);
  table.update(t0 + 1400ms);
  EXPECT_EQ(table.state(1), PeerState::dead);
  // Steady round trips shrink the variance, and the allowance with it.
  for (int i = 0; i < 40; ++i) table.on_rtt(1, 400ms);
  EXPECT_LT(table.suspect_after(1), 450ms);
  EXPECT_GE(table.suspect_after(1), 400ms);
  // However slow the link, a peer is suspect after max_suspect_after at most.
  table.on_rtt(1, 60s);
  EXPECT_EQ(table.suspect_after(1), 2000ms);
  EXPECT_EQ(table.dead_after(1), 2200ms);
}

TEST(PeerTable, RecordsWhetherTheConnectionToAPeerIsLost) {
  PeerTable table({"a", "b"}, 0, PeerTiming{});
  EXPECT_FALSE(table.connection_lost(1));
  table.on_connection(1, false);
  EXPECT_TRUE(table.connection_lost(1));
  EXPECT_TRUE(table.snapshot()[1].connection_lost);
  table.on_connection(1, true);
  EXPECT_FALSE(table.connection_lost(1));
}

}  // namespace
}  // namespace starling::gossip
