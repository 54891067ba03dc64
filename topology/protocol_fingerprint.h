#pragma once
// What the nodes of one cluster must agree on for their protocol to work: the cluster's name
// and seed, its node ids in order, how the data is cut into shards (dataset, partition,
// max_train_samples) and how many steps a node takes (batch_size, epochs, max_steps), the
// [topology] (graph and weights) and the [sync] settings that shape the exchanges (mode,
// period, staleness, wire precision, allreduce kind, the dynamic delta, final rounds and final
// allreduce). Hashed into the fingerprint every message carries, so a
// node started with an edited copy of the cluster file is refused by the others with a log
// line that says so, instead of running rounds at other steps or weighting with other
// neighbours.
//
// Left out on purpose: what may differ from host to host without breaking anything
// (endpoints, control and metrics addresses, keys, devices, timeouts, log level, run
// directory) and the optimizer's hyperparameters (the model itself is in the model
// fingerprint).
#include <cstdint>

#include "topology/cluster_spec.h"

namespace starling::topology {

// The hash of those settings, begun from `model_fingerprint` (the trainer's hash of the
// model's layout), so that one number stands for the model and the protocol.
std::uint64_t protocol_fingerprint(const ClusterSpec& spec, std::uint64_t model_fingerprint = 0);

}  // namespace starling::topology
