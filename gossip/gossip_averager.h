#pragma once
// GossipAverager: one node's side of fixed-topology gossip averaging (D-PSGD style mixing,
// x_i <- sum_j W_ij x_j), one round at a time, on flat float buffers.
//
// A round: send my snapshot to this round's out-neighbours, wait (until a per-round deadline)
// for each in-neighbour's message of the same round, and mix. There is no global barrier: a
// node only ever waits for its own in-neighbours, and never past the deadline, nor for a
// neighbour that is dead, paused or whose connection closed (a merely suspect one is waited
// for: over a slow link, silence is normal; see not_coming). A neighbour left out gives its
// weight to this node, so the mixed vector is still a convex combination (the round is
// complete and atomic either way).
//
// Wire precision. With f16 the snapshot goes out as binary16 (half the bytes) and what arrives
// is widened back to float before mixing. For Output::delta (what the daemon applies) the
// node's own term is its snapshot *as its neighbours received it*, rounded to binary16 too:
// the delta is then sum_j W_ij (q(x_j) - q(x_i)), and the deltas of all nodes sum to zero
// for a doubly stochastic W, exactly as with f32, so compression never moves the cluster's
// average model; rounding only adds noise of relative size 2^-11 to the disagreement, which
// gossip keeps contracting. (Output::mix uses the exact float snapshot for the own term.)
//
// With int8 (8-bit codes with a scale per block of 256, gossip/int8_blocks.h; a quarter of
// f32's bytes) the same holds: the own term is the snapshot as sent, q(x_i), so the deltas
// still sum to zero and only the disagreement gets noise, of about (block's largest |x|) / 254
// per value and round.
//
// Round numbers are tags on the wire. A node that fell behind (restarted, stalled) catches up
// by jumping to the round its live neighbours report (catch_up).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "gossip/int8_blocks.h"
#include "gossip/transport.h"
#include "gossip/wire_precision.h"
#include "topology/topology.h"

namespace starling::gossip {

struct GossipRoundResult {
  std::uint64_t round = 0;
  std::size_t expected = 0;             // in-neighbours in this round
  std::size_t received = 0;             // of which arrived in time and valid
  std::vector<std::size_t> missing;     // left out: their weight went to self
  double self_weight = 1.0;             // weight this node finally gave itself
  // ||x_i - mean(x_i and what arrived)||_2: this node's distance from its neighbourhood.
  double consensus_distance = 0.0;
  std::chrono::nanoseconds waited{0};   // time spent waiting for neighbours
};

// A node's snapshot for a round as it goes on the wire: the floats themselves (f32), the
// floats rounded to binary16 (f16), or their int8 payload (int8; `floats` is then set only
// when the caller needs the exact snapshot, for Output::mix). Shared with the transport until
// the sends complete.
struct WireSnapshot {
  std::shared_ptr<const std::vector<float>> floats;
  std::shared_ptr<const HalfBuffer> halves;
  std::shared_ptr<const Int8Buffer> int8;  // the whole payload: scales, then codes
  std::size_t int8_values = 0;             // values in `int8`
  std::size_t size() const {
    if (halves) return halves->size();
    if (int8) return int8_values;
    return floats ? floats->size() : 0;
  }
};

// One round's exchange without its mix: the in-neighbours' messages that arrived (kept alive
// here) and the weights to mix them with.
struct RoundExchange {
  GossipRoundResult result;             // everything but consensus_distance (the mix's)
  std::vector<ReceivedMessage> arrived;
  std::vector<double> weights;          // [0]: this node's, then one per arrived message
};

// A round whose snapshot is sent and whose neighbours' messages are still being collected
// (begin_exchange / poll_exchange / finish_exchange). Owned by one thread.
struct PendingRound {
  RoundExchange exchange;  // complete (arrived and weights in plan order) once done
  struct Slot {
    std::size_t peer = 0;
    double weight = 0.0;
    bool settled = false;  // arrived, or given up on
    std::optional<ReceivedMessage> message;
  };
  std::vector<Slot> slots;  // the in-neighbours, in plan order
  std::size_t length = 0;   // values per message
  Clock::time_point start{};
  Clock::time_point deadline{};
  bool done = false;
};

class GossipAverager {
 public:
  // `window`: how many rounds ahead of ours a neighbour's message is buffered; beyond it the
  // message is refused as outside the window.
  static constexpr std::uint64_t kDefaultWindow = 8;

  GossipAverager(Transport& transport, const topology::Topology& topology,
                 std::chrono::milliseconds round_timeout, std::uint64_t window = kDefaultWindow,
                 WirePrecision precision = WirePrecision::f32);

  WirePrecision precision() const { return precision_; }

  enum class Output { mix, delta };

  // Runs round `round` (must not be lower than any round run before). `snapshot` is sent
  // zero-copy and must not change until this returns. Writes the mix into `out` (or, with
  // Output::delta, the mix minus the snapshot: what to add to a model that moved on since the
  // snapshot). `out` may not alias `snapshot`. Returns within about round_timeout.
  GossipRoundResult run_round(std::uint64_t round,
                              std::shared_ptr<const std::vector<float>> snapshot,
                              std::span<float> out, Output output = Output::mix);

  // The same round in two halves, so that the thread that trains can apply it in one pass
  // over the model and wait only when it must: `snapshot_of` takes the snapshot in the
  // wire precision (one pass: a copy, or the rounding to binary16 or int8), `exchange` sends it and
  // collects the neighbours' (same rules and deadline as run_round), and `add_round_delta`
  // adds sum_j W_ij (x_j - s) to `model` (s: the snapshot as sent) and returns the
  // consensus distance, also stored in the exchange's result. The delta is the one
  // run_round's Output::delta gives; no buffer the size of the model is written in between.
  WireSnapshot snapshot_of(std::span<const float> model) const;
  RoundExchange exchange(std::uint64_t round, const WireSnapshot& snapshot);

  // exchange() for a caller that polls instead of blocking (the training thread between
  // steps): begin_exchange sends; poll_exchange takes what has arrived without waiting and
  // returns true once every neighbour arrived or was given up on (silent, two rounds ahead,
  // or past the deadline); finish_exchange waits for the rest, as exchange() does. The
  // result (pending.exchange) is the same whichever way it completed: messages and weights
  // in plan order, so the mix does not depend on arrival order.
  PendingRound begin_exchange(std::uint64_t round, const WireSnapshot& snapshot);
  bool poll_exchange(PendingRound& pending);
  void finish_exchange(PendingRound& pending);
  double add_round_delta(RoundExchange& exchange, const WireSnapshot& snapshot,
                         std::span<float> model) const;

  // With ring links (transport.ring_links()), gossip payloads travel over them, written and
  // read by the calling thread: this writes what the sockets take of queued payloads and
  // files what has arrived in the mailbox. The exchange calls it; a caller that trains calls
  // it between steps too, so that a payload too large for the socket at once keeps going
  // out, and neighbours' payloads do not wait in the socket. Does nothing without links.
  // `wait`: how long it may sleep for something to do (a waiting round).
  void progress_links(std::chrono::milliseconds wait = std::chrono::milliseconds(0));

  // Where a node that would run `round` should rejoin: the next round of the most advanced
  // reachable neighbour, if that is more than `slack` rounds ahead; else `round`. Rounds
  // otherwise advance in lockstep with local steps (one per period on every node), which keeps
  // time-varying graphs aligned; this only re-aligns a node that restarted or stalled.
  std::uint64_t catch_up(std::uint64_t round, std::uint64_t slack = 0) const;

  // Buffers neighbours' messages from `round` on (e.g. after restoring a round counter), before
  // the first run_round does.
  void expect_round(std::uint64_t round);

 private:
  // Whether to stop waiting for `peer`'s message of `round` (see exchange()).
  bool not_coming(std::size_t peer, std::uint64_t round) const;
  // poll_exchange without moving the links first: settles the slots whose payload is in the
  // mailbox or that are given up on; true once all are.
  bool take_arrived(PendingRound& pending);
  // Moves the settled slots into pending.exchange once all are settled.
  void complete(PendingRound& pending) const;
  // Queues `message` on the ring link to `peer`; false when there is no link to queue on.
  bool send_over_link(std::size_t peer, const OutgoingMessage& message);
  // finish_exchange over links: polls the links (and, every 10 ms, the mailbox) until done.
  void finish_over_links(PendingRound& pending);

  Transport& transport_;
  RingLinks* links_;  // null: payloads go through the transport (RingLinks::carries_gossip)
  const topology::Topology& topology_;
  std::chrono::milliseconds round_timeout_;
  std::uint64_t window_;
  WirePrecision precision_;
  MessageType message_type_;  // gossip_params, or its _f16 or _int8 form
  std::uint64_t last_round_ = 0;
  bool ran_ = false;
  // Whether this node has said that its model cannot go out in its wire precision (logged once).
  mutable std::atomic<bool> said_unsendable_{false};
};

// Mixes `inputs` with `weights` into `out`: out = sum_k weights[k] * inputs[k] (minus
// inputs[0] when `delta`), in input order (deterministic). Returns ||inputs[0] -
// mean(inputs)||_2, the consensus distance of input 0.
double mix_into(std::span<float> out, const std::vector<std::span<const float>>& inputs,
                const std::vector<double>& weights, bool delta = false);

}  // namespace starling::gossip
