#include <gtest/gtest.h>

#include <limits>
#include <thread>

#include "gossip/mailbox.h"

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;

ReceivedMessage message(std::uint32_t sender, std::uint64_t tag, std::uint64_t incarnation = 1,
                        MessageType type = MessageType::gossip_params, std::uint64_t aux0 = 0) {
  Header h;
  h.type = type;
  h.sender = sender;
  h.tag = tag;
  h.incarnation = incarnation;
  h.aux0 = aux0;
  return ReceivedMessage(h, nullptr, {});
}

MailboxKey key(std::uint32_t sender, std::uint64_t tag) {
  return MailboxKey{MessageType::gossip_params, tag, sender, 0};
}

TEST(Mailbox, RefusesTypesWithoutAWindow) {
  Mailbox box(4, 8);
  EXPECT_EQ(box.deliver(message(1, 0)), RejectReason::round_outside_window);
}

TEST(Mailbox, AppliesTheWindowAndDropsLateMessages) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 5, 8);
  EXPECT_EQ(box.deliver(message(1, 4)), RejectReason::late);
  EXPECT_EQ(box.deliver(message(1, 9)), RejectReason::round_outside_window);
  EXPECT_EQ(box.deliver(message(1, 5)), std::nullopt);
  EXPECT_EQ(box.deliver(message(1, 8)), std::nullopt);
  EXPECT_EQ(box.buffered(), 2u);
  box.set_window(MessageType::gossip_params, 6, 9);  // round 5 is over: its message goes
  EXPECT_EQ(box.buffered(), 1u);
  EXPECT_FALSE(box.try_take(key(1, 5)).has_value());
  EXPECT_TRUE(box.try_take(key(1, 8)).has_value());
}

TEST(Mailbox, RejectsReplaysEvenAfterTheOriginalWasTaken) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 0, 10);
  EXPECT_EQ(box.deliver(message(2, 3)), std::nullopt);
  EXPECT_EQ(box.deliver(message(2, 3)), RejectReason::replayed);
  EXPECT_TRUE(box.try_take(key(2, 3)).has_value());
  EXPECT_EQ(box.deliver(message(2, 3)), RejectReason::replayed);
  // Another sender may use the same tag.
  EXPECT_EQ(box.deliver(message(1, 3)), std::nullopt);
}

TEST(Mailbox, ForgetsDeliveredMessagesAfterTheReplayHorizonSoMemoryStaysBounded) {
  // The dynamic protocol's window never moves: only the horizon bounds what is remembered.
  Mailbox box(4, 100000, 200ms);
  box.set_window(MessageType::model_request, 0, std::numeric_limits<std::uint64_t>::max());
  for (std::uint64_t tag = 0; tag < 1000; ++tag) {
    ASSERT_EQ(box.deliver(message(1, tag, 1, MessageType::model_request)), std::nullopt);
  }
  EXPECT_EQ(box.remembered(), 1000u);
  EXPECT_EQ(box.deliver(message(1, 7, 1, MessageType::model_request)), RejectReason::replayed);
  std::this_thread::sleep_for(250ms);
  EXPECT_EQ(box.deliver(message(1, 5000, 1, MessageType::model_request)), std::nullopt);
  EXPECT_EQ(box.remembered(), 1u);  // only the one just delivered
}

TEST(Mailbox, ANewIncarnationResetsReplayStateAndOldOnesAreRefused) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 0, 10);
  EXPECT_EQ(box.deliver(message(2, 3, 100)), std::nullopt);
  EXPECT_EQ(box.deliver(message(2, 3, 200)), std::nullopt);  // restarted node resends round 3
  EXPECT_EQ(box.deliver(message(2, 4, 100)), RejectReason::replayed);  // the old process
  EXPECT_EQ(box.buffered(), 1u);  // the old incarnation's buffered message was dropped
}

TEST(Mailbox, BoundsWhatOneSenderMayBuffer) {
  Mailbox box(4, 2);
  box.set_window(MessageType::gossip_params, 0, 10);
  EXPECT_EQ(box.deliver(message(1, 0)), std::nullopt);
  EXPECT_EQ(box.deliver(message(1, 1)), std::nullopt);
  EXPECT_EQ(box.deliver(message(1, 2)), RejectReason::mailbox_full);
  EXPECT_EQ(box.deliver(message(3, 2)), std::nullopt);
}

TEST(Mailbox, TakeWaitsForTheMessage) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 0, 10);
  std::thread producer([&] {
    std::this_thread::sleep_for(20ms);
    box.deliver(message(1, 2));
  });
  auto got = box.take(key(1, 2), Clock::now() + 5s);
  producer.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->header().tag, 2u);
}

TEST(Mailbox, TakeTimesOut) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 0, 10);
  auto start = Clock::now();
  EXPECT_FALSE(box.take(key(1, 2), start + 50ms).has_value());
  EXPECT_GE(Clock::now() - start, 50ms);
}

TEST(Mailbox, TakeGivesUpWhenTheSenderDies) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 0, 10);
  std::atomic<bool> dead{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(20ms);
    dead = true;
    box.wake_all();
  });
  auto start = Clock::now();
  EXPECT_FALSE(box.take(key(1, 2), start + 10s, [&] { return dead.load(); }).has_value());
  killer.join();
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(Mailbox, CloseReleasesWaiters) {
  Mailbox box(4, 8);
  box.set_window(MessageType::gossip_params, 0, 10);
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);
    box.close();
  });
  EXPECT_FALSE(box.take(key(1, 2), Clock::now() + 10s).has_value());
  closer.join();
}

}  // namespace
}  // namespace starling::gossip
