#pragma once
// PeerTable: what this node knows about every other node of the cluster — liveness, round-trip
// time, traffic each way, and rejected messages by reason.
//
// Liveness is derived from silence: a peer is alive while we have heard a valid message from it
// within suspect_after, suspect until dead_after, then dead; "connecting" until first heard,
// and dead if it is never heard within never_seen_dead_after.
//
// Slow links: the silence allowed grows with the measured round-trip time. Everything a peer
// sends travels behind the models queued ahead of it, on its connection and in the link's
// buffers, so over a link that takes a second to carry one model a healthy peer is silent for
// a second or more at every exchange. A fixed suspect_after would then declare it suspect at
// every exchange (and rounds stop waiting for it, so the cluster trains apart). As TCP derives
// its retransmission timeout from SRTT + 4 RTTVAR, a peer is suspect after
// max(suspect_after, SRTT + 4 RTTVAR), capped at max_suspect_after, and dead that much later
// than dead_after. On a LAN or loopback (round trips of milliseconds) the configured times hold.
// A dead peer that speaks again is alive and marked `back` (and counted in `returns`).
// update() is called periodically by the network thread and reports transitions, which are
// logged and wake algorithms waiting on a peer that just died.
//
// Thread-safety: all methods lock an internal mutex (a leaf lock).
#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gossip/wire.h"

namespace starling::gossip {

enum class PeerState { connecting, alive, suspect, dead };
std::string_view to_string(PeerState state);

struct PeerTiming {
  std::chrono::milliseconds suspect_after{1000};
  std::chrono::milliseconds dead_after{3000};
  // A peer never heard from since the table was created is declared dead after this long
  // (nodes of a cluster start seconds apart, so this is longer than dead_after).
  std::chrono::milliseconds never_seen_dead_after{60000};
  // The most the round-trip time may stretch suspect_after to (see the comment at the top).
  std::chrono::milliseconds max_suspect_after{30000};
};

struct PeerInfo {
  std::string id;
  PeerState state = PeerState::connecting;
  bool back = false;            // alive again after having been dead
  std::uint64_t returns = 0;    // times it came back from dead
  std::optional<std::chrono::steady_clock::time_point> last_seen;
  double rtt_ms = -1;           // smoothed round-trip time; -1 until measured
  double rtt_var_ms = 0;        // its mean deviation (TCP's RTTVAR)
  // Silence after which this peer is suspect: suspect_after, stretched by slow round trips.
  std::chrono::milliseconds suspect_after{0};
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t send_failures = 0;  // sends the transport could not queue (peer unreachable)
  std::array<std::uint64_t, kRejectReasonCount> rejected{};
  std::uint64_t incarnation = 0;
  std::uint64_t reported_round = 0;  // its next gossip round, from its heartbeats
  std::uint64_t reported_step = 0;
  bool paused = false;               // its heartbeats say its training is paused
  bool fingerprint_mismatch = false;  // it runs another model; we refuse it
  // Our connection to it closed and has not been made again: its process is gone (a crash
  // closes its sockets), whatever its silence says yet. Set and cleared by the transport.
  bool connection_lost = false;
  // Where its ring link listens (ring_links.h), from its heartbeat acks; 0 until known.
  std::uint16_t ring_port = 0;
};

struct PeerTransition {
  std::size_t peer;
  PeerState from;
  PeerState to;
};

class PeerTable {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  PeerTable(std::vector<std::string> ids, std::size_t self, PeerTiming timing);

  std::size_t size() const { return size_; }
  std::size_t self() const { return self_; }
  const std::string& id(std::size_t peer) const { return peers_[peer].id; }  // immutable

  // A valid message arrived from `peer` (the caller has already validated it).
  void on_received(std::size_t peer, std::size_t bytes, std::uint64_t incarnation, TimePoint now);
  void on_heartbeat(std::size_t peer, std::uint64_t round, std::uint64_t step, bool paused = false);
  void on_rtt(std::size_t peer, std::chrono::nanoseconds rtt);
  void on_sent(std::size_t peer, std::size_t bytes);
  void on_send_failure(std::size_t peer);
  // Counts a rejection; returns true the first time this peer is rejected for this reason, so
  // the caller logs once per peer and reason.
  bool on_rejected(std::size_t peer, RejectReason reason);
  // Rejections from connections that are not cluster members.
  bool on_rejected_unknown(RejectReason reason);
  void on_fingerprint_mismatch(std::size_t peer);
  // Our connection to `peer` closed (up = false) or completed its handshake (up = true).
  void on_connection(std::size_t peer, bool up);

  // The port `peer`'s ring link listens on, as its heartbeat acks report it (0: none).
  void on_ring_port(std::size_t peer, std::uint16_t port);
  std::uint16_t ring_port(std::size_t peer) const;

  // For transports that learn liveness out of band (the in-process fake): sets the state now.
  void declare(std::size_t peer, PeerState state);

  // Recomputes states from silence; returns what changed.
  std::vector<PeerTransition> update(TimePoint now);

  PeerState state(std::size_t peer) const;
  bool is_dead(std::size_t peer) const { return state(peer) == PeerState::dead; }
  bool is_alive(std::size_t peer) const { return state(peer) == PeerState::alive; }
  // Alive but paused: it answers, yet runs no rounds or collectives until it resumes.
  bool is_paused(std::size_t peer) const;
  // Alive and training: a peer worth waiting for in a round or a collective.
  bool is_active(std::size_t peer) const { return is_alive(peer) && !is_paused(peer); }
  // Alive or suspect: worth sending to and waiting for (until it is declared dead).
  bool is_reachable(std::size_t peer) const;
  bool connection_lost(std::size_t peer) const;
  // Sends to `peer` the transport could not queue so far (a collective compares two readings:
  // a chunk that was never sent is never received).
  std::uint64_t send_failures(std::size_t peer) const;
  // The silences after which `peer` is suspect and dead (the configured ones, stretched by
  // slow round trips).
  std::chrono::milliseconds suspect_after(std::size_t peer) const;
  std::chrono::milliseconds dead_after(std::size_t peer) const;
  std::uint64_t reported_round(std::size_t peer) const;
  std::uint64_t reported_step(std::size_t peer) const;
  // The newest process of `peer` heard from (its start time; 0 before any message).
  std::uint64_t incarnation(std::size_t peer) const;
  std::vector<PeerInfo> snapshot() const;
  // Whether some peer that is not dead has no round trip measured yet (a node is not ready to
  // train until it has one for each neighbour: see daemon/cluster_view.h, wait_for_peers).
  bool awaiting_round_trips() const;
  // Whether a round trip to `peer` has ever been measured.
  bool has_round_trip(std::size_t peer) const;
  std::array<std::uint64_t, kRejectReasonCount> unknown_rejections() const;
  // Connections that failed the ZeroMQ handshake (garbage on the data port).
  void on_handshake_failure();
  std::uint64_t handshake_failures() const;

 private:
  PeerState derive(const PeerInfo& info, TimePoint now) const;  // requires mutex_
  std::chrono::milliseconds allowed_silence(double rtt_ms, double rtt_var_ms) const;

  mutable std::mutex mutex_;
  std::size_t size_;
  std::size_t self_;
  PeerTiming timing_;
  TimePoint created_;
  std::vector<PeerInfo> peers_;
  std::array<std::uint64_t, kRejectReasonCount> unknown_{};
  std::uint64_t handshake_failures_ = 0;
};

}  // namespace starling::gossip
