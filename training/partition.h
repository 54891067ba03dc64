#pragma once
// Splitting a training set across the nodes of a cluster, with no LibTorch.
//
// Invariants of the result (tested): one index list per node; the lists are disjoint and their
// union is every sample; each list is sorted; the result depends only on (labels, spec, nodes,
// seed), so every node computes the same split without talking to the others.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::training {

using ShardIndices = std::vector<std::int64_t>;

// labels[i] in [0, num_classes). Throws TrainingError when a node would get no sample (naming
// the partition and the node) or when `shards:K` asks for more shards than samples.
std::vector<ShardIndices> partition_dataset(std::span<const std::int64_t> labels,
                                            std::int64_t num_classes,
                                            const topology::PartitionSpec& spec,
                                            std::size_t nodes, std::uint64_t seed);

std::string describe(const topology::PartitionSpec& spec);  // "iid", "dirichlet:0.3", "shards:2"

}  // namespace starling::training
