#pragma once
// GossipSync (mode = "gossip"): every `period` local steps, one gossip round with this node's
// neighbours (gossip/gossip_averager.h).
//
// With overlap (the default) the round runs on a worker thread while training goes on: the
// training thread snapshots x_s at step s, the worker mixes the snapshot with the neighbours'
// round messages into m, and the training thread applies x <- x + (m - x_s) at the first step
// boundary after the round completes — at the latest at the next sync point, s + period, where
// it waits for the round (bounded by round_timeout). So the local progress made during the
// exchange is kept (as in CoCoD-SGD, Shen et al. 2019), and the staleness is bounded: a mix
// is built from parameters at most `period` steps old and applied at most `period` steps after
// its snapshot. Without overlap the node blocks at each sync point and applies x <- m.
//
// Rounds are the only writes to the model besides the optimizer, always between steps, so a
// step never sees a half-applied mix.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "daemon/metrics_log.h"
#include "daemon/sync_strategy.h"
#include "gossip/gossip_averager.h"
#include "gossip/transport.h"
#include "topology/topology.h"

namespace starling::daemon {

struct GossipSyncOptions {
  std::int64_t period = 8;
  bool overlap = true;
  std::chrono::milliseconds round_timeout{2000};
  std::chrono::milliseconds startup_timeout{60000};
  std::int64_t final_rounds = 0;
};

class GossipSync final : public SyncStrategy {
 public:
  GossipSync(gossip::Transport& transport, const topology::Topology& topology,
             GossipSyncOptions options, MetricsLog& metrics);
  ~GossipSync() override;

  std::string mode() const override { return "gossip"; }
  void start(training::Trainer& trainer) override;
  void after_step(training::Trainer& trainer) override;
  void finish(training::Trainer& trainer, bool stopping) override;
  void save_state(training::CheckpointExtras& extras) const override;
  void restore_state(const training::CheckpointExtras& extras) override;
  nlohmann::json status() const override;
  double consensus_distance() const override;

 private:
  struct Job {
    std::uint64_t round = 0;
    std::shared_ptr<const std::vector<float>> snapshot;
  };
  struct Outcome {
    gossip::GossipRoundResult result;
    std::shared_ptr<const std::vector<float>> snapshot;
    std::vector<float> mixed;
  };

  void worker_loop();
  // Snapshots the model and runs a round: on the worker when `overlap`, else inline.
  void launch_round(training::Trainer& trainer, bool overlap);
  // Waits for the in-flight round (if any) and applies it.
  void complete_round(training::Trainer& trainer);
  void apply(training::Trainer& trainer, Outcome& outcome);
  void wait_for_neighbours();

  gossip::Transport& transport_;
  const topology::Topology& topology_;
  GossipSyncOptions options_;
  MetricsLog& metrics_;
  gossip::GossipAverager averager_;

  // Hand-over between the training thread and the worker. Lock order: mutex_ only (the
  // averager's mailbox lock is taken by the worker without holding mutex_).
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Job> job_;
  std::optional<Outcome> outcome_;
  bool in_flight_ = false;  // a job was posted and its outcome not yet applied
  bool stopping_ = false;
  std::thread worker_;

  // Training-thread state, published under mutex_ for status().
  std::uint64_t next_round_ = 0;
  bool resumed_ = false;  // restored from a checkpoint: catch up with the neighbours at start
  std::uint64_t rounds_ = 0;
  std::uint64_t neighbours_left_out_ = 0;
  double last_distance_ = 0.0;
  double last_wait_ms_ = 0.0;
  double blocked_seconds_ = 0.0;  // training thread waiting for an overlapped round to finish
};

}  // namespace starling::daemon
