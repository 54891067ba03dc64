#include "gossip/peer_table.h"

#include <algorithm>
#include <cmath>

namespace starling::gossip {

std::string_view to_string(PeerState state) {
  switch (state) {
    case PeerState::connecting: return "connecting";
    case PeerState::alive: return "alive";
    case PeerState::suspect: return "suspect";
    case PeerState::dead: return "dead";
  }
  return "?";
}

PeerTable::PeerTable(std::vector<std::string> ids, std::size_t self, PeerTiming timing)
    : size_(ids.size()),
      self_(self),
      timing_(timing),
      created_(std::chrono::steady_clock::now()),
      peers_(ids.size()) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    peers_[i].id = std::move(ids[i]);
    peers_[i].suspect_after = timing_.suspect_after;
  }
  peers_[self].state = PeerState::alive;  // we always hear ourselves
}

void PeerTable::on_received(std::size_t peer, std::size_t bytes, std::uint64_t incarnation,
                            TimePoint now) {
  std::lock_guard lock(mutex_);
  PeerInfo& p = peers_[peer];
  p.last_seen = now;
  p.bytes_received += bytes;
  ++p.messages_received;
  p.incarnation = std::max(p.incarnation, incarnation);
  p.fingerprint_mismatch = false;
}

void PeerTable::on_heartbeat(std::size_t peer, std::uint64_t round, std::uint64_t step, bool paused) {
  std::lock_guard lock(mutex_);
  peers_[peer].reported_round = round;
  peers_[peer].reported_step = step;
  peers_[peer].paused = paused;
}

bool PeerTable::is_paused(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].paused;
}

void PeerTable::on_rtt(std::size_t peer, std::chrono::nanoseconds rtt) {
  std::lock_guard lock(mutex_);
  double ms = std::chrono::duration<double, std::milli>(rtt).count();
  PeerInfo& p = peers_[peer];
  if (p.rtt_ms < 0) {  // RFC 6298's first measurement
    p.rtt_ms = ms;
    p.rtt_var_ms = ms / 2;
  } else {  // RTTVAR is updated with the SRTT before this sample
    p.rtt_var_ms = 0.75 * p.rtt_var_ms + 0.25 * std::abs(p.rtt_ms - ms);
    p.rtt_ms = 0.8 * p.rtt_ms + 0.2 * ms;  // EWMA, as TCP's SRTT
  }
  p.suspect_after = allowed_silence(p.rtt_ms, p.rtt_var_ms);
}

std::chrono::milliseconds PeerTable::allowed_silence(double rtt_ms, double rtt_var_ms) const {
  const double stretched = rtt_ms + 4 * rtt_var_ms;
  const double most = static_cast<double>(
      std::max(timing_.max_suspect_after, timing_.suspect_after).count());
  const auto ms = static_cast<std::int64_t>(std::ceil(std::min(stretched, most)));
  return std::max(timing_.suspect_after, std::chrono::milliseconds(ms));
}

void PeerTable::on_sent(std::size_t peer, std::size_t bytes) {
  std::lock_guard lock(mutex_);
  peers_[peer].bytes_sent += bytes;
  ++peers_[peer].messages_sent;
}

void PeerTable::on_send_failure(std::size_t peer) {
  std::lock_guard lock(mutex_);
  ++peers_[peer].send_failures;
}

std::uint64_t PeerTable::send_failures(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].send_failures;
}

void PeerTable::on_ring_port(std::size_t peer, std::uint16_t port) {
  std::lock_guard lock(mutex_);
  peers_[peer].ring_port = port;
}

std::uint16_t PeerTable::ring_port(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].ring_port;
}

bool PeerTable::on_rejected(std::size_t peer, RejectReason reason) {
  std::lock_guard lock(mutex_);
  return ++peers_[peer].rejected[static_cast<std::size_t>(reason)] == 1;
}

bool PeerTable::on_rejected_unknown(RejectReason reason) {
  std::lock_guard lock(mutex_);
  return ++unknown_[static_cast<std::size_t>(reason)] == 1;
}

void PeerTable::on_fingerprint_mismatch(std::size_t peer) {
  std::lock_guard lock(mutex_);
  peers_[peer].fingerprint_mismatch = true;
}

void PeerTable::on_connection(std::size_t peer, bool up) {
  std::lock_guard lock(mutex_);
  peers_[peer].connection_lost = !up;
}

bool PeerTable::connection_lost(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].connection_lost;
}

std::chrono::milliseconds PeerTable::suspect_after(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].suspect_after;
}

std::chrono::milliseconds PeerTable::dead_after(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return timing_.dead_after + (peers_[peer].suspect_after - timing_.suspect_after);
}

void PeerTable::declare(std::size_t peer, PeerState state) {
  std::lock_guard lock(mutex_);
  PeerInfo& p = peers_[peer];
  if (p.state == PeerState::dead && state == PeerState::alive) {
    p.back = true;
    ++p.returns;
  }
  p.state = state;
}

PeerState PeerTable::derive(const PeerInfo& info, TimePoint now) const {
  if (!info.last_seen) {
    return now - created_ >= timing_.never_seen_dead_after ? PeerState::dead
                                                           : PeerState::connecting;
  }
  auto silence = now - *info.last_seen;
  // Both thresholds move by what the round trips added to suspect_after.
  const auto stretch = info.suspect_after - timing_.suspect_after;
  if (silence >= timing_.dead_after + stretch) return PeerState::dead;
  if (silence >= info.suspect_after) return PeerState::suspect;
  return PeerState::alive;
}

std::vector<PeerTransition> PeerTable::update(TimePoint now) {
  std::lock_guard lock(mutex_);
  std::vector<PeerTransition> transitions;
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    if (i == self_) continue;
    PeerInfo& p = peers_[i];
    PeerState next = derive(p, now);
    if (next == p.state) continue;
    if (p.state == PeerState::dead && next == PeerState::alive) {
      p.back = true;
      ++p.returns;
    }
    transitions.push_back({i, p.state, next});
    p.state = next;
  }
  return transitions;
}

PeerState PeerTable::state(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].state;
}

bool PeerTable::is_reachable(std::size_t peer) const {
  PeerState s = state(peer);
  return s == PeerState::alive || s == PeerState::suspect;
}

std::uint64_t PeerTable::reported_round(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].reported_round;
}

std::uint64_t PeerTable::reported_step(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].reported_step;
}

std::uint64_t PeerTable::incarnation(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].incarnation;
}

bool PeerTable::awaiting_round_trips() const {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < peers_.size(); ++i) {
    if (i != self_ && peers_[i].rtt_ms < 0 && peers_[i].state != PeerState::dead) return true;
  }
  return false;
}

bool PeerTable::has_round_trip(std::size_t peer) const {
  std::lock_guard lock(mutex_);
  return peers_[peer].rtt_ms >= 0;
}

std::vector<PeerInfo> PeerTable::snapshot() const {
  std::lock_guard lock(mutex_);
  return peers_;
}

std::array<std::uint64_t, kRejectReasonCount> PeerTable::unknown_rejections() const {
  std::lock_guard lock(mutex_);
  return unknown_;
}

void PeerTable::on_handshake_failure() {
  std::lock_guard lock(mutex_);
  ++handshake_failures_;
}

std::uint64_t PeerTable::handshake_failures() const {
  std::lock_guard lock(mutex_);
  return handshake_failures_;
}

}  // namespace starling::gossip
