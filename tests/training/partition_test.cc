// Partitions: disjoint, complete, deterministic, skewed as asked, and an empty shard is an error.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "training/partition.h"
#include "training/rng.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

using topology::PartitionKind;
using topology::PartitionSpec;

// Balanced labels in shuffled order, like a real training set.
std::vector<std::int64_t> labels(std::size_t n, std::int64_t classes = 10) {
  std::vector<std::int64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(i) % classes;
  Rng rng(99);
  rng.shuffle(std::span(out));
  return out;
}

PartitionSpec iid() { return {}; }
PartitionSpec dirichlet(double alpha) { return {PartitionKind::dirichlet, alpha, 0}; }
PartitionSpec shards(int k) { return {PartitionKind::shards, 0.0, k}; }

void expect_disjoint_and_complete(const std::vector<ShardIndices>& parts, std::size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& part : parts) {
    EXPECT_TRUE(std::is_sorted(part.begin(), part.end()));
    for (std::int64_t i : part) {
      ASSERT_GE(i, 0);
      ASSERT_LT(static_cast<std::size_t>(i), n);
      ++seen[static_cast<std::size_t>(i)];
    }
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }))
      << "every sample must be in exactly one shard";
}

// Mean total-variation distance between each node's label distribution and the global one:
// 0 for a perfectly balanced split, near 1 when every node holds one label of many.
double label_skew(const std::vector<ShardIndices>& parts, const std::vector<std::int64_t>& y) {
  std::vector<double> global(10, 0);
  for (std::int64_t label : y) global[static_cast<std::size_t>(label)] += 1.0 / static_cast<double>(y.size());
  double total = 0;
  for (const auto& part : parts) {
    std::vector<double> local(10, 0);
    for (std::int64_t i : part) local[static_cast<std::size_t>(y[static_cast<std::size_t>(i)])] += 1.0 / static_cast<double>(part.size());
    double tv = 0;
    for (std::size_t c = 0; c < 10; ++c) tv += std::abs(local[c] - global[c]) / 2;
    total += tv;
  }
  return total / static_cast<double>(parts.size());
}

TEST(Partition, IidIsDisjointCompleteAndBalanced) {
  const auto y = labels(1003);
  const auto parts = partition_dataset(y, 10, iid(), 4, 1);
  ASSERT_EQ(parts.size(), 4u);
  expect_disjoint_and_complete(parts, y.size());
  for (const auto& part : parts) {
    EXPECT_GE(part.size(), 250u);
    EXPECT_LE(part.size(), 251u);
  }
  EXPECT_LT(label_skew(parts, y), 0.1);
}

TEST(Partition, DirichletIsDisjointAndComplete) {
  const auto y = labels(5000);
  for (double alpha : {0.1, 1.0, 100.0}) {
    expect_disjoint_and_complete(partition_dataset(y, 10, dirichlet(alpha), 8, 3), y.size());
  }
}

TEST(Partition, SkewGrowsAsAlphaFalls) {
  const auto y = labels(20000);
  const double skew_high = label_skew(partition_dataset(y, 10, dirichlet(100.0), 8, 3), y);
  const double skew_mid = label_skew(partition_dataset(y, 10, dirichlet(1.0), 8, 3), y);
  const double skew_low = label_skew(partition_dataset(y, 10, dirichlet(0.1), 8, 3), y);
  EXPECT_LT(skew_high, 0.1);
  EXPECT_LT(skew_high, skew_mid);
  EXPECT_LT(skew_mid, skew_low);
  EXPECT_GT(skew_low, 0.5);
}

TEST(Partition, LabelShardsGiveFewLabelsPerNode) {
  const auto y = labels(6000);
  for (int k : {1, 2, 3}) {
    const auto parts = partition_dataset(y, 10, shards(k), 10, 7);
    expect_disjoint_and_complete(parts, y.size());
    for (const auto& part : parts) {
      EXPECT_EQ(part.size(), 6000u / 10u);
      std::set<std::int64_t> distinct;
      for (std::int64_t i : part) distinct.insert(y[static_cast<std::size_t>(i)]);
      // Runs of 6000/(10k) label-sorted samples fall inside one class each here (600 per
      // class), so k runs give at most k labels.
      EXPECT_LE(distinct.size(), static_cast<std::size_t>(k));
      EXPECT_GE(distinct.size(), 1u);
    }
  }
}

TEST(Partition, DeterministicFromSeed) {
  const auto y = labels(3000);
  for (const PartitionSpec& spec : {iid(), dirichlet(0.5), shards(2)}) {
    const auto a = partition_dataset(y, 10, spec, 5, 11);
    const auto b = partition_dataset(y, 10, spec, 5, 11);
    const auto c = partition_dataset(y, 10, spec, 5, 12);
    EXPECT_EQ(a, b) << describe(spec);
    EXPECT_NE(a, c) << describe(spec);
  }
}

TEST(Partition, EmptyShardIsAClearError) {
  const auto y = labels(20);
  try {
    partition_dataset(y, 10, dirichlet(0.001), 16, 1);
    FAIL() << "expected an empty shard";
  } catch (const TrainingError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("training.partition"), std::string::npos) << message;
    EXPECT_NE(message.find("no training samples"), std::string::npos) << message;
  }
  EXPECT_THROW(partition_dataset(y, 10, iid(), 21, 1), TrainingError);
  EXPECT_THROW(partition_dataset(y, 10, shards(3), 7, 1), TrainingError);
}

TEST(Partition, RejectsLabelsOutOfRange) {
  std::vector<std::int64_t> y = {0, 1, 10};
  EXPECT_THROW(partition_dataset(y, 10, iid(), 1, 1), TrainingError);
}

}  // namespace
}  // namespace starling::training
