// ZmqPollSet: one poll(2) for ZeroMQ sockets and plain fds, asking ZMQ_EVENTS only when a
// socket's state may have changed. The tests that matter are the ones where ZMQ_FD does not
// signal again (ZeroMQ's edge semantics): a wait that trusted ZMQ_FD alone would block there
// for the whole (long) timeout and report nothing.
#include "gossip/zmq_poll_set.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kLong = 5000ms;  // a wait that should return at once gets this long

// A connected PAIR over inproc: `here` is polled, `there` sends to it.
struct Pair {
  zmq::context_t context{1};
  zmq::socket_t here{context, zmq::socket_type::pair};
  zmq::socket_t there{context, zmq::socket_type::pair};
  explicit Pair(const std::string& name) {
    here.bind("inproc://" + name);
    there.connect("inproc://" + name);
  }
  void send(const std::string& text) {
    zmq::message_t message(text.data(), text.size());
    ASSERT_TRUE(there.send(message, zmq::send_flags::none));
  }
};

bool receive(zmq::socket_t& socket) {
  zmq::message_t message;
  return socket.recv(message, zmq::recv_flags::dontwait).has_value();
}

TEST(ZmqPollSet, ReportsTheSocketsAndFdsWithInputAndOnlyThose) {
  Pair a("ps-a"), b("ps-b");
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ZmqPollSet set;
  const auto ha = set.add(a.here);
  const auto hb = set.add(b.here);
  const auto hfd = set.add_fd(fd);

  b.send("x");
  EXPECT_EQ(set.wait(kLong), std::vector<ZmqPollSet::Handle>{hb});
  ASSERT_TRUE(receive(b.here));

  std::uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  a.send("y");
  const auto both = set.wait(kLong);
  EXPECT_EQ(both, (std::vector<ZmqPollSet::Handle>{ha, hfd}));
  ::close(fd);
}

TEST(ZmqPollSet, WaitsOutItsTimeoutWhenNothingHasInput) {
  Pair a("ps-idle");
  ZmqPollSet set;
  set.add(a.here);
  const auto start = Clock::now();
  EXPECT_TRUE(set.wait(100ms).empty());
  EXPECT_GE(Clock::now() - start, 90ms);
}

// The socket's ZMQ_FD fired once for both messages and was reset when the first was read: only
// asking ZMQ_EVENTS again finds the second.
TEST(ZmqPollSet, AReportedSocketLeftWithMessagesIsReportedAgain) {
  Pair a("ps-left");
  ZmqPollSet set;
  const auto ha = set.add(a.here);
  a.send("1");
  a.send("2");
  EXPECT_EQ(set.wait(kLong), std::vector<ZmqPollSet::Handle>{ha});
  ASSERT_TRUE(receive(a.here));  // one of two
  const auto start = Clock::now();
  EXPECT_EQ(set.wait(kLong), std::vector<ZmqPollSet::Handle>{ha});
  EXPECT_LT(Clock::now() - start, kLong / 2);
  ASSERT_TRUE(receive(a.here));
}

TEST(ZmqPollSet, ADrainedSocketIsNotAskedAgainButANewMessageIsSeen) {
  Pair a("ps-drained");
  ZmqPollSet set;
  const auto ha = set.add(a.here);
  a.send("1");
  EXPECT_EQ(set.wait(kLong), std::vector<ZmqPollSet::Handle>{ha});
  ASSERT_TRUE(receive(a.here));
  ASSERT_FALSE(receive(a.here));  // EAGAIN: settled
  set.drained(ha);
  const auto asked = set.questions_asked();
  EXPECT_TRUE(set.wait(10ms).empty());
  EXPECT_EQ(set.questions_asked(), asked);  // an idle socket costs no question

  std::thread later([&] {
    std::this_thread::sleep_for(50ms);
    a.send("2");
  });
  EXPECT_EQ(set.wait(kLong), std::vector<ZmqPollSet::Handle>{ha});
  later.join();
}

// A message arrives while nobody looks; then the application sends on the socket, and that
// send takes in the command that announced the message (zmq_send processes pending commands),
// so ZMQ_FD never fires for it. touch() makes the next wait ask.
TEST(ZmqPollSet, AMessageWhoseSignalASendTookInIsFoundAfterTouch) {
  zmq::context_t context{1};
  zmq::socket_t router(context, zmq::socket_type::router);
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  router.bind("tcp://127.0.0.1:*");
  dealer.set(zmq::sockopt::routing_id, "d");
  dealer.connect(router.get(zmq::sockopt::last_endpoint));
  ZmqPollSet set;
  const auto hd = set.add(dealer);

  // A round trip, so the router knows the dealer; then the dealer is settled.
  zmq::message_t hello("hi", 2);
  ASSERT_TRUE(dealer.send(hello, zmq::send_flags::none));
  set.touch(hd);
  zmq::message_t id, body;
  ASSERT_TRUE(router.recv(id, zmq::recv_flags::none));
  ASSERT_TRUE(router.recv(body, zmq::recv_flags::none));
  while (!set.wait(10ms).empty()) {
  }
  ASSERT_FALSE(receive(dealer));
  set.drained(hd);

  ASSERT_TRUE(router.send(zmq::buffer(std::string("d")), zmq::send_flags::sndmore));
  ASSERT_TRUE(router.send(zmq::buffer(std::string("reply")), zmq::send_flags::none));
  std::this_thread::sleep_for(200ms);  // it arrives; and the send below may process commands
  ASSERT_TRUE(dealer.send(zmq::buffer(std::string("more")), zmq::send_flags::none));
  set.touch(hd);
  const auto start = Clock::now();
  EXPECT_EQ(set.wait(kLong), std::vector<ZmqPollSet::Handle>{hd});
  EXPECT_LT(Clock::now() - start, kLong / 2);
  EXPECT_TRUE(receive(dealer));
}

}  // namespace
}  // namespace starling::gossip
