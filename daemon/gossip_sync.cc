#include "daemon/gossip_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "daemon/checkpoint_extras.h"
#include "daemon/cluster_view.h"

namespace starling::daemon {

using Clock = std::chrono::steady_clock;

// How far behind its most advanced neighbour a node may fall before it jumps ahead. On a
// time-varying graph healthy nodes drift several rounds apart (each round depends on one peer
// only), and a jump skips rounds other nodes are waiting for, so only a node beyond the mailbox
// window (whose neighbours' messages it could not even buffer) rejoins by jumping.
constexpr std::uint64_t kRealignSlack = gossip::GossipAverager::kDefaultWindow;

GossipSync::GossipSync(gossip::Transport& transport, const topology::Topology& topology,
                       GossipSyncOptions options, MetricsLog& metrics)
    : transport_(transport),
      topology_(topology),
      options_(options),
      schedule_(options.period_schedule, options.period),
      metrics_(metrics),
      averager_(transport, topology, options.round_timeout,
                gossip::GossipAverager::kDefaultWindow, options.precision),
      ring_(transport, gossip::AllreduceOptions{.timeout = options.collective_timeout}) {
  // Sync requests carry the round they are for; any round is accepted, once per sender.
  transport_.mailbox().set_window(gossip::MessageType::sync_request, 0,
                                  std::numeric_limits<std::uint64_t>::max());
  // The final allreduce is the one collective every node runs, and a node restarted from an
  // old checkpoint may hear its peers' chunks for it before it has caught up with them (or
  // before start()): refused then, they would be lost, and the collective would wait out its
  // whole timeout. Its tag is the last round + 1: the rounds through the last step (the one
  // at the last step may or may not run) plus final_rounds, and a tag per retry.
  if (options_.final_allreduce && options_.total_steps > 0) {
    ring_.keep_open_through(schedule_.rounds_through(options_.total_steps) +
                            static_cast<std::uint64_t>(options_.final_rounds) +
                            kFinalAllreduceAttempts);
    ring_.expect(next_round_);
  }
}

GossipSync::~GossipSync() = default;

void GossipSync::start(training::Trainer& trainer) {
  transport_.set_progress(next_round_, static_cast<std::uint64_t>(trainer.step_count()));
  wait_for_peers(transport_, topology_.graph().neighbours(transport_.self()),
                 options_.startup_timeout, "neighbours", stop_check_);
  // A restarted node rejoins at the round its neighbours are at (and at the matching step),
  // and from now on buffers their messages for the rounds it is about to run. (A fresh node
  // starts at round 0 like everyone: neighbours that started a little earlier are a round or
  // two ahead and wait.)
  if (resumed_) {
    const auto neighbours = topology_.graph().neighbours(transport_.self());
    await_first_reports([&] { return latest_reported(transport_, neighbours); });
  }
  std::lock_guard lock(mutex_);
  if (resumed_) catch_up_locked(trainer, 0, /*launching_now=*/false);
  averager_.expect_round(next_round_);
  ring_.expect(next_round_);
}

void GossipSync::catch_up_locked(training::Trainer& trainer, std::uint64_t slack,
                                 bool launching_now) {
  std::uint64_t round = averager_.catch_up(next_round_, slack);
  if (round <= next_round_) return;
  // Round r is launched at step step_of_round(r): now, or at the next sync point from the
  // step of round r - 1.
  auto step_for = [&](std::uint64_t r) -> std::int64_t {
    if (launching_now) return schedule_.step_of_round(r);
    return r == 0 ? 0 : schedule_.step_of_round(r - 1);
  };
  std::int64_t step = step_for(round);
  if (step > trainer.total_steps()) {  // the neighbours are finishing: end with them
    step = trainer.total_steps();
    // The last round that starts by the end (launching now), or the one after it.
    const std::uint64_t through = schedule_.rounds_through(step);
    const std::uint64_t last = launching_now ? (through == 0 ? 0 : through - 1) : through;
    round = std::max(next_round_, last);
  }
  const std::int64_t own = trainer.step_count();
  const std::uint64_t own_round = next_round_;
  if (step > own) trainer.advance_to_step(step);
  next_round_ = round;
  // Allreduces scheduled for the rounds it skipped will not run here (its peers ran or
  // failed them without it).
  for (auto it = scheduled_syncs_.begin(); it != scheduled_syncs_.end() && it->first < round;) {
    spdlog::warn("skipped the allreduce scheduled at round {} ({}): moved past it", it->first, it->second);
    it = scheduled_syncs_.erase(it);
  }
  spdlog::info("behind its neighbours: moved forward from round {} (step {}) to round {} "
               "(step {}), skipping {} steps; averaging brings this node's model in",
               own_round, own, next_round_, trainer.step_count(), trainer.step_count() - own);
  metrics_.write({{"event", "rejoined"}, {"step", trainer.step_count()},
                  {"skipped_steps", trainer.step_count() - own}, {"round", next_round_}});
}

void GossipSync::launch_round(training::Trainer& trainer, bool in_background) {
  std::uint64_t round;
  bool collective = false;
  {
    std::lock_guard lock(mutex_);
    // Rounds advance in lockstep with steps; only a node that fell clearly behind (stalled
    // while its neighbours went on) jumps, and it jumps in steps too, keeping the invariant
    // that round r is launched at step (r + 1) * period on every node. Jumping rounds alone
    // (as an earlier version did) left restarted nodes with rounds to run after their
    // neighbours had finished, each waiting out round_timeout, and final allreduces whose
    // tags (the last round) differed between nodes. (With a period schedule, "(r + 1) *
    // period" reads "step_of_round(r)".)
    catch_up_locked(trainer, kRealignSlack, /*launching_now=*/true);
    round = next_round_++;
    take_sync_requests_locked();
    collective = scheduled_syncs_.count(round) > 0;
    // Collectives are tagged with rounds: keep the window on the current round, so a peer's
    // collective for this round or the next 64 (a scheduled sync, kSyncLead rounds ahead, or
    // the final allreduce) is buffered even if it starts before this node gets there. The
    // window always follows the round: pinned at a scheduled sync that never ran (scheduled
    // past the last round, or skipped by a jump) it would refuse the final allreduce.
    ring_.expect(round);
  }
  if (collective) {
    run_collective_round(trainer, round);
    return;
  }
  trainer.pull_parameters();
  gossip::WireSnapshot snapshot = averager_.snapshot_of(trainer.parameters());
  if (in_background) {
    in_flight_.emplace(
        InFlight{snapshot, averager_.begin_exchange(round, snapshot), trainer.step_count()});
    // A node that reached the sync point after its in-neighbours already holds their
    // messages: it applies the round now, on time, instead of one step late.
    settle_in_flight(trainer, /*wait=*/false);
    return;
  }
  gossip::RoundExchange exchange = averager_.exchange(round, snapshot);
  apply(trainer, snapshot, exchange, trainer.step_count());
}

void GossipSync::take_sync_requests_locked() {
  while (auto request = transport_.mailbox().try_take_any(gossip::MessageType::sync_request)) {
    const std::uint64_t round = request->header().tag;
    const std::string& from = transport_.peers().id(request->sender());
    if (round < next_round_) {
      spdlog::warn("{} asked for an allreduce at round {}, which this node has passed (it is at "
                   "round {}); the collective will fail and fall back to gossip",
                   from, round, next_round_);
      continue;
    }
    scheduled_syncs_.emplace(round, "requested by " + from);
  }
}

std::uint64_t GossipSync::request_sync(const std::string& reason) {
  std::uint64_t round;
  {
    std::lock_guard lock(mutex_);
    round = next_round_ + kSyncLead;
    scheduled_syncs_.emplace(round, reason);
    last_sync_request_ = round;
  }
  gossip::OutgoingMessage request;
  request.type = gossip::MessageType::sync_request;
  request.tag = round;
  for (std::size_t peer = 0; peer < transport_.size(); ++peer) {
    if (peer != transport_.self() && !transport_.peers().is_dead(peer)) transport_.send(peer, request);
  }
  spdlog::info("scheduled an allreduce of all live nodes at round {}: {}", round, reason);
  return round;
}

void GossipSync::run_collective_round(training::Trainer& trainer, std::uint64_t round) {
  settle_in_flight(trainer, true);  // the pending mix goes in before the parameters are averaged
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    reason = scheduled_syncs_[round];
    scheduled_syncs_.erase(round);
  }
  auto members = live_members(transport_);
  auto result = average_parameters(ring_, trainer, round, members, collective_scratch_);
  std::vector<std::string> names;
  for (std::size_t m : members) names.push_back(topology_.names()[m]);
  metrics_.write({{"event", "allreduce"},
                  {"step", trainer.step_count()},
                  {"round", round},
                  {"ok", result.ok},
                  {"members", names},
                  {"reason", reason},
                  {"error", result.error},
                  {"seconds", std::chrono::duration<double>(result.elapsed).count()}});
  {
    std::lock_guard lock(mutex_);
    (result.ok ? allreduces_ok_ : allreduces_failed_)++;
    last_allreduce_ = (result.ok ? "round " + std::to_string(round) + " ok"
                                 : "round " + std::to_string(round) + " failed: " + result.error) +
                      " (" + reason + ")";
  }
  if (result.ok) {
    spdlog::info("round {}: allreduce of {} nodes ({}) done", round, members.size(), reason);
    return;
  }
  // Hand back to gossip: run round `round` as a gossip round, as peers that did not take part
  // in the collective do.
  spdlog::warn("round {}: allreduce failed ({}); running it as a gossip round", round, result.error);
  auto round_result = gossip_round_now(averager_, trainer, round);
  std::lock_guard lock(mutex_);
  ++rounds_;
  neighbours_left_out_ += round_result.missing.size();
  last_distance_ = round_result.consensus_distance;
}

void GossipSync::apply(training::Trainer& trainer, const gossip::WireSnapshot& snapshot,
                       gossip::RoundExchange& exchange, std::int64_t snapshot_step) {
  const std::int64_t lag_steps = trainer.step_count() - snapshot_step;
  // On CUDA the host span is a mirror last pulled at this round's snapshot; the steps taken
  // since then live on the device. Without this pull the push below would put the snapshot
  // back and drop them (on the CPU the span is the live model and the pull does nothing).
  trainer.pull_parameters();
  // x <- x + (m - x_s): keeps the local progress made since the snapshot.
  averager_.add_round_delta(exchange, snapshot, trainer.parameters());
  trainer.push_parameters();

  const auto& r = exchange.result;
  std::vector<std::string> missing;
  for (std::size_t peer : r.missing) missing.push_back(topology_.names()[peer]);
  double waited_ms = std::chrono::duration<double, std::milli>(r.waited).count();
  bool over_bound = false;
  {
    std::lock_guard lock(mutex_);
    ++rounds_;
    apply_lag_steps_ += static_cast<std::uint64_t>(lag_steps);
    // A round applied at a sync point after steps of training was carried there from the
    // previous one: a whole period late (a round applied on time has lag 0).
    if (lag_steps > 0 && schedule_.is_sync_point(trainer.step_count())) ++rounds_a_period_late_;
    neighbours_left_out_ += r.missing.size();
    last_distance_ = r.consensus_distance;
    last_wait_ms_ = waited_ms;
    // Fallback to allreduce when the replicas drift apart, at most once per 2 * kSyncLead rounds.
    over_bound = options_.consensus_bound > 0 && r.consensus_distance > options_.consensus_bound &&
                 (last_sync_request_ == 0 || next_round_ >= last_sync_request_ + kSyncLead);
  }
  if (over_bound) {
    request_sync("consensus distance " + std::to_string(r.consensus_distance) + " above bound " +
                 std::to_string(options_.consensus_bound));
  }
  const auto now = Clock::now();
  const bool log_round = options_.round_metrics_interval.count() == 0 || !missing.empty() ||
                         !last_round_line_ ||
                         now - *last_round_line_ >= options_.round_metrics_interval;
  if (!log_round) return;
  last_round_line_ = now;
  metrics_.write({{"event", "gossip"},
                  {"step", trainer.step_count()},
                  {"round", r.round},
                  {"received", r.received},
                  {"expected", r.expected},
                  {"left_out", missing},
                  {"self_weight", r.self_weight},
                  {"consensus_distance", r.consensus_distance},
                  {"waited_ms", waited_ms},
                  {"applied_after_steps", lag_steps}});
}

void GossipSync::settle_in_flight(training::Trainer& trainer, bool wait) {
  if (!in_flight_) return;
  if (!averager_.poll_exchange(in_flight_->pending)) {
    if (!wait) return;
    // Bounded: every wait in an exchange has the round's deadline.
    const auto start = Clock::now();
    averager_.finish_exchange(in_flight_->pending);
    std::lock_guard lock(mutex_);
    blocked_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  }
  InFlight round = std::move(*in_flight_);
  in_flight_.reset();
  apply(trainer, round.snapshot, round.pending.exchange, round.snapshot_step);
}

void GossipSync::after_step(training::Trainer& trainer) {
  const std::int64_t step = trainer.step_count();
  // Over ring links, payloads move only when this thread moves them (a round in flight does
  // in settle_in_flight; this covers the steps between rounds).
  if (!in_flight_) averager_.progress_links();
  // A round is applied at the first step boundary after its exchange completes, and at the
  // latest at the next sync point: at most one round is in flight across a sync point.
  const bool sync_point = schedule_.is_sync_point(step);
  settle_in_flight(trainer, sync_point);
  if (sync_point) launch_round(trainer, options_.staleness > 0);
  std::uint64_t next;
  {
    std::lock_guard lock(mutex_);
    next = next_round_;
  }
  // (The step may have moved forward in launch_round.)
  transport_.set_progress(next, static_cast<std::uint64_t>(trainer.step_count()));
}

void GossipSync::finish(training::Trainer& trainer, bool stopping) {
  settle_in_flight(trainer, true);
  if (stopping) return;
  // Extra rounds without training pull the replicas together before the final evaluation.
  for (std::int64_t i = 0; i < options_.final_rounds; ++i) launch_round(trainer, false);
  if (options_.final_allreduce) {
    std::uint64_t tag;
    {
      std::lock_guard lock(mutex_);
      tag = next_round_++;  // rounds are in lockstep: every node ends at the same one
    }
    final_average(trainer, tag, transport_, metrics_, collective_scratch_, stop_check_);
  }
}

void GossipSync::save_state(training::CheckpointExtras& extras) const {
  std::lock_guard lock(mutex_);
  put_u64(extras, "gossip.next_round", next_round_);
}

void GossipSync::restore_state(const training::CheckpointExtras& extras) {
  std::lock_guard lock(mutex_);
  resumed_ = true;
  if (auto round = get_u64(extras, "gossip.next_round")) next_round_ = *round;
}

nlohmann::json GossipSync::status() const {
  std::lock_guard lock(mutex_);
  return {{"round", next_round_},
          {"rounds", rounds_},
          {"neighbours_left_out", neighbours_left_out_},
          {"consensus_distance", last_distance_},
          {"last_wait_ms", last_wait_ms_},
          {"blocked_seconds", blocked_seconds_},
          {"apply_lag_steps", apply_lag_steps_},
          {"rounds_a_period_late", rounds_a_period_late_},
          {"mean_apply_lag_steps",
           rounds_ == 0 ? 0.0 : static_cast<double>(apply_lag_steps_) / static_cast<double>(rounds_)},
          {"period", next_round_ == 0 ? schedule_.step_of_round(0)
                                      : schedule_.step_of_round(next_round_) -
                                            schedule_.step_of_round(next_round_ - 1)},
          {"staleness", options_.staleness},
          {"wire_precision", gossip::to_string(options_.precision)},
          {"allreduces", allreduces_ok_},
          {"allreduces_failed", allreduces_failed_},
          {"last_allreduce", last_allreduce_},
          {"consensus_bound", options_.consensus_bound}};
}

double GossipSync::consensus_distance() const {
  std::lock_guard lock(mutex_);
  return last_distance_;
}

}  // namespace starling::daemon
