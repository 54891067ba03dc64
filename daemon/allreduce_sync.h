#pragma once
// AllreduceSync (mode = "allreduce"): synchronous data-parallel SGD over a ring allreduce.
//
// With `gradients` (the default) every step computes this node's gradient, averages it over all
// live nodes with one ring allreduce, and applies the average: every replica takes the same
// step, so they stay identical. With `parameters` nodes train locally and average their
// parameters every `period` steps. Collectives carry a number that advances in lockstep (one
// per step, or per period) and is reported in heartbeats, so a restarted node can rejoin.
//
// Fallback to gossip: a collective that fails (a member died or stalled, members disagree on
// who is alive) leaves every member's gradients or parameters as they were; the node then
// applies its own gradient and *hands over to gossip*: it trains locally and, every `period`
// steps, first tries to re-form the ring with one parameter allreduce of the live nodes (which
// also re-synchronises the replicas), and if that fails too, runs a gossip round with its live
// neighbours instead. The ring re-forms without a dead node, and takes it back when it returns
// (its parameters are averaged in with the others'). Nothing waits past collective_timeout.
// A re-formed ring also agrees on the step (every member moves forward to the most advanced
// one, so a node resumed from an older checkpoint rejoins the schedule, not just the model),
// and with gradients restarts momentum on every member, so the replicas are identical again
// and stay so.
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/metrics_log.h"
#include "daemon/sync_strategy.h"
#include "gossip/gossip_averager.h"
#include "gossip/ring_allreduce.h"
#include "gossip/transport.h"
#include "topology/topology.h"

namespace starling::daemon {

struct AllreduceSyncOptions {
  bool gradients = true;  // false: parameters every `period` steps
  std::int64_t period = 8;
  std::chrono::milliseconds collective_timeout{10000};
  std::chrono::milliseconds round_timeout{2000};  // gossip rounds while falling back
  std::chrono::milliseconds startup_timeout{60000};
  bool final_allreduce = false;
};

class AllreduceSync final : public SyncStrategy {
 public:
  AllreduceSync(gossip::Transport& transport, const topology::Topology& topology,
                AllreduceSyncOptions options, MetricsLog& metrics);

  std::string mode() const override { return "allreduce"; }
  void start(training::Trainer& trainer) override;
  training::StepResult step(training::Trainer& trainer) override;
  void after_step(training::Trainer& trainer) override;
  void finish(training::Trainer& trainer, bool stopping) override;
  void save_state(training::CheckpointExtras& extras) const override;
  void restore_state(const training::CheckpointExtras& extras) override;
  nlohmann::json status() const override;
  double consensus_distance() const override;

 private:
  void fall_back(const std::string& reason, std::int64_t step);
  // Every `period` steps while falling back: re-form the ring, or gossip.
  void try_to_rejoin(training::Trainer& trainer);

  gossip::Transport& transport_;
  const topology::Topology& topology_;
  AllreduceSyncOptions options_;
  MetricsLog& metrics_;
  gossip::RingAllreduce ring_;
  gossip::GossipAverager averager_;
  std::vector<float> scratch_;
  std::vector<std::size_t> all_peers_;

  // Training-thread state, published under mutex_ for status().
  mutable std::mutex mutex_;
  bool synchronous_ = true;
  std::uint64_t next_tag_ = 1;
  std::uint64_t collectives_ = 0;
  std::uint64_t failures_ = 0;
  std::uint64_t fallbacks_ = 0;
  std::uint64_t gossip_rounds_ = 0;
  std::size_t ring_size_ = 0;
  std::string last_fallback_;
  double last_seconds_ = 0;
  double consensus_distance_ = 0;
};

}  // namespace starling::daemon
