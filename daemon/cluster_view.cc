#include "daemon/cluster_view.h"

#include <spdlog/spdlog.h>

#include "daemon/metrics_log.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

namespace starling::daemon {

using Clock = std::chrono::steady_clock;

std::vector<std::size_t> live_members(gossip::Transport& transport) {
  std::vector<std::size_t> members;
  const auto table = transport.peers().snapshot();
  for (std::size_t i = 0; i < table.size(); ++i) {
    // A paused node answers but runs no collectives: a ring with it would wait it out.
    if (i == transport.self() || (table[i].state == gossip::PeerState::alive && !table[i].paused)) {
      members.push_back(i);
    }
  }
  return members;
}

std::uint64_t latest_reported(gossip::Transport& transport, const std::vector<std::size_t>& peers) {
  std::uint64_t latest = 0;
  for (std::size_t peer : peers) {
    if (peer != transport.self() && transport.peers().is_reachable(peer)) {
      latest = std::max(latest, transport.peers().reported_round(peer));
    }
  }
  return latest;
}

std::int64_t latest_reported_step(gossip::Transport& transport, const std::vector<std::size_t>& peers) {
  std::uint64_t latest = 0;
  for (std::size_t peer : peers) {
    if (peer != transport.self() && transport.peers().is_reachable(peer)) {
      latest = std::max(latest, transport.peers().reported_step(peer));
    }
  }
  return static_cast<std::int64_t>(latest);
}

void await_first_reports(const std::function<std::uint64_t()>& reported) {
  const auto patience = Clock::now() + std::chrono::seconds(2);
  while (reported() == 0 && Clock::now() < patience) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::int64_t rejoin_peers_step(training::Trainer& trainer, gossip::Transport& transport,
                               const std::vector<std::size_t>& peers) {
  const std::int64_t own = trainer.step_count();
  await_first_reports([&] { return static_cast<std::uint64_t>(latest_reported_step(transport, peers)); });
  // Never past the end: a node whose peers finished still finishes (and evaluates) itself.
  const std::int64_t target = std::min(latest_reported_step(transport, peers), trainer.total_steps());
  if (target <= own) return 0;
  trainer.advance_to_step(target);
  spdlog::info("resumed at step {}, behind its peers: moved forward to step {} ({} steps "
               "skipped; averaging brings this node's older model in)",
               own, target, target - own);
  return target - own;
}

void wait_for_peers(gossip::Transport& transport, const std::vector<std::size_t>& peers,
                    std::chrono::milliseconds timeout, const std::string& what,
                    const std::function<bool()>& stop) {
  if (peers.empty()) return;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  auto missing = [&] {
    std::vector<std::string> names;
    auto table = transport.peers().snapshot();
    for (std::size_t j : peers) {
      if (table[j].state != gossip::PeerState::alive || table[j].rtt_ms < 0) {
        names.push_back(table[j].id);
      }
    }
    return names;
  };
  auto last_report = start;
  while (true) {
    auto names = missing();
    if (names.empty()) {
      spdlog::info("all {} {} connected after {:.1f} s", peers.size(), what,
                   std::chrono::duration<double>(Clock::now() - start).count());
      return;
    }
    if (stop && stop()) {
      spdlog::info("stopped while waiting for {}: {}", what, fmt::join(names, ", "));
      return;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      spdlog::warn("starting without {} (not reachable after {} ms); they join when they come up",
                   fmt::join(names, ", "), timeout.count());
      return;
    }
    if (now - last_report >= std::chrono::seconds(5)) {
      spdlog::info("waiting for {}: {}", what, fmt::join(names, ", "));
      last_report = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

gossip::AllreduceResult average_parameters(gossip::RingAllreduce& ring, training::Trainer& trainer,
                                           std::uint64_t tag, const std::vector<std::size_t>& members,
                                           std::vector<float>& scratch) {
  trainer.pull_parameters();
  auto params = trainer.parameters();
  scratch.resize(params.size());
  auto result = ring.run(tag, members, params, scratch, kParameterCollective);
  if (result.ok) {
    std::memcpy(params.data(), scratch.data(), params.size_bytes());
    trainer.push_parameters();
  }
  return result;
}

std::optional<std::int64_t> agree_on_step(gossip::RingAllreduce& ring, std::uint64_t tag,
                                          const std::vector<std::size_t>& members,
                                          std::size_t self, std::int64_t step) {
  constexpr int kParts = 4, kBits = 11;
  constexpr std::int64_t kPart = std::int64_t{1} << kBits;
  if (step < 0 || step >= (std::int64_t{1} << (kParts * kBits))) {
    throw std::invalid_argument("agree_on_step: step " + std::to_string(step) + " out of range");
  }
  const auto position = static_cast<std::size_t>(
      std::find(members.begin(), members.end(), self) - members.begin());
  std::vector<float> slots(kParts * members.size(), 0.0f), agreed(slots.size());
  for (int k = 0; k < kParts; ++k) {
    slots[kParts * position + k] = static_cast<float>((step >> (kBits * k)) & (kPart - 1));
  }
  if (!ring.run(tag, members, slots, agreed, kStepCollective).ok) return std::nullopt;
  const double scale = ring.options().mean ? static_cast<double>(members.size()) : 1.0;
  std::int64_t largest = 0;
  for (std::size_t m = 0; m < members.size(); ++m) {
    std::int64_t value = 0;
    for (int k = 0; k < kParts; ++k) {
      const double part = static_cast<double>(agreed[kParts * m + k]) * scale;
      const double rounded = std::round(part);
      // Each slot held one member's integer part, so anything else is not a step.
      if (std::abs(part - rounded) > 0.25 || rounded < 0 || rounded >= kPart) return std::nullopt;
      value |= static_cast<std::int64_t>(rounded) << (kBits * k);
    }
    largest = std::max(largest, value);
  }
  return largest;
}

gossip::GossipRoundResult gossip_round_now(gossip::GossipAverager& averager,
                                           training::Trainer& trainer, std::uint64_t round) {
  trainer.pull_parameters();
  auto params = trainer.parameters();
  auto snapshot = std::make_shared<const std::vector<float>>(params.begin(), params.end());
  std::vector<float> delta(snapshot->size());
  auto result = averager.run_round(round, snapshot, delta, gossip::GossipAverager::Output::delta);
  for (std::size_t k = 0; k < params.size(); ++k) params[k] += delta[k];
  trainer.push_parameters();
  return result;
}

namespace {

// The live nodes (self included) whose heartbeats say they have trained as far as this node:
// the ones at their own final allreduce. A node still training (restarted from an older
// checkpoint after the first attempt failed) is not waited for again.
std::vector<std::size_t> finished_live_members(gossip::Transport& transport, std::int64_t step) {
  std::vector<std::size_t> members;
  for (std::size_t m : live_members(transport)) {
    if (m == transport.self() ||
        transport.peers().reported_step(m) >= static_cast<std::uint64_t>(step)) {
      members.push_back(m);
    }
  }
  return members;
}

}  // namespace

void final_average(training::Trainer& trainer, std::uint64_t tag, gossip::Transport& transport,
                   MetricsLog& metrics, std::vector<float>& scratch,
                   const std::function<bool()>& stop) {
  auto stopping = [&] { return stop && stop(); };
  const auto deadline = Clock::now() + kFinalAllreduceTimeout;
  const std::int64_t step = trainer.step_count();
  std::vector<std::size_t> members = live_members(transport);
  for (std::uint64_t attempt = 0;; ++attempt) {
    // Every attempt has its own tag. A failed attempt fails for every member (the one that
    // gives up tells the others), so the survivors count attempts alike.
    const std::uint64_t attempt_tag = tag + attempt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    gossip::RingAllreduce ring(transport, gossip::AllreduceOptions{.timeout = left, .stop = stopping},
                               attempt_tag);
    auto result = average_parameters(ring, trainer, attempt_tag, members, scratch);
    metrics.write({{"event", "final_allreduce"},
                   {"ok", result.ok},
                   {"attempt", attempt},
                   {"members", members.size()},
                   {"error", result.error},
                   {"seconds", std::chrono::duration<double>(result.elapsed).count()}});
    if (result.ok) {
      spdlog::info("final allreduce of {} nodes done", members.size());
      return;
    }
    if (stopping()) {
      spdlog::warn("final allreduce abandoned: stop requested ({}); keeping this node's own model",
                   result.error);
      return;
    }
    if (attempt + 1 >= kFinalAllreduceAttempts || Clock::now() + kFinalRetryPatience >= deadline) {
      spdlog::warn("final allreduce failed ({}); keeping this node's own model", result.error);
      return;
    }
    // Wait until this node's view of who is left changes (a dead member stops being alive
    // after suspect_after_ms), or at most kFinalRetryPatience, then try again without it.
    // Polled, as wait_for_peers polls: the peer table announces no changes, and this runs
    // once per failed attempt at the end of a run.
    const auto failed = members;
    const auto patience = Clock::now() + kFinalRetryPatience;
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      members = finished_live_members(transport, step);
    } while (members == failed && Clock::now() < patience && !stopping());
    if (stopping()) {
      spdlog::warn("final allreduce abandoned: stop requested; keeping this node's own model");
      return;
    }
    spdlog::warn("final allreduce of {} nodes failed ({}); trying again with the {} live nodes "
                 "that have finished training",
                 failed.size(), result.error, members.size());
  }
}

}  // namespace starling::daemon
