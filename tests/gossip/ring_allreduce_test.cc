// Ring allreduce over the in-process fake network: exact results for every ring size and
// awkward lengths, the bandwidth-optimal byte count, and failures that leave every member
// unchanged and un-hung.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <random>

#include "gossip/fake_transport.h"
#include "gossip/ring_allreduce.h"
#include "ring_test_support.h"

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;
using namespace ring_testing;  // names, random_inputs, plain_sum, expect_reduced, ...

struct Outcome {
  std::vector<AllreduceResult> results;
  std::vector<std::vector<float>> outputs;
};

// Collective `tag` of the ring `members`, run by `runners` (every member when empty; a member
// that is not a runner never joins), one thread each, into outputs[m] (or inputs[m] itself when
// in_place). Every runner's mailbox is open for the collective before any starts. Started and
// not waited for: a test may act on the network meanwhile, then wait().
struct Launched : Outcome {
  std::vector<std::size_t> members;
  std::vector<std::unique_ptr<RingAllreduce>> rings;
  std::vector<std::future<void>> futures;

  Launched(FakeNetwork& network, std::vector<std::size_t> ring, std::uint64_t tag,
           std::vector<std::vector<float>>& inputs, AllreduceOptions options,
           std::vector<std::size_t> runners = {}, bool in_place = false)
      : members(std::move(ring)), rings(network.size()) {
    results.resize(network.size());
    outputs.assign(network.size(), std::vector<float>(inputs[0].size(), -7.0f));
    if (runners.empty()) runners = members;
    for (std::size_t m : runners) {
      rings[m] = std::make_unique<RingAllreduce>(network.node(m), options);
      rings[m]->expect(tag);
    }
    for (std::size_t m : runners) {
      futures.push_back(std::async(std::launch::async, [this, &inputs, m, tag, in_place] {
        std::span<float> out = in_place ? std::span<float>(inputs[m]) : std::span<float>(outputs[m]);
        results[m] = rings[m]->run(tag, members, inputs[m], out);
        if (in_place) outputs[m] = inputs[m];
      }));
    }
  }
  void wait() {
    for (auto& f : futures) f.get();
  }
};

// Runs one collective on `members` concurrently (one thread per member) and waits for it.
Outcome run_all(FakeNetwork& network, const std::vector<std::size_t>& members, std::uint64_t tag,
                std::vector<std::vector<float>>& inputs, AllreduceOptions options,
                bool in_place = false) {
  Launched launched(network, members, tag, inputs, options, {}, in_place);
  launched.wait();
  return Outcome{std::move(launched.results), std::move(launched.outputs)};
}

TEST(RingAllreduce, MatchesAPlainSumForEveryRingSizeAndLength) {
  for (std::size_t n = 2; n <= 8; ++n) {
    for (std::size_t length : {0u, 1u, 2u, 7u, 1000u, 100003u}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " length=" + std::to_string(length));
      FakeNetwork network(names(n), 1, {}, 1 << 16);
      auto inputs = random_inputs(n, length, static_cast<unsigned>(n * 1000 + length));
      const std::vector<double> sum = plain_sum(inputs);
      for (bool mean : {false, true}) {
        AllreduceOptions options;
        options.mean = mean;
        options.chunk_bytes = length > 1000 ? 4096 : 8;  // many chunks: exercises pipelining
        auto copy = inputs;
        auto outcome = run_all(network, all_members(n), mean ? 2 : 1, copy, options);
        for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(outcome.results[i].ok) << outcome.results[i].error;
        expect_reduced(outcome.outputs, sum, n, mean);
      }
    }
  }
}

TEST(RingAllreduce, WorksInPlace) {
  const std::size_t n = 5, length = 12345;
  FakeNetwork network(names(n), 1);
  auto inputs = random_inputs(n, length, 3);
  std::vector<double> sum(length, 0.0);
  for (const auto& v : inputs) {
    for (std::size_t k = 0; k < length; ++k) sum[k] += v[k];
  }
  auto outcome = run_all(network, all_members(n), 1, inputs, AllreduceOptions{}, true);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(outcome.results[i].ok) << outcome.results[i].error;
    for (std::size_t k = 0; k < length; k += 97) EXPECT_NEAR(inputs[i][k], sum[k] / n, 1e-5);
  }
}

TEST(RingAllreduce, EachMemberSendsTwoNMinusOneOverNOfTheBuffer) {
  for (std::size_t n : {2u, 3u, 4u, 8u}) {
    const std::size_t length = 1 << 20;
    FakeNetwork network(names(n), 1);
    auto inputs = random_inputs(n, length, 4);
    auto outcome = run_all(network, all_members(n), 1, inputs, AllreduceOptions{});
    const double optimal = 2.0 * static_cast<double>(n - 1) / static_cast<double>(n) *
                           static_cast<double>(length * sizeof(float));
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(outcome.results[i].ok);
      EXPECT_NEAR(static_cast<double>(outcome.results[i].payload_bytes_sent) / optimal, 1.0, 0.01)
          << "n=" << n << " node " << i;
      // Headers included, the peer table agrees within 1% too.
      double sent = static_cast<double>(network.node(i).peers().snapshot()[(i + 1) % n].bytes_sent);
      EXPECT_NEAR(sent / optimal, 1.0, 0.01);
    }
  }
}

TEST(RingAllreduce, ADeadMemberFailsTheCollectiveEverywhereWithoutHanging) {
  const std::size_t n = 5, length = 200000;
  FakeNetwork network(names(n), 1);
  auto inputs = random_inputs(n, length, 5);
  auto original = inputs;
  network.kill(3);
  AllreduceOptions options;
  options.timeout = 20s;
  auto start = Clock::now();
  std::vector<std::size_t> survivors{0, 1, 2, 4};
  // The members still believe the ring has five nodes: node 3 never sends.
  Launched outcome(network, all_members(n), 1, inputs, options, survivors);
  outcome.wait();
  EXPECT_LT(Clock::now() - start, 5s) << "survivors waited for the timeout";
  for (std::size_t m : survivors) {
    EXPECT_FALSE(outcome.results[m].ok) << m;
    EXPECT_FALSE(outcome.results[m].error.empty());
    EXPECT_EQ(inputs[m], original[m]);  // the caller's parameters are untouched
  }
  // The ring re-forms without the dead node for the next collective.
  auto next = run_all(network, survivors, 2, inputs, AllreduceOptions{});
  for (std::size_t m : survivors) {
    ASSERT_TRUE(next.results[m].ok) << next.results[m].error;
    double expected = (inputs[0][10] + inputs[1][10] + inputs[2][10] + inputs[4][10]) / 4.0;
    EXPECT_NEAR(next.outputs[m][10], expected, 1e-5);
  }
  // And takes it back when it returns.
  network.revive(3);
  auto all = run_all(network, all_members(n), 3, inputs, AllreduceOptions{});
  for (std::size_t m = 0; m < n; ++m) EXPECT_TRUE(all.results[m].ok) << all.results[m].error;
}

// A chunk the transport could not queue (here: the link from n1 to n2 is cut; in a cluster,
// n1's connection to a restarted n2 not made again yet) never arrives, and n2 would wait for
// it until the timeout. The sender knows at once: it fails the collective and tells the others.
TEST(RingAllreduce, AChunkThatCannotBeSentFailsTheCollectiveAtOnceEverywhere) {
  const std::size_t n = 4, length = 1000;
  FakeNetwork network(names(n), 1);
  auto inputs = random_inputs(n, length, 9);
  const auto original = inputs;
  network.cut(1, 2);
  AllreduceOptions options;
  options.timeout = 30s;
  const auto start = Clock::now();
  Launched collective(network, all_members(n), 1, inputs, options);
  collective.wait();
  const auto& results = collective.results;
  EXPECT_LT(Clock::now() - start, 10s) << "the members waited for the timeout";
  for (std::size_t m = 0; m < n; ++m) EXPECT_FALSE(results[m].ok) << m;
  EXPECT_NE(results[1].error.find("could not send to n2"), std::string::npos) << results[1].error;
  EXPECT_EQ(inputs, original);
  // Mended, the link carries the next collective.
  network.heal(1, 2);
  auto next = run_all(network, all_members(n), 2, inputs, AllreduceOptions{});
  for (std::size_t m = 0; m < n; ++m) EXPECT_TRUE(next.results[m].ok) << next.results[m].error;
}

// A member that came back is heard from before this node's connection to it is made again;
// sends meanwhile would be lost. The collective waits for the connection, then runs.
TEST(RingAllreduce, WaitsForALostConnectionToItsRightToComeBackBeforeSending) {
  const std::size_t n = 3, length = 1000;
  FakeNetwork network(names(n), 1);
  auto inputs = random_inputs(n, length, 10);
  network.node(0).peers().on_connection(1, false);  // n0 sends to n1 (its right)
  network.cut(0, 1);
  AllreduceOptions options;
  options.timeout = 30s;
  Launched collective(network, all_members(n), 1, inputs, options);
  std::this_thread::sleep_for(200ms);
  for (auto& f : collective.futures) {
    EXPECT_EQ(f.wait_for(0s), std::future_status::timeout) << "a member did not wait";
  }
  network.heal(0, 1);
  network.node(0).peers().on_connection(1, true);
  network.node(0).mailbox().wake_all();
  collective.wait();
  for (std::size_t m = 0; m < n; ++m) {
    ASSERT_TRUE(collective.results[m].ok) << m << ": " << collective.results[m].error;
    const double expected = (inputs[0][7] + inputs[1][7] + inputs[2][7]) / 3.0;  // the mean
    EXPECT_NEAR(collective.outputs[m][7], expected, 1e-5);
  }
}

TEST(RingAllreduce, MembersThatDisagreeOnTheRingRefuseEachOther) {
  const std::size_t n = 4, length = 1000;
  FakeNetwork network(names(n), 1);
  auto inputs = random_inputs(n, length, 6);
  std::vector<AllreduceResult> results(n);
  std::vector<std::vector<float>> outputs(n, std::vector<float>(length));
  AllreduceOptions options;
  options.timeout = 10s;
  std::vector<std::unique_ptr<RingAllreduce>> rings(n);
  for (std::size_t m = 0; m < n; ++m) rings[m] = std::make_unique<RingAllreduce>(network.node(m), options);
  std::vector<std::future<void>> futures;
  for (std::size_t m = 0; m < n; ++m) {
    futures.push_back(std::async(std::launch::async, [&, m] {
      // Node 2 believes the order is different.
      std::vector<std::size_t> members = m == 2 ? std::vector<std::size_t>{0, 2, 1, 3}
                                                : std::vector<std::size_t>{0, 1, 2, 3};
      results[m] = rings[m]->run(1, members, inputs[m], outputs[m]);
    }));
  }
  auto start = Clock::now();
  for (auto& f : futures) f.get();
  EXPECT_LT(Clock::now() - start, 5s);
  std::size_t failed = 0;
  for (const auto& r : results) failed += r.ok ? 0 : 1;
  EXPECT_EQ(failed, n);
}

// A member asked to stop (options.stop) while it waits for a member that never comes gives up
// at once when its mailbox is woken, not at the timeout; its input is untouched, and the
// member that was waiting on it is told (abort) and gives up too.
TEST(RingAllreduce, AStopEndsTheWaitAtOnceAndTellsTheOthers) {
  const std::size_t n = 3, length = 100;
  FakeNetwork network(names(n), 1);
  auto inputs = random_inputs(n, length, 8);
  const auto original = inputs;
  std::vector<std::vector<float>> outputs(n, std::vector<float>(length));
  std::atomic<bool> stop_requested{false};
  AllreduceOptions stoppable;
  stoppable.timeout = 30s;
  stoppable.stop = [&] { return stop_requested.load(); };
  AllreduceOptions plain;
  plain.timeout = 30s;
  RingAllreduce ring0(network.node(0), stoppable);
  RingAllreduce ring1(network.node(1), plain);
  // Node 2 never joins collective 1; 0 and 1 wait for it.
  const auto start = Clock::now();
  auto first = std::async(std::launch::async, [&] { return ring0.run(1, all_members(n), inputs[0], outputs[0]); });
  auto second = std::async(std::launch::async, [&] { return ring1.run(1, all_members(n), inputs[1], outputs[1]); });
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(first.wait_for(0s), std::future_status::timeout) << "node 0 did not wait";
  stop_requested = true;
  network.node(0).mailbox().wake_all();
  const AllreduceResult stopped = first.get();
  const AllreduceResult told = second.get();
  EXPECT_LT(Clock::now() - start, 5s) << "the stop waited for the timeout";
  EXPECT_FALSE(stopped.ok);
  EXPECT_NE(stopped.error.find("stopped while waiting"), std::string::npos) << stopped.error;
  EXPECT_FALSE(told.ok);
  EXPECT_EQ(inputs, original);
}

TEST(RingAllreduce, ASingleMemberCopies) {
  FakeNetwork network(names(1), 1);
  std::vector<float> in{1, 2, 3}, out(3);
  RingAllreduce ring(network.node(0), AllreduceOptions{});
  auto result = ring.run(1, {0}, in, out);
  EXPECT_TRUE(result.ok);
  EXPECT_EQ(out, in);
  EXPECT_EQ(result.payload_bytes_sent, 0u);
}

}  // namespace
}  // namespace starling::gossip
