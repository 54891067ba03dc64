#include "daemon/allreduce_sync.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "daemon/checkpoint_extras.h"
#include "daemon/cluster_view.h"

namespace starling::daemon {

AllreduceSync::AllreduceSync(gossip::Transport& transport, const topology::Topology& topology,
                             AllreduceSyncOptions options, MetricsLog& metrics)
    : transport_(transport),
      topology_(topology),
      options_(options),
      metrics_(metrics),
      ring_(transport, gossip::AllreduceOptions{.timeout = options.collective_timeout}),
      averager_(transport, topology, options.round_timeout) {
  for (std::size_t i = 0; i < transport.size(); ++i) {
    if (i != transport.self()) all_peers_.push_back(i);
  }
  ring_size_ = transport.size();
}

void AllreduceSync::start(training::Trainer& trainer) {
  transport_.set_progress(next_tag_, static_cast<std::uint64_t>(trainer.step_count()));
  wait_for_peers(transport_, all_peers_, options_.startup_timeout, "nodes", stop_check_);
  std::lock_guard lock(mutex_);
  if (!synchronous_) {
    // Resumed from a checkpoint: rejoin at the collective the others are at, through a
    // parameter allreduce at the next period boundary.
    next_tag_ = std::max(next_tag_, latest_reported(transport_, all_peers_));
  }
  ring_.expect(next_tag_);
}

void AllreduceSync::fall_back(const std::string& reason, std::int64_t step) {
  spdlog::warn("allreduce failed ({}); handing over to gossip with the live neighbours until the "
               "ring re-forms",
               reason);
  metrics_.write({{"event", "fallback"}, {"from", "allreduce"}, {"to", "gossip"}, {"step", step},
                  {"reason", reason}});
  std::lock_guard lock(mutex_);
  // Nodes still in the synchronous ring wait for this one in the next collectives: tell them it
  // will not come, so they fall back at once instead of after collective_timeout.
  // Those tags are spent: this node's own next collective must not meet its own aborts.
  for (std::uint64_t tag = next_tag_; tag < next_tag_ + 2; ++tag) ring_.abort(tag);
  next_tag_ += 2;
  synchronous_ = false;
  ++fallbacks_;
  last_fallback_ = reason;
}

training::StepResult AllreduceSync::step(training::Trainer& trainer) {
  bool synchronous;
  std::uint64_t tag;
  {
    std::lock_guard lock(mutex_);
    synchronous = synchronous_;
    tag = next_tag_;
  }
  if (!options_.gradients || !synchronous) return trainer.step();

  trainer.compute_gradients();
  trainer.pull_gradients();
  auto gradients = trainer.gradients();
  scratch_.resize(gradients.size());
  auto members = live_members(transport_);
  auto result = ring_.run(tag, members, gradients, scratch_, kGradientCollective);
  {
    std::lock_guard lock(mutex_);
    next_tag_ = tag + 1;
    ++collectives_;
    ring_size_ = members.size();
    last_seconds_ = std::chrono::duration<double>(result.elapsed).count();
    if (!result.ok) ++failures_;
  }
  transport_.set_progress(tag + 1, static_cast<std::uint64_t>(trainer.step_count()));
  if (result.ok) {
    std::memcpy(gradients.data(), scratch_.data(), gradients.size_bytes());
    trainer.push_gradients();
  } else {
    // The gradient stays this node's own: the step still makes progress.
    fall_back(result.error, trainer.step_count());
  }
  return trainer.apply_gradients();
}

void AllreduceSync::try_to_rejoin(training::Trainer& trainer) {
  std::uint64_t tag;
  {
    std::lock_guard lock(mutex_);
    // Meet the others at the most advanced collective any of them reports.
    next_tag_ = std::max(next_tag_, latest_reported(transport_, all_peers_));
    tag = next_tag_++;
  }
  transport_.set_progress(tag, static_cast<std::uint64_t>(trainer.step_count()));
  auto members = live_members(transport_);
  auto result = average_parameters(ring_, trainer, tag, members, scratch_);
  if (result.ok) {
    // The members now hold one model; they must also be at one step (a node that resumed
    // from a checkpoint is behind, and in fallback each trained at its own pace), or their
    // learning rates differ and they end at different times. Everyone moves to the most
    // advanced step. With gradients the replicas must stay identical, so they also restart
    // their momentum together (each one's buffer reflects its own fallback steps).
    std::uint64_t step_tag;
    {
      std::lock_guard lock(mutex_);
      step_tag = next_tag_++;
    }
    const std::int64_t own_step = trainer.step_count();
    auto agreed = agree_on_step(ring_, step_tag, members, transport_.self(), own_step);
    if (!agreed) {
      spdlog::warn("ring of {} nodes averaged its parameters but did not agree on a step "
                   "(collective {}); still falling back", members.size(), step_tag);
      return;
    }
    if (*agreed > own_step) trainer.advance_to_step(*agreed);
    if (options_.gradients) trainer.reset_optimizer_state();
    transport_.set_progress(step_tag + 1, static_cast<std::uint64_t>(trainer.step_count()));
    std::lock_guard lock(mutex_);
    synchronous_ = true;
    ring_size_ = members.size();
    collectives_ += 2;
    consensus_distance_ = 0;
    spdlog::info("ring of {} nodes re-formed at collective {}, at step {}{}; back to allreduce",
                 members.size(), tag, trainer.step_count(),
                 *agreed > own_step ? " (moved forward " + std::to_string(*agreed - own_step) +
                                          " steps to meet it)"
                                    : std::string());
    metrics_.write({{"event", "fallback"}, {"from", "gossip"}, {"to", "allreduce"},
                    {"step", trainer.step_count()}, {"skipped_steps", *agreed - own_step},
                    {"ring", members.size()}});
    return;
  }
  // Still no ring: a gossip round with whoever is alive keeps the replicas together.
  auto round = gossip_round_now(averager_, trainer, tag);
  std::lock_guard lock(mutex_);
  ++gossip_rounds_;
  consensus_distance_ = round.consensus_distance;
}

void AllreduceSync::after_step(training::Trainer& trainer) {
  const std::int64_t step = trainer.step_count();
  bool synchronous;
  {
    std::lock_guard lock(mutex_);
    synchronous = synchronous_;
  }
  if (step % options_.period != 0) return;
  if (!synchronous) {
    try_to_rejoin(trainer);
    return;
  }
  if (options_.gradients) return;
  std::uint64_t tag;
  {
    std::lock_guard lock(mutex_);
    tag = next_tag_++;
  }
  auto members = live_members(transport_);
  auto result = average_parameters(ring_, trainer, tag, members, scratch_);
  transport_.set_progress(tag + 1, static_cast<std::uint64_t>(step));
  {
    std::lock_guard lock(mutex_);
    ++collectives_;
    ring_size_ = members.size();
    last_seconds_ = std::chrono::duration<double>(result.elapsed).count();
    if (!result.ok) ++failures_;
  }
  if (!result.ok) fall_back(result.error, step);
}

void AllreduceSync::finish(training::Trainer& trainer, bool stopping) {
  if (stopping || !options_.final_allreduce) return;
  std::uint64_t tag;
  {
    std::lock_guard lock(mutex_);
    tag = std::max(next_tag_, latest_reported(transport_, all_peers_));
    next_tag_ = tag + 1;
  }
  final_average(trainer, tag, transport_, metrics_, scratch_, stop_check_);
}

void AllreduceSync::save_state(training::CheckpointExtras& extras) const {
  std::lock_guard lock(mutex_);
  put_u64(extras, "allreduce.next_tag", next_tag_);
}

void AllreduceSync::restore_state(const training::CheckpointExtras& extras) {
  std::lock_guard lock(mutex_);
  if (auto tag = get_u64(extras, "allreduce.next_tag")) next_tag_ = *tag;
  // The others went on without this node: its replica is stale until the ring re-forms.
  synchronous_ = false;
  last_fallback_ = "resumed from a checkpoint";
}

nlohmann::json AllreduceSync::status() const {
  std::lock_guard lock(mutex_);
  return {{"what", options_.gradients ? "gradients" : "parameters"},
          {"state", synchronous_ ? "allreduce" : "fallback to gossip"},
          {"collective", next_tag_},
          {"collectives", collectives_},
          {"failed", failures_},
          {"fallbacks", fallbacks_},
          {"fallback_gossip_rounds", gossip_rounds_},
          {"ring", ring_size_},
          {"last_fallback", last_fallback_},
          {"last_collective_seconds", last_seconds_}};
}

double AllreduceSync::consensus_distance() const {
  std::lock_guard lock(mutex_);
  return consensus_distance_;
}

}  // namespace starling::daemon
