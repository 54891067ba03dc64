#pragma once
// DynamicSync (mode = "dynamic"): drift-threshold averaging (gossip/dynamic_averager.h). Every
// `period` steps (b) the node checks ||x - r||^2 against delta; only a violation costs any
// traffic. Delta is absolute, relative to ||r||^2 (recomputed whenever r changes), or adapted
// to a budget of bytes per epoch: at each epoch end delta is scaled by the ratio of the bytes
// this node sent that epoch to the budget (clamped to [1/2, 2]), so a node over budget
// tolerates more drift and one under budget less. Averages arrive as deltas and are applied
// between steps.
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "daemon/metrics_log.h"
#include "daemon/sync_strategy.h"
#include "gossip/dynamic_averager.h"
#include "gossip/transport.h"
#include "topology/topology.h"

namespace starling::daemon {

struct DynamicSyncOptions {
  std::int64_t period = 8;  // b: steps between checks
  double delta = 1.0;       // absolute delta, or the factor for "relative"
  std::string delta_mode = "absolute";  // absolute | relative | budget
  double budget_bytes_per_epoch = 0;    // budget mode
  std::chrono::milliseconds reply_timeout{2000};
  // At a check, wait while this node is more than this many steps ahead of its slowest active
  // peer (0: never). Dynamic averaging has no rounds to keep nodes together, and a node that
  // drives few balancings runs ahead of those that drive many: without a bound, nodes
  // thousands of steps apart (at different points of the lr schedule) average their models.
  std::int64_t max_lead_steps = 0;
  std::chrono::milliseconds startup_timeout{60000};
  std::chrono::milliseconds collective_timeout{10000};
  bool final_allreduce = false;
  gossip::WirePrecision precision = gossip::WirePrecision::f32;  // of balancing messages
};

class DynamicSync final : public SyncStrategy {
 public:
  DynamicSync(gossip::Transport& transport, const topology::Topology& topology,
              DynamicSyncOptions options, MetricsLog& metrics);
  ~DynamicSync() override;

  std::string mode() const override { return "dynamic"; }
  void start(training::Trainer& trainer) override;
  void after_step(training::Trainer& trainer) override;
  void finish(training::Trainer& trainer, bool stopping) override;
  void save_state(training::CheckpointExtras& extras) const override;
  void restore_state(const training::CheckpointExtras& extras) override;
  nlohmann::json status() const override;
  double consensus_distance() const override;

 private:
  void apply_updates(training::Trainer& trainer);
  // DynamicAverager::stand_still with the trainer's current parameters, counted as blocked.
  void stand_still(training::Trainer& trainer, std::chrono::milliseconds limit);
  // max_lead_steps: waits (still handing over its model to drivers) until the slowest active
  // peer's reported step is within the lead, that peer stops being active, or a bound passes.
  void hold_back_if_ahead(training::Trainer& trainer);
  double reference_norm_squared() const;
  std::uint64_t bytes_sent() const;

  gossip::Transport& transport_;
  const topology::Topology& topology_;
  DynamicSyncOptions options_;
  MetricsLog& metrics_;
  std::unique_ptr<gossip::DynamicAverager> averager_;  // built in start(), from the model
  std::vector<float> scratch_;  // for the final allreduce
  std::optional<std::vector<float>> restored_reference_;
  bool resumed_ = false;  // restored from a checkpoint: behind the others by their progress since
  std::optional<double> restored_delta_;
  std::int64_t last_epoch_ = 0;
  // Nanoseconds the training thread stood still for balancings, and waited for slower peers
  // (max_lead_steps). Written by the training thread, read by status().
  std::atomic<std::int64_t> blocked_ns_{0};
  std::atomic<std::int64_t> held_back_ns_{0};
  std::uint64_t epoch_start_bytes_ = 0;
  mutable std::mutex mutex_;  // guards averager_ being set, for status()
};

}  // namespace starling::daemon
