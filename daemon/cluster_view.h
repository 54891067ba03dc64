#pragma once
// What a node's sync strategies need to know about the cluster right now, from its peer table.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gossip/gossip_averager.h"
#include "gossip/ring_allreduce.h"
#include "gossip/transport.h"
#include "training/trainer.h"

namespace starling::daemon {

// This node and every peer it currently hears (alive), in cluster order: the ring a
// collective runs on.
std::vector<std::size_t> live_members(gossip::Transport& transport);

// The largest round or collective number `peers` (those reachable) report in their heartbeats.
std::uint64_t latest_reported(gossip::Transport& transport, const std::vector<std::size_t>& peers);

// The largest training step `peers` (those reachable) report in their heartbeats.
std::int64_t latest_reported_step(gossip::Transport& transport, const std::vector<std::size_t>& peers);

// Right after a restart the peers' first heartbeats (which carry their rounds and steps) may
// still be on their way, and a peer table that has heard none reports 0: waits up to 2 s
// while `reported()` is 0.
void await_first_reports(const std::function<std::uint64_t()>& reported);

// A node that resumed from a checkpoint is behind its peers by the steps they made since. If
// it trained them all it would finish long after them, and its last rounds (or balancings)
// would wait for peers that are done. So it moves forward to the most advanced step its
// `peers` report, skipping those batches, and lets averaging pull its older model in. Logs
// and returns the steps skipped (0 when it is not behind).
std::int64_t rejoin_peers_step(training::Trainer& trainer, gossip::Transport& transport,
                               const std::vector<std::size_t>& peers);

// Waits until each of `peers` is alive with a measured round trip (we hear it and it hears
// us), or `timeout`; logs who is missing. `what` names them in the log ("neighbours").
// Returns early, without waiting further, when `stop` (if given) returns true.
void wait_for_peers(gossip::Transport& transport, const std::vector<std::size_t>& peers,
                    std::chrono::milliseconds timeout, const std::string& what,
                    const std::function<bool()>& stop = {});

// Collective kinds, so a gradient allreduce and a parameter allreduce never mix.
inline constexpr std::uint64_t kGradientCollective = 1;
inline constexpr std::uint64_t kParameterCollective = 2;
inline constexpr std::uint64_t kStepCollective = 3;

// Averages the model's parameters over `members` with collective `tag`; on success the
// trainer holds the average, on failure it is unchanged. `scratch` is reused between calls.
gossip::AllreduceResult average_parameters(gossip::RingAllreduce& ring, training::Trainer& trainer,
                                           std::uint64_t tag, const std::vector<std::size_t>& members,
                                           std::vector<float>& scratch);

// The largest training step among `members`, known exactly and identically to each of them
// after one small collective `tag` (nullopt if it fails). Member k writes its step, cut into
// four 11-bit parts, into slots 4k..4k+3 and zeros elsewhere; a float sum or mean of such
// parts is exact, so every member decodes every member's step. Steps below 2^44.
std::optional<std::int64_t> agree_on_step(gossip::RingAllreduce& ring, std::uint64_t tag,
                                          const std::vector<std::size_t>& members,
                                          std::size_t self, std::int64_t step);

class MetricsLog;

// One gossip round run on the calling thread, applied to the trainer at once: for rounds that
// replace a collective (a failed allreduce hands over to gossip).
gossip::GossipRoundResult gossip_round_now(gossip::GossipAverager& averager,
                                           training::Trainer& trainer, std::uint64_t round);

// The end of a run with `final_allreduce`: one parameter allreduce of all live nodes with
// collective `tag`, so every node evaluates (and keeps) the same, averaged model. Nodes finish
// at different times (a node held up in balancings can finish tens of seconds after the
// first), so this collective waits up to kFinalAllreduceTimeout for the last one; a node that
// dies is still left out at once. A failed attempt (a member died in it) is tried again, up
// to kFinalAllreduceAttempts times within the timeout, among the live nodes that have finished
// training, so the survivors still end on one model. Each attempt is logged as
// "final_allreduce"; when none succeeds the node keeps its own model. `stop` (the node's stop
// request) ends the wait at once, and the node keeps its own model: a stop is never held up
// by slow members (systemd's stop timeout is the final allreduce's own 120 s).
inline constexpr std::chrono::seconds kFinalAllreduceTimeout{120};
inline constexpr std::uint64_t kFinalAllreduceAttempts = 8;  // well within RingAllreduce::kWindow
inline constexpr std::chrono::seconds kFinalRetryPatience{3};
void final_average(training::Trainer& trainer, std::uint64_t tag, gossip::Transport& transport,
                   MetricsLog& metrics, std::vector<float>& scratch,
                   const std::function<bool()>& stop);

}  // namespace starling::daemon
