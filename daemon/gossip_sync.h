#pragma once
// GossipSync (mode = "gossip"): every `period` local steps (or as a period schedule says,
// daemon/round_schedule.h), one gossip round with this node's neighbours
// (gossip/gossip_averager.h).
//
// With staleness 1 (the default) a round is exchanged while training goes on: the training
// thread snapshots x_s at step s (in the wire precision) and sends it; between the next steps
// it picks up the neighbours' round messages as they arrive (without waiting), and at the
// first step boundary where the round is complete it applies x <- x + (m - x_s) =
// x + sum_j W_ij (x_j - x_s) in one pass over the model — at the latest at the next sync
// point, s + period, where it waits for the round (bounded by round_timeout) before taking the
// next snapshot. So the local progress made during the exchange is kept (as in CoCoD-SGD, Shen
// et al. 2019), the staleness is bounded (a mix is applied at most `period` steps after its
// snapshot), and each snapshot already contains every earlier correction. An applied delta
// m - x_s is a doubly stochastic mix minus its input, so it never moves the cluster's average
// model. With staleness 0 the node blocks at each sync point and applies the round at once.
// (An earlier version ran the exchange on a worker thread; polling between steps does the same
// without the thread and its wake-ups, which on a busy machine cost CPU time.)
//
// A round that is already complete when its snapshot is taken (the node came to the sync
// point after its in-neighbours) is applied there, on time. How late the other rounds come
// is what overlapping costs in accuracy (bench/RESULTS-cluster.md, "What staleness costs"
// and "Bounding how late a round is applied").
//
// Why not two rounds in flight: the second snapshot would miss the first round's correction,
// so both rounds correct the same disagreement. On a mode with mixing eigenvalue lambda the
// disagreement then follows e' = e + (lambda - 1) e_old, which diverges once lambda - 1 < -1
// (ring of 4, Metropolis: lambda = -1/3). We measured it diverge (NaN within two epochs).
//
// Rounds are the only writes to the model besides the optimizer, always between steps, so a
// step never sees a half-applied mix.
#include <chrono>
#include <map>
#include <string>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "daemon/metrics_log.h"
#include "daemon/round_schedule.h"
#include "daemon/sync_strategy.h"
#include "gossip/gossip_averager.h"
#include "gossip/ring_allreduce.h"
#include "gossip/transport.h"
#include "topology/topology.h"

namespace starling::daemon {

struct GossipSyncOptions {
  std::int64_t period = 8;
  // Other periods before given steps (daemon/round_schedule.h); `period` after the last.
  std::vector<topology::PeriodPhase> period_schedule;
  std::int64_t staleness = 1;  // rounds in flight while training goes on
  gossip::WirePrecision precision = gossip::WirePrecision::f32;  // of gossip rounds only
  std::chrono::milliseconds round_timeout{2000};
  std::chrono::milliseconds startup_timeout{60000};
  std::chrono::milliseconds collective_timeout{10000};
  std::int64_t final_rounds = 0;
  bool final_allreduce = false;
  // The run's steps (Trainer::total_steps()): with final_allreduce, the final collective's tag
  // follows from them, and its chunks are buffered from the start (0: unknown, not buffered
  // beyond the usual window).
  std::int64_t total_steps = 0;
  // A node whose consensus distance exceeds this asks the cluster for one ring allreduce of
  // the parameters (0: never).
  double consensus_bound = 0.0;
  // At most one `gossip` metrics line per interval, besides rounds that left a neighbour out
  // (zero: every round). The counters in status and the summary count every round.
  std::chrono::milliseconds round_metrics_interval{0};
};

// Fallback to allreduce: a node that sees its consensus distance above consensus_bound, or is
// asked by `starlingctl sync`, schedules one parameter allreduce of all live nodes at round
// R = its next round + kSyncLead and tells every peer (sync_request). Every node replaces
// gossip round R by that collective; rounds are in lockstep, so the nodes meet there. If the
// collective fails (a member missing, a peer that heard of it too late), the node runs gossip
// round R instead: it hands back to gossip, and nothing waits past collective_timeout.
class GossipSync final : public SyncStrategy {
 public:
  static constexpr std::uint64_t kSyncLead = 6;  // rounds between a request and its collective

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

  // Schedules a parameter allreduce of all live nodes and tells the peers; returns its round.
  // Thread-safe (the control thread calls it).
  std::uint64_t request_sync(const std::string& reason);

 private:
  // The round in flight (staleness 1): its snapshot as sent and its exchange.
  struct InFlight {
    gossip::WireSnapshot snapshot;
    gossip::PendingRound pending;
    std::int64_t snapshot_step;  // the trainer's step when the snapshot was taken
  };

  // Snapshots the model and starts a round: left in flight when `in_background`, else
  // completed and applied now.
  void launch_round(training::Trainer& trainer, bool in_background);
  // A node more than `slack` rounds behind its neighbours moves forward to their round and to
  // the step that goes with it (never back, never past the last step), skipping the batches
  // between; `launching_now`: whether it launches that round at once or `period` steps from
  // now. Drops the syncs scheduled for skipped rounds. mutex_ held.
  void catch_up_locked(training::Trainer& trainer, std::uint64_t slack, bool launching_now);
  // Applies the round in flight if its exchange is complete; with `wait`, completes it first
  // (bounded by round_timeout). Training thread only.
  void settle_in_flight(training::Trainer& trainer, bool wait);
  // Applies a completed round whose snapshot was taken at step `snapshot_step`.
  void apply(training::Trainer& trainer, const gossip::WireSnapshot& snapshot,
             gossip::RoundExchange& exchange, std::int64_t snapshot_step);
  // Files the sync requests peers sent; requires mutex_.
  void take_sync_requests_locked();
  // Replaces gossip round `round` by a parameter allreduce (or, if it fails, runs the round).
  void run_collective_round(training::Trainer& trainer, std::uint64_t round);

  gossip::Transport& transport_;
  const topology::Topology& topology_;
  GossipSyncOptions options_;
  RoundSchedule schedule_;  // which steps start rounds
  MetricsLog& metrics_;
  gossip::GossipAverager averager_;
  gossip::RingAllreduce ring_;
  std::vector<float> collective_scratch_;

  // Touched by the training thread only (no worker: the exchange of a round in flight is
  // polled between steps, and finished at the next sync point).
  std::optional<InFlight> in_flight_;
  // When the last `gossip` metrics line was written.
  std::optional<std::chrono::steady_clock::time_point> last_round_line_;

  // status() is called from the control thread: what it reads is guarded by mutex_.
  mutable std::mutex mutex_;

  // Training-thread state, published under mutex_ for status().
  std::uint64_t next_round_ = 0;
  bool resumed_ = false;  // restored from a checkpoint: catch up with the neighbours at start
  std::uint64_t rounds_ = 0;
  std::uint64_t neighbours_left_out_ = 0;
  double last_distance_ = 0.0;
  double last_wait_ms_ = 0.0;
  double blocked_seconds_ = 0.0;  // training thread waiting for an overlapped round to finish
  // Steps trained between a round's snapshot and its apply, summed over rounds: how stale the
  // mixes were (0 with staleness 0). Accuracy falls with it (bench/RESULTS-cluster.md).
  std::uint64_t apply_lag_steps_ = 0;
  // Rounds (staleness 1) applied only at the next sync point, a whole period after their
  // snapshot: the tail that costs most of overlapping's accuracy (bench/RESULTS-cluster.md,
  // "Bounding how late a round is applied"). The mean lag alone hides it.
  std::uint64_t rounds_a_period_late_ = 0;
  std::map<std::uint64_t, std::string> scheduled_syncs_;  // round -> why
  std::uint64_t last_sync_request_ = 0;  // round of this node's last request (rate limit)
  std::uint64_t allreduces_ok_ = 0;
  std::uint64_t allreduces_failed_ = 0;
  std::string last_allreduce_;
};

}  // namespace starling::daemon
