#include "daemon/dynamic_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "daemon/checkpoint_extras.h"
#include "daemon/cluster_view.h"
#include "gossip/ring_allreduce.h"

namespace starling::daemon {

DynamicSync::DynamicSync(gossip::Transport& transport, const topology::Topology& topology,
                         DynamicSyncOptions options, MetricsLog& metrics)
    : transport_(transport),
      topology_(topology),
      options_(std::move(options)),
      metrics_(metrics) {
  gossip::DynamicAverager::open_mailbox(transport_);
  // The final allreduce is collective 1; nodes that finish first send before the others
  // build their ring.
  gossip::RingAllreduce::open_window(transport_, 1);
}

DynamicSync::~DynamicSync() = default;

std::uint64_t DynamicSync::bytes_sent() const {
  std::uint64_t sent = 0;
  for (const auto& peer : transport_.peers().snapshot()) sent += peer.bytes_sent;
  return sent;
}

double DynamicSync::reference_norm_squared() const {
  double sum = 0;
  for (float v : averager_->reference()) sum += static_cast<double>(v) * v;
  return sum;
}

void DynamicSync::start(training::Trainer& trainer) {
  transport_.set_progress(0, static_cast<std::uint64_t>(trainer.step_count()));
  wait_for_peers(transport_, topology_.graph().neighbours(transport_.self()),
                 options_.startup_timeout, "neighbours", stop_check_);
  if (resumed_) {
    // Balancings may involve any node; catch up with the most advanced one.
    std::vector<std::size_t> everyone;
    for (std::size_t i = 0; i < transport_.size(); ++i) everyone.push_back(i);
    const std::int64_t skipped = rejoin_peers_step(trainer, transport_, everyone);
    if (skipped > 0) {
      metrics_.write({{"event", "rejoined"}, {"step", trainer.step_count()}, {"skipped_steps", skipped}});
    }
  }
  trainer.pull_parameters();
  auto params = trainer.parameters();
  gossip::DynamicOptions o;
  o.reply_timeout = options_.reply_timeout;
  // A drive gathers at most once per widening (each adds at least one node, and it stops at
  // half the live nodes) plus the full synchronization, each within reply_timeout.
  o.lock_timeout = options_.reply_timeout * static_cast<int>(transport_.size() / 2 + 3);
  o.delta = options_.delta;
  o.precision = options_.precision;
  // Long enough for any step (a cnn step of 8 nodes on 2 vCPUs is tens of ms), short enough
  // that a paused or evaluating member answers well within the driver's reply timeout.
  o.fresh_reply_wait = options_.reply_timeout / 4;
  // Every node starts from the same seeded model, which is the first reference; a resumed
  // node keeps the reference of its last full synchronization.
  std::span<const float> reference = restored_reference_ ? std::span<const float>(*restored_reference_)
                                                         : std::span<const float>(params);
  {
    std::lock_guard lock(mutex_);
    averager_ = std::make_unique<gossip::DynamicAverager>(transport_, topology_, o, reference);
  }
  if (options_.delta_mode == "relative") {
    averager_->set_delta(options_.delta * reference_norm_squared());
  } else if (restored_delta_) {
    averager_->set_delta(*restored_delta_);
  }
  last_epoch_ = static_cast<std::int64_t>(trainer.epoch());
  epoch_start_bytes_ = bytes_sent();
  spdlog::info("dynamic averaging: delta {} ({}), check every {} steps, {} on the wire",
               averager_->delta(), options_.delta_mode, options_.period,
               options_.precision == gossip::WirePrecision::f16 ? "binary16 drifts" : "float32 models");
}

void DynamicSync::apply_updates(training::Trainer& trainer) {
  bool reference_changed = false;
  while (auto update = averager_->take_update()) {
    trainer.pull_parameters();
    auto params = trainer.parameters();
    for (std::size_t k = 0; k < params.size(); ++k) params[k] += update->delta[k];
    trainer.push_parameters();
    reference_changed = reference_changed || update->full_sync;
    metrics_.write({{"event", "balance"},
                    {"step", trainer.step_count()},
                    {"full_sync", update->full_sync},
                    {"set", update->set_size},
                    {"balancing", update->balancing}});
  }
  if (reference_changed && options_.delta_mode == "relative") {
    averager_->set_delta(options_.delta * reference_norm_squared());
  }
}

void DynamicSync::stand_still(training::Trainer& trainer, std::chrono::milliseconds limit) {
  // A member hands over its model as it is now; on CUDA the host span is a mirror, refreshed
  // only when a balancing involves this node (it is about to wait anyway).
  if (averager_->involved()) trainer.pull_parameters();
  blocked_ns_ += averager_->stand_still(trainer.parameters(), limit).count();
}

void DynamicSync::hold_back_if_ahead(training::Trainer& trainer) {
  if (options_.max_lead_steps <= 0) return;
  const auto step = static_cast<std::uint64_t>(trainer.step_count());
  auto slowest = [&] {
    std::optional<std::uint64_t> min;
    for (std::size_t p = 0; p < transport_.size(); ++p) {
      if (p == transport_.self() || !transport_.peers().is_active(p)) continue;
      const std::uint64_t s = transport_.peers().reported_step(p);
      min = min ? std::min(*min, s) : s;
    }
    return min;
  };
  const auto start = std::chrono::steady_clock::now();
  // Bounded: a peer that stops stepping turns suspect, then dead, and stops counting; the
  // bound covers one that keeps its heartbeats going but never steps (a long evaluation).
  const auto deadline = start + 4 * options_.reply_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto min = slowest();
    if (!min || step <= *min + static_cast<std::uint64_t>(options_.max_lead_steps)) break;
    // Peers' steps come with their heartbeats, on the transport's thread: poll, and meanwhile
    // hand this node's model to any driver that asks for it, and take the averages.
    stand_still(trainer, std::chrono::milliseconds(0));
    apply_updates(trainer);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  held_back_ns_ += (std::chrono::steady_clock::now() - start).count();
}

void DynamicSync::after_step(training::Trainer& trainer) {
  const std::int64_t step = trainer.step_count();
  // Heartbeats carry this node's step, so a node that restarts can catch up with it. (Dynamic
  // averaging has no rounds: the round field stays 0.)
  transport_.set_progress(0, static_cast<std::uint64_t>(step));
  if (step % options_.period == 0) {
    hold_back_if_ahead(trainer);
    apply_updates(trainer);  // check the model with every average taken so far
    trainer.pull_parameters();
    averager_->check(trainer.parameters());
  }
  // A node in a balancing (its own, or another's it joined) stands still until it ends, so
  // the average is taken of models that do not move meanwhile; bounded by the reply and lock
  // timeouts.
  stand_still(trainer, 4 * options_.reply_timeout);
  apply_updates(trainer);
  if (options_.delta_mode == "budget" && options_.budget_bytes_per_epoch > 0) {
    const auto epoch = static_cast<std::int64_t>(trainer.epoch());
    if (epoch > last_epoch_) {
      const std::uint64_t sent = bytes_sent();
      const double ratio = static_cast<double>(sent - epoch_start_bytes_) / options_.budget_bytes_per_epoch;
      const double factor = std::clamp(ratio, 0.5, 2.0);
      averager_->set_delta(averager_->delta() * factor);
      metrics_.write({{"event", "delta"},
                      {"epoch", epoch},
                      {"bytes", sent - epoch_start_bytes_},
                      {"delta", averager_->delta()}});
      last_epoch_ = epoch;
      epoch_start_bytes_ = sent;
    }
  }
}

void DynamicSync::finish(training::Trainer& trainer, bool stopping) {
  // Take no part in new balancings, let the current one end, and apply what it brought.
  averager_->leave(2 * options_.reply_timeout);
  apply_updates(trainer);
  // A node stopped early does not join the final allreduce: the others are still training, so
  // it would wait for them (up to 120 s, past systemd's stop timeout, losing its last
  // checkpoint), and its abort would stay in their mailboxes and fail their own final
  // allreduce later. The gossip and allreduce modes do the same.
  if (stopping) return;
  // Collective 1: the only one this ring runs, on every node at the end.
  if (options_.final_allreduce) final_average(trainer, 1, transport_, metrics_, scratch_, stop_check_);
}

void DynamicSync::save_state(training::CheckpointExtras& extras) const {
  std::lock_guard lock(mutex_);
  if (!averager_) return;
  put_floats(extras, "dynamic.reference", averager_->reference());
  double delta = averager_->delta();
  std::uint64_t bits;
  std::memcpy(&bits, &delta, sizeof bits);
  put_u64(extras, "dynamic.delta", bits);
}

void DynamicSync::restore_state(const training::CheckpointExtras& extras) {
  resumed_ = true;
  restored_reference_ = get_floats(extras, "dynamic.reference");
  if (auto bits = get_u64(extras, "dynamic.delta")) {
    double delta;
    std::memcpy(&delta, &*bits, sizeof delta);
    restored_delta_ = delta;
  }
}

nlohmann::json DynamicSync::status() const {
  std::lock_guard lock(mutex_);
  if (!averager_) return {{"state", "starting"}};
  auto s = averager_->stats();
  return {{"drift", s.last_drift},
          {"delta", s.delta},
          {"delta_mode", options_.delta_mode},
          {"wire_precision", gossip::to_string(options_.precision)},
          {"checks", s.checks},
          {"violations", s.violations},
          {"local_balancings", s.local_balancings},
          {"full_syncs", s.full_syncs},
          {"aborted", s.aborted},
          {"joined", s.joined},
          {"averages_taken", s.updates},
          {"reference_updates", s.reference_updates},
          {"blocked_seconds", static_cast<double>(blocked_ns_.load()) * 1e-9},
          {"held_back_seconds", static_cast<double>(held_back_ns_.load()) * 1e-9}};
}

double DynamicSync::consensus_distance() const {
  // The node's distance from the common reference: all models lie within sqrt(delta) of it
  // while the conditions hold.
  std::lock_guard lock(mutex_);
  return averager_ ? std::sqrt(averager_->stats().last_drift) : 0.0;
}

}  // namespace starling::daemon
