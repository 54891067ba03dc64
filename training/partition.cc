#include "training/partition.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>

#include "training/rng.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

using topology::PartitionKind;
using topology::PartitionSpec;

// Stream tags, so each partition kind draws from its own sequence.
constexpr std::uint64_t kIidTag = 0x11D;
constexpr std::uint64_t kDirichletTag = 0xD1;
constexpr std::uint64_t kShardsTag = 0x5A;

std::vector<ShardIndices> split_iid(std::size_t samples, std::size_t nodes, std::uint64_t seed) {
  std::vector<std::int64_t> order(samples);
  std::iota(order.begin(), order.end(), 0);
  Rng rng = Rng::stream(seed, {kIidTag});
  rng.shuffle(std::span(order));
  // Node k gets the k-th of `nodes` nearly equal runs (sizes differ by at most one).
  std::vector<ShardIndices> shards(nodes);
  for (std::size_t k = 0; k < nodes; ++k) {
    const std::size_t begin = k * samples / nodes;
    const std::size_t end = (k + 1) * samples / nodes;
    shards[k].assign(order.begin() + static_cast<std::ptrdiff_t>(begin),
                     order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return shards;
}

std::vector<std::vector<std::int64_t>> indices_by_class(std::span<const std::int64_t> labels,
                                                        std::int64_t num_classes) {
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<std::int64_t>(i));
  }
  return by_class;
}

// For each class, draws node proportions p ~ Dirichlet(alpha, ..., alpha) and hands each node
// its proportion of that class's (shuffled) samples. Small alpha concentrates each class on
// few nodes: label skew grows as alpha falls.
std::vector<ShardIndices> split_dirichlet(std::span<const std::int64_t> labels,
                                          std::int64_t num_classes, double alpha,
                                          std::size_t nodes, std::uint64_t seed) {
  Rng rng = Rng::stream(seed, {kDirichletTag});
  std::vector<ShardIndices> shards(nodes);
  for (std::vector<std::int64_t>& members : indices_by_class(labels, num_classes)) {
    rng.shuffle(std::span(members));
    std::vector<double> weights(nodes);
    double sum = 0;
    for (double& w : weights) sum += (w = rng.gamma(alpha));
    // Gamma draws for tiny alpha can all underflow to zero; the class then goes to one node.
    if (!(sum > 0)) {
      std::fill(weights.begin(), weights.end(), 0.0);
      weights[static_cast<std::size_t>(rng.below(nodes))] = 1.0;
      sum = 1.0;
    }
    // Cut points at rounded cumulative proportions: the runs tile the class exactly.
    double cumulative = 0;
    std::size_t begin = 0;
    for (std::size_t k = 0; k < nodes; ++k) {
      cumulative += weights[k];
      std::size_t end = k + 1 == nodes
                            ? members.size()
                            : static_cast<std::size_t>(std::llround(
                                  cumulative / sum * static_cast<double>(members.size())));
      end = std::clamp(end, begin, members.size());
      shards[k].insert(shards[k].end(), members.begin() + static_cast<std::ptrdiff_t>(begin),
                       members.begin() + static_cast<std::ptrdiff_t>(end));
      begin = end;
    }
  }
  return shards;
}

// The pathological non-iid split of McMahan et al.: sort by label, cut into nodes*K equal runs,
// deal K random runs to each node, so a node sees about K labels.
std::vector<ShardIndices> split_label_shards(std::span<const std::int64_t> labels,
                                             std::int64_t num_classes, int shards_per_node,
                                             std::size_t nodes, std::uint64_t seed) {
  const std::size_t runs = nodes * static_cast<std::size_t>(shards_per_node);
  if (runs > labels.size()) {
    throw TrainingError("training.partition: \"shards:" + std::to_string(shards_per_node) +
                        "\" over " + std::to_string(nodes) + " nodes needs " +
                        std::to_string(runs) + " shards but there are only " +
                        std::to_string(labels.size()) + " training samples");
  }
  Rng rng = Rng::stream(seed, {kShardsTag});
  std::vector<std::int64_t> sorted;
  sorted.reserve(labels.size());
  for (std::vector<std::int64_t>& members : indices_by_class(labels, num_classes)) {
    rng.shuffle(std::span(members));  // which samples of a class share a run is random too
    sorted.insert(sorted.end(), members.begin(), members.end());
  }
  std::vector<std::size_t> run_order(runs);
  std::iota(run_order.begin(), run_order.end(), std::size_t{0});
  rng.shuffle(std::span(run_order));
  std::vector<ShardIndices> shards(nodes);
  for (std::size_t slot = 0; slot < runs; ++slot) {
    const std::size_t run = run_order[slot];
    const std::size_t begin = run * sorted.size() / runs;
    const std::size_t end = (run + 1) * sorted.size() / runs;
    ShardIndices& shard = shards[slot / static_cast<std::size_t>(shards_per_node)];
    shard.insert(shard.end(), sorted.begin() + static_cast<std::ptrdiff_t>(begin),
                 sorted.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return shards;
}

}  // namespace

std::string describe(const PartitionSpec& spec) {
  switch (spec.kind) {
    case PartitionKind::iid:
      return "iid";
    case PartitionKind::dirichlet: {
      std::ostringstream out;
      out << "dirichlet:" << spec.alpha;
      return out.str();
    }
    case PartitionKind::shards:
      return "shards:" + std::to_string(spec.shards);
  }
  return "unknown";
}

std::vector<ShardIndices> partition_dataset(std::span<const std::int64_t> labels,
                                            std::int64_t num_classes, const PartitionSpec& spec,
                                            std::size_t nodes, std::uint64_t seed) {
  if (nodes == 0) throw TrainingError("partition: a cluster needs at least one node");
  for (std::int64_t label : labels) {
    if (label < 0 || label >= num_classes) {
      throw TrainingError("partition: label " + std::to_string(label) + " outside [0, " +
                          std::to_string(num_classes) + ")");
    }
  }
  std::vector<ShardIndices> shards;
  switch (spec.kind) {
    case PartitionKind::iid:
      shards = split_iid(labels.size(), nodes, seed);
      break;
    case PartitionKind::dirichlet:
      if (!(spec.alpha > 0) || !std::isfinite(spec.alpha)) {
        throw TrainingError("training.partition: dirichlet alpha must be positive and finite");
      }
      shards = split_dirichlet(labels, num_classes, spec.alpha, nodes, seed);
      break;
    case PartitionKind::shards:
      if (spec.shards < 1) throw TrainingError("training.partition: shards:K needs K >= 1");
      shards = split_label_shards(labels, num_classes, spec.shards, nodes, seed);
      break;
  }
  for (std::size_t k = 0; k < shards.size(); ++k) {
    if (shards[k].empty()) {
      throw TrainingError("training.partition: \"" + describe(spec) + "\" leaves node " +
                          std::to_string(k) + " of " + std::to_string(nodes) +
                          " with no training samples (" + std::to_string(labels.size()) +
                          " samples in all); use a larger alpha, fewer nodes or more samples");
    }
    std::sort(shards[k].begin(), shards[k].end());
  }
  return shards;
}

}  // namespace starling::training
