// The agreements a re-formed ring makes, over the in-process fake network.
#include <gtest/gtest.h>

#include <future>

#include "daemon/cluster_view.h"
#include "gossip/fake_transport.h"

namespace starling::daemon {
namespace {

using namespace std::chrono_literals;

std::vector<std::optional<std::int64_t>> agree(gossip::FakeNetwork& network,
                                               const std::vector<std::size_t>& members,
                                               const std::vector<std::int64_t>& steps, bool mean) {
  std::vector<std::unique_ptr<gossip::RingAllreduce>> rings(network.size());
  for (std::size_t m : members) {
    rings[m] = std::make_unique<gossip::RingAllreduce>(
        network.node(m), gossip::AllreduceOptions{.timeout = 2000ms, .mean = mean}, 5);
  }
  std::vector<std::optional<std::int64_t>> agreed(network.size());
  std::vector<std::future<void>> running;
  for (std::size_t m : members) {
    running.push_back(std::async(std::launch::async, [&, m] {
      agreed[m] = agree_on_step(*rings[m], 5, members, m, steps[m]);
    }));
  }
  for (auto& r : running) r.get();
  return agreed;
}

std::vector<std::string> names(std::size_t n) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < n; ++i) ids.push_back("n" + std::to_string(i));
  return ids;
}

TEST(AgreeOnStep, EveryMemberLearnsTheLargestStepExactly) {
  // Steps that a float could not hold (2^40 + 5 has 41 significant bits), and zero.
  const std::vector<std::int64_t> steps{0, 7, (std::int64_t{1} << 40) + 5, 123456789, 42};
  for (bool mean : {true, false}) {
    gossip::FakeNetwork network(names(5), 1);
    auto agreed = agree(network, {0, 1, 2, 3, 4}, steps, mean);
    for (std::size_t m = 0; m < 5; ++m) {
      ASSERT_TRUE(agreed[m].has_value()) << m;
      EXPECT_EQ(*agreed[m], (std::int64_t{1} << 40) + 5) << m;
    }
  }
}

TEST(AgreeOnStep, ASubsetOfTheClusterAgreesAmongItself) {
  gossip::FakeNetwork network(names(4), 1);
  auto agreed = agree(network, {0, 2, 3}, {300, 999999, 280, 310}, true);
  for (std::size_t m : {0u, 2u, 3u}) {
    ASSERT_TRUE(agreed[m].has_value()) << m;
    EXPECT_EQ(*agreed[m], 310) << m;  // node 1 is not a member: its step does not count
  }
}

TEST(AgreeOnStep, AMissingMemberMeansNoAgreement) {
  gossip::FakeNetwork network(names(3), 1);
  network.kill(2);
  std::vector<std::unique_ptr<gossip::RingAllreduce>> rings;
  std::vector<std::future<std::optional<std::int64_t>>> running;
  for (std::size_t m : {0u, 1u}) {
    rings.push_back(std::make_unique<gossip::RingAllreduce>(
        network.node(m), gossip::AllreduceOptions{.timeout = 500ms}, 5));
    gossip::RingAllreduce& ring = *rings.back();
    running.push_back(std::async(std::launch::async, [&ring, m] {
      return agree_on_step(ring, 5, {0, 1, 2}, m, 10);
    }));
  }
  for (auto& r : running) EXPECT_FALSE(r.get().has_value());
}

TEST(AgreeOnStep, RefusesStepsItCannotCarry) {
  gossip::FakeNetwork network(names(2), 1);
  gossip::RingAllreduce ring(network.node(0), gossip::AllreduceOptions{.timeout = 100ms}, 5);
  EXPECT_THROW(agree_on_step(ring, 5, {0, 1}, 0, -1), std::invalid_argument);
  EXPECT_THROW(agree_on_step(ring, 5, {0, 1}, 0, std::int64_t{1} << 44), std::invalid_argument);
}

}  // namespace
}  // namespace starling::daemon
