#include "gossip/gossip_averager.h"

#include "gossip/lane_sum.h"
#include "gossip/ring_links.h"
#include "gossip/round_delta.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace starling::gossip {

namespace {

// One fused pass for a fixed number of inputs: the weighted mix and the squared distance of
// input 0 from the plain mean, element by element. N is a template parameter so the inner
// loops unroll and the outer loop vectorises. The distance is summed in float lanes within
// blocks of 1024 elements (gossip/lane_sum.h: with one accumulator the loop stays scalar) and
// in double across blocks (bounded rounding error, no slow doubles in the vector loop).
template <std::size_t N, bool Delta>
double mix_block(float* __restrict out, const float* const* x, const float* w, std::size_t begin,
                 std::size_t end) {
  const float inv = 1.0f / static_cast<float>(N);
  return sum_in_lanes<float>(begin, end, [&](std::size_t k) {
    float mixed = 0.0f, sum = 0.0f;
    for (std::size_t j = 0; j < N; ++j) {
      mixed += w[j] * x[j][k];
      sum += x[j][k];
    }
    out[k] = Delta ? mixed - x[0][k] : mixed;
    const float diff = x[0][k] - sum * inv;
    return diff * diff;
  });
}

template <std::size_t N>
double mix_all(std::span<float> out, const std::vector<std::span<const float>>& inputs,
               const std::vector<double>& weights, bool delta) {
  const float* x[N];
  float w[N];
  for (std::size_t j = 0; j < N; ++j) {
    x[j] = inputs[j].data();
    w[j] = static_cast<float>(weights[j]);
  }
  constexpr std::size_t kBlock = 1024;
  double squared = 0.0;
  for (std::size_t begin = 0; begin < out.size(); begin += kBlock) {
    const std::size_t end = std::min(out.size(), begin + kBlock);
    squared += delta ? mix_block<N, true>(out.data(), x, w, begin, end)
                     : mix_block<N, false>(out.data(), x, w, begin, end);
  }
  return squared;
}

// Any number of inputs: input by input (each pass an axpy), then the distance.
double mix_general(std::span<float> out, const std::vector<std::span<const float>>& inputs,
                   const std::vector<double>& weights, bool delta) {
  const std::size_t n = out.size();
  float* o = out.data();
  const auto w0 = static_cast<float>(weights[0]);
  for (std::size_t k = 0; k < n; ++k) o[k] = w0 * inputs[0][k];
  for (std::size_t j = 1; j < inputs.size(); ++j) {
    const auto w = static_cast<float>(weights[j]);
    const float* x = inputs[j].data();
    for (std::size_t k = 0; k < n; ++k) o[k] += w * x[k];
  }
  if (delta) {
    for (std::size_t k = 0; k < n; ++k) o[k] -= inputs[0][k];
  }
  const double inv = 1.0 / static_cast<double>(inputs.size());
  double squared = 0.0;
  for (std::size_t k = 0; k < n; ++k) {
    double sum = 0.0;
    for (const auto& input : inputs) sum += input[k];
    double diff = inputs[0][k] - sum * inv;
    squared += diff * diff;
  }
  return squared;
}

// The squared consensus distance; writes the mix (or delta) into out. Sizes checked by callers.
double mix_squared(std::span<float> out, const std::vector<std::span<const float>>& inputs,
                   const std::vector<double>& weights, bool delta) {
  switch (inputs.size()) {
    case 1: return mix_all<1>(out, inputs, weights, delta);
    case 2: return mix_all<2>(out, inputs, weights, delta);
    case 3: return mix_all<3>(out, inputs, weights, delta);
    case 4: return mix_all<4>(out, inputs, weights, delta);
    case 5: return mix_all<5>(out, inputs, weights, delta);
    case 6: return mix_all<6>(out, inputs, weights, delta);
    case 7: return mix_all<7>(out, inputs, weights, delta);
    case 8: return mix_all<8>(out, inputs, weights, delta);
    default: return mix_general(out, inputs, weights, delta);
  }
}

// The arrived message as an operand of the apply pass, in the wire precision.
DeltaOperand operand_of(ReceivedMessage& message, WirePrecision precision, std::size_t length) {
  switch (precision) {
    case WirePrecision::f16: return DeltaOperand{.halves = message.halves().data()};
    case WirePrecision::int8: return DeltaOperand{.int8 = int8_view(message.bytes(), length)};
    case WirePrecision::f32: break;
  }
  return DeltaOperand{.floats = message.floats().data()};
}

// The snapshot as its neighbours received it (for Output::delta and add_round_delta).
DeltaOperand operand_of(const WireSnapshot& snapshot) {
  if (snapshot.halves) return DeltaOperand{.halves = snapshot.halves->data()};
  if (snapshot.int8) {
    return DeltaOperand{.int8 = int8_view(std::span<const std::byte>(*snapshot.int8),
                                          snapshot.int8_values)};
  }
  return DeltaOperand{.floats = snapshot.floats->data()};
}

// model += sum_j W_ij (x_j - s) over the arrived messages (in `precision`), s being `own`.
// Returns the consensus distance of s.
double add_delta(std::vector<ReceivedMessage>& arrived, const std::vector<double>& weights,
                 WirePrecision precision, DeltaOperand own, std::span<float> model) {
  std::vector<DeltaOperand> inputs(arrived.size());
  std::vector<float> w(arrived.size());
  for (std::size_t j = 0; j < arrived.size(); ++j) {
    inputs[j] = operand_of(arrived[j], precision, model.size());
    w[j] = static_cast<float>(weights[j + 1]);  // weights[0] is this node's own
  }
  return std::sqrt(add_weighted_differences(model, own, inputs, w));
}

// Values in a message of `precision`: what complete() compares with the model's length.
std::size_t values_in(ReceivedMessage& message, WirePrecision precision) {
  switch (precision) {
    case WirePrecision::f16: return message.halves().size();
    case WirePrecision::int8: return int8_payload_values(message.bytes().size()).value_or(0);
    case WirePrecision::f32: break;
  }
  return message.floats().size();
}

MessageType message_type_for(WirePrecision precision) {
  switch (precision) {
    case WirePrecision::f16: return MessageType::gossip_params_f16;
    case WirePrecision::int8: return MessageType::gossip_params_int8;
    case WirePrecision::f32: break;
  }
  return MessageType::gossip_params;
}

}  // namespace

double mix_into(std::span<float> out, const std::vector<std::span<const float>>& inputs,
                const std::vector<double>& weights, bool delta) {
  if (inputs.empty() || inputs.size() != weights.size()) {
    throw std::invalid_argument("mix_into: inputs and weights differ");
  }
  for (const auto& input : inputs) {
    if (input.size() != out.size()) throw std::invalid_argument("mix_into: length mismatch");
  }
  return std::sqrt(mix_squared(out, inputs, weights, delta));
}

GossipAverager::GossipAverager(Transport& transport, const topology::Topology& topology,
                               std::chrono::milliseconds round_timeout, std::uint64_t window,
                               WirePrecision precision)
    : transport_(transport),
      links_(transport.ring_links() && transport.ring_links()->carries_gossip()
                 ? transport.ring_links()
                 : nullptr),
      topology_(topology),
      round_timeout_(round_timeout),
      window_(window),
      precision_(precision),
      message_type_(message_type_for(precision)) {
  transport_.mailbox().set_window(message_type_, 0, window_);
}

std::uint64_t GossipAverager::catch_up(std::uint64_t round, std::uint64_t slack) const {
  // A neighbour reporting next round R will run R next (it is in R - 1, or past it). Jumping to
  // R means our message for R waits for it in its mailbox and we wait at most one of its
  // rounds for its message. Only a node more than `slack` rounds behind jumps, so two nodes
  // one round apart (normal jitter) never leapfrog each other.
  const std::size_t self = transport_.self();
  std::uint64_t latest = round;
  for (std::size_t peer : topology_.graph().neighbours(self)) {
    if (!transport_.peers().is_reachable(peer)) continue;
    std::uint64_t reported = transport_.peers().reported_round(peer);
    if (reported > round + slack) latest = std::max(latest, reported);
  }
  return latest;
}

void GossipAverager::expect_round(std::uint64_t round) {
  transport_.mailbox().set_window(message_type_, round, round + window_);
}

WireSnapshot GossipAverager::snapshot_of(std::span<const float> model) const {
  WireSnapshot snapshot;
  if (precision_ == WirePrecision::f16) {
    auto halves = std::make_shared<HalfBuffer>(model.size());  // every value written below
    if (!floats_to_halves(model, *halves) && !said_unsendable_.exchange(true)) {
      // The neighbours refuse such a message as non-finite and leave this node out of their
      // rounds; say why here, where it can be fixed (they can only say that they refuse it).
      spdlog::warn("this node's model has parameters that binary16 cannot carry (NaN, Inf, or "
                   "|x| >= 65520), so its neighbours refuse its wire_precision = \"f16\" "
                   "messages and mix without it; use wire_precision = \"f32\" if the model "
                   "has not diverged (said once)");
    }
    snapshot.halves = std::move(halves);
  } else if (precision_ == WirePrecision::int8) {
    auto payload = std::make_shared<Int8Buffer>(int8_payload_bytes(model.size()));  // written in full
    if (!quantize_int8(model, *payload) && !said_unsendable_.exchange(true)) {
      spdlog::warn("this node's model has parameters that are NaN or Inf, so its neighbours "
                   "refuse its wire_precision = \"int8\" messages and mix without it (said once)");
    }
    snapshot.int8 = std::move(payload);
    snapshot.int8_values = model.size();
  } else {
    snapshot.floats = std::make_shared<const std::vector<float>>(model.begin(), model.end());
  }
  return snapshot;
}

GossipRoundResult GossipAverager::run_round(std::uint64_t round,
                                            std::shared_ptr<const std::vector<float>> snapshot,
                                            std::span<float> mixed, Output output) {
  if (mixed.size() != snapshot->size()) {
    throw std::invalid_argument("GossipAverager::run_round: buffer sizes differ");
  }
  const bool compressed = precision_ != WirePrecision::f32;
  WireSnapshot wire = compressed ? snapshot_of(*snapshot) : WireSnapshot{};
  wire.floats = snapshot;
  RoundExchange round_exchange = exchange(round, wire);
  GossipRoundResult& result = round_exchange.result;
  const bool delta = output == Output::delta;
  if (compressed) {
    // The delta is what add_round_delta adds (own term as sent); the mix is the exact
    // snapshot plus the delta taken against it, W_ii x_s + sum_j W_ij q(x_j).
    if (delta) {
      std::fill(mixed.begin(), mixed.end(), 0.0f);
    } else {
      std::copy(snapshot->begin(), snapshot->end(), mixed.begin());
    }
    WireSnapshot own = wire;
    if (!delta) {  // the exact floats
      own.halves.reset();
      own.int8.reset();
    }
    result.consensus_distance = add_delta(round_exchange.arrived, round_exchange.weights,
                                          precision_, operand_of(own), mixed);
  } else {
    std::vector<std::span<const float>> inputs{std::span<const float>(*snapshot)};
    for (auto& message : round_exchange.arrived) inputs.push_back(message.floats());
    result.consensus_distance = mix_into(mixed, inputs, round_exchange.weights, delta);
  }
  return result;
}

RoundExchange GossipAverager::exchange(std::uint64_t round, const WireSnapshot& snapshot) {
  PendingRound pending = begin_exchange(round, snapshot);
  finish_exchange(pending);
  return std::move(pending.exchange);
}

PendingRound GossipAverager::begin_exchange(std::uint64_t round, const WireSnapshot& snapshot) {
  const bool has_snapshot = precision_ == WirePrecision::f16    ? snapshot.halves != nullptr
                            : precision_ == WirePrecision::int8 ? snapshot.int8 != nullptr
                                                                : snapshot.floats != nullptr;
  if (!has_snapshot) {
    throw std::invalid_argument("GossipAverager::exchange: no " + std::string(to_string(precision_)) +
                                " snapshot for this precision");
  }
  if (ran_ && round <= last_round_) {
    throw std::invalid_argument("GossipAverager::run_round: round " + std::to_string(round) +
                                " is not after " + std::to_string(last_round_));
  }
  ran_ = true;
  last_round_ = round;
  PeerTable& peers = transport_.peers();
  // Messages for earlier rounds are late from now on; up to `window_` rounds ahead are kept.
  transport_.mailbox().set_window(message_type_, round, round + window_);

  const std::size_t self = transport_.self();
  topology::MixingRound plan = topology_.round_for(self, round);

  OutgoingMessage message;
  message.type = message_type_;
  message.tag = round;
  if (snapshot.halves && precision_ == WirePrecision::f16) {
    message.payload = make_payload(std::span<const Half>(*snapshot.halves), snapshot.halves);
  } else if (snapshot.int8 && precision_ == WirePrecision::int8) {
    message.payload = make_payload(std::span<const std::byte>(*snapshot.int8), snapshot.int8);
  } else {
    message.payload = make_payload(std::span<const float>(*snapshot.floats), snapshot.floats);
  }
  // Not to a paused peer: it runs no rounds and would drop the model.
  for (std::size_t peer : plan.send_to) {
    if (peers.is_dead(peer) || peers.is_paused(peer)) continue;
    if (!send_over_link(peer, message)) transport_.send(peer, message);
  }

  PendingRound pending;
  pending.length = snapshot.size();
  pending.start = Clock::now();
  pending.deadline = pending.start + round_timeout_;
  pending.exchange.result.round = round;
  pending.exchange.result.expected = plan.receive_from.size();
  pending.exchange.weights.push_back(plan.self_weight);
  for (auto [peer, weight] : plan.receive_from) {
    pending.slots.push_back(PendingRound::Slot{peer, weight, false, std::nullopt});
  }
  return pending;
}

bool GossipAverager::not_coming(std::size_t peer, std::uint64_t round) const {
  // Not coming: the neighbour is dead or paused, its connection closed (its process is gone),
  // or it is two rounds past this one.
  //
  // A suspect neighbour is waited for, up to the round's deadline: silence is what a slow
  // link looks like too. Over a link that takes a second to carry a model, the neighbour's
  // heartbeats arrive behind its model, a second late, at every exchange; if rounds gave up
  // on it then, every node would run its rounds alone, as fast as it trains, and its models
  // would pile up in the link. A crash is still seen at once (the connection closes), and a
  // stall or a partition costs at most a round timeout per round until the peer is dead.
  //
  // It launches round + 2 only after round + 1, which waits for round's exchange, so its
  // message for `round` (if it ever sent one) was queued before the heartbeat that reports it,
  // on the same connection: had it been sent, it would be here. This is what makes a rejoin
  // quick: a node that jumped past rounds does not make its neighbours wait round_timeout for
  // each, nor wait itself for their messages of rounds it refused while it was behind.
  //
  // Over a ring link that argument fails: the heartbeat comes through ZeroMQ and may overtake
  // a payload still on its way on the link (over a slow link, every round). Frames on a link
  // are in order, though: a frame of a later round from the peer means that this round's is
  // not on the link. So while there is a link from the peer, that is what says "not coming".
  const PeerTable& peers = transport_.peers();
  if (peers.is_dead(peer) || peers.is_paused(peer) || peers.connection_lost(peer)) return true;
  if (links_) {
    std::lock_guard lock(links_->mutex());
    if (links_->has_inbound(peer)) {
      const auto latest = links_->latest_gossip_round(peer);
      return latest && *latest > round;
    }
  }
  return peers.reported_round(peer) >= round + 2;
}

bool GossipAverager::send_over_link(std::size_t peer, const OutgoingMessage& message) {
  if (!links_) return false;
  Header h;
  h.type = message.type;
  h.sender = static_cast<std::uint32_t>(transport_.self());
  h.incarnation = links_->incarnation();
  h.tag = message.tag;
  h.fingerprint = links_->fingerprint();
  h.payload_bytes = message.payload.bytes.size();
  h.payload_crc = message.payload.crc;
  std::lock_guard lock(links_->mutex());
  return links_->send_gossip(peer, h, message.payload.bytes, message.payload.owner);
}

void GossipAverager::progress_links(std::chrono::milliseconds wait) {
  if (!links_) return;
  std::lock_guard lock(links_->mutex());
  links_->progress_gossip(wait);
}

bool GossipAverager::poll_exchange(PendingRound& pending) {
  progress_links();
  return take_arrived(pending);
}

bool GossipAverager::take_arrived(PendingRound& pending) {
  if (pending.done) return true;
  Mailbox& mailbox = transport_.mailbox();
  const std::uint64_t round = pending.exchange.result.round;
  const bool past_deadline = Clock::now() >= pending.deadline;
  bool all_settled = true;
  for (auto& slot : pending.slots) {
    if (slot.settled) continue;
    slot.message = mailbox.try_take(
        MailboxKey{message_type_, round, static_cast<std::uint32_t>(slot.peer), 0});
    slot.settled = slot.message.has_value() || past_deadline || not_coming(slot.peer, round);
    all_settled = all_settled && slot.settled;
  }
  if (all_settled) complete(pending);
  return pending.done;
}

void GossipAverager::finish_over_links(PendingRound& pending) {
  // Payloads come over the links, or (before a peer's link port is known, or after a link
  // failed) through ZeroMQ into the mailbox, which is looked at at least every 10 ms; so are
  // the give-up conditions (not_coming, the deadline), as collectives on links do.
  constexpr auto kRecheck = std::chrono::milliseconds(10);
  progress_links();
  while (!take_arrived(pending)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        pending.deadline - Clock::now() + std::chrono::microseconds(999));
    progress_links(std::clamp(left, std::chrono::milliseconds(0), kRecheck));
  }
}

void GossipAverager::finish_exchange(PendingRound& pending) {
  if (pending.done) return;
  if (links_) {
    finish_over_links(pending);
    return;
  }
  Mailbox& mailbox = transport_.mailbox();
  const std::uint64_t round = pending.exchange.result.round;
  for (auto& slot : pending.slots) {
    if (slot.settled) continue;
    slot.message = mailbox.take(
        MailboxKey{message_type_, round, static_cast<std::uint32_t>(slot.peer), 0},
        pending.deadline, [this, p = slot.peer, round] { return not_coming(p, round); });
    slot.settled = true;
  }
  complete(pending);
}

void GossipAverager::complete(PendingRound& pending) const {
  RoundExchange& out = pending.exchange;
  GossipRoundResult& result = out.result;
  double self_weight = out.weights[0];
  out.arrived.reserve(pending.slots.size());
  for (auto& slot : pending.slots) {
    auto& message = slot.message;
    const std::size_t values = message ? values_in(*message, precision_) : 0;
    if (message && values == pending.length) {
      out.arrived.push_back(std::move(*message));
      out.weights.push_back(slot.weight);
    } else {
      // Silent (suspect or dead), late, or (impossible with equal fingerprints) another size:
      // keep our weight.
      self_weight += slot.weight;
      result.missing.push_back(slot.peer);
    }
  }
  pending.slots.clear();
  result.waited = Clock::now() - pending.start;
  out.weights[0] = self_weight;
  result.self_weight = self_weight;
  result.received = out.arrived.size();
  pending.done = true;
}

double GossipAverager::add_round_delta(RoundExchange& exchange, const WireSnapshot& snapshot,
                                       std::span<float> model) const {
  const std::size_t length = model.size();
  if (snapshot.size() != length) {
    throw std::invalid_argument("GossipAverager::add_round_delta: model and snapshot sizes differ");
  }
  exchange.result.consensus_distance =
      add_delta(exchange.arrived, exchange.weights, precision_, operand_of(snapshot), model);
  return exchange.result.consensus_distance;
}

}  // namespace starling::gossip
