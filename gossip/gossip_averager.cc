#include "gossip/gossip_averager.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace starling::gossip {

namespace {

// One fused pass for a fixed number of inputs: the weighted mix and the squared distance of
// input 0 from the plain mean, element by element. N is a template parameter so the inner
// loops unroll and the outer loop vectorises. The distance is summed in float within blocks
// of 1024 elements and in double across blocks (bounded rounding error, no slow doubles in the
// vector loop).
template <std::size_t N, bool Delta>
double mix_block(float* __restrict out, const float* const* x, const float* w, std::size_t begin,
                 std::size_t end) {
  const float inv = 1.0f / static_cast<float>(N);
  float squared = 0.0f;
  for (std::size_t k = begin; k < end; ++k) {
    float mixed = 0.0f, sum = 0.0f;
    for (std::size_t j = 0; j < N; ++j) {
      mixed += w[j] * x[j][k];
      sum += x[j][k];
    }
    out[k] = Delta ? mixed - x[0][k] : mixed;
    float diff = x[0][k] - sum * inv;
    squared += diff * diff;
  }
  return squared;
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

// model[k] += sum_j w[j] (in[j][k] - s[k]) for N neighbour inputs, and the squared distance of
// s from the plain mean of s and the inputs, in one pass. Summed in float within the block.
template <std::size_t N>
double add_delta_block(float* __restrict model, const float* __restrict s, const float* const* in,
                       const float* w, std::size_t length) {
  constexpr float inv = 1.0f / static_cast<float>(N + 1);
  float squared = 0.0f;
  for (std::size_t k = 0; k < length; ++k) {
    float delta = 0.0f, sum = s[k];
    for (std::size_t j = 0; j < N; ++j) {
      delta += w[j] * (in[j][k] - s[k]);
      sum += in[j][k];
    }
    model[k] += delta;
    const float diff = s[k] - sum * inv;
    squared += diff * diff;
  }
  return squared;
}

double add_delta_general(float* model, const float* s, const float* const* in, const float* w,
                         std::size_t inputs, std::size_t length) {
  const double inv = 1.0 / static_cast<double>(inputs + 1);
  double squared = 0.0;
  for (std::size_t k = 0; k < length; ++k) {
    float delta = 0.0f;
    double sum = s[k];
    for (std::size_t j = 0; j < inputs; ++j) {
      delta += w[j] * (in[j][k] - s[k]);
      sum += in[j][k];
    }
    model[k] += delta;
    const double diff = s[k] - sum * inv;
    squared += diff * diff;
  }
  return squared;
}

// The squared distance; adds the delta to model[0, length). in[j] and s have `length` floats.
double add_delta_squared(float* model, const float* s, const std::vector<const float*>& in,
                         const std::vector<float>& w, std::size_t length) {
  constexpr std::size_t kBlock = 1024;
  double squared = 0.0;
  std::vector<const float*> at(in.size());
  for (std::size_t begin = 0; begin < length; begin += kBlock) {
    const std::size_t n = std::min(kBlock, length - begin);
    for (std::size_t j = 0; j < in.size(); ++j) at[j] = in[j] + begin;
    float* m = model + begin;
    const float* base = s + begin;
    switch (in.size()) {
      case 0: squared += add_delta_block<0>(m, base, at.data(), w.data(), n); break;
      case 1: squared += add_delta_block<1>(m, base, at.data(), w.data(), n); break;
      case 2: squared += add_delta_block<2>(m, base, at.data(), w.data(), n); break;
      case 3: squared += add_delta_block<3>(m, base, at.data(), w.data(), n); break;
      case 4: squared += add_delta_block<4>(m, base, at.data(), w.data(), n); break;
      case 5: squared += add_delta_block<5>(m, base, at.data(), w.data(), n); break;
      case 6: squared += add_delta_block<6>(m, base, at.data(), w.data(), n); break;
      case 7: squared += add_delta_block<7>(m, base, at.data(), w.data(), n); break;
      default: squared += add_delta_general(m, base, at.data(), w.data(), in.size(), n);
    }
  }
  return squared;
}

}  // namespace

std::string_view to_string(WirePrecision precision) {
  return precision == WirePrecision::f16 ? "f16" : "f32";
}

std::uint64_t wire_fingerprint(std::uint64_t model_fingerprint, WirePrecision precision) {
  if (precision == WirePrecision::f32) return model_fingerprint;  // as before f16 existed
  // Any fixed change that no f32 fingerprint collides with in practice: a multiply-xorshift
  // scramble of the model's fingerprint with a constant of its own.
  std::uint64_t x = model_fingerprint ^ 0x6631365F77697265ull;  // "f16_wire"
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  return x;
}

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

double mix_halves_into(std::span<float> out, std::span<const float> self,
                       std::span<const Half> self_on_wire,
                       const std::vector<std::span<const Half>>& received,
                       const std::vector<double>& weights, bool delta) {
  const std::size_t n = out.size();
  if (weights.size() != received.size() + 1) {
    throw std::invalid_argument("mix_halves_into: inputs and weights differ");
  }
  if (self.size() != n || (delta && self_on_wire.size() != n)) {
    throw std::invalid_argument("mix_halves_into: length mismatch");
  }
  for (const auto& input : received) {
    if (input.size() != n) throw std::invalid_argument("mix_halves_into: length mismatch");
  }
  // Widen one block of every binary16 input at a time (small enough to stay in L1/L2) and
  // mix it with the float kernels.
  constexpr std::size_t kBlock = 2048;
  const std::size_t inputs = received.size() + 1;
  std::vector<float> widened(inputs * kBlock);
  std::vector<std::span<const float>> block_inputs(inputs);
  double squared = 0.0;
  for (std::size_t begin = 0; begin < n; begin += kBlock) {
    const std::size_t length = std::min(kBlock, n - begin);
    if (delta) {
      halves_to_floats(self_on_wire.subspan(begin, length), std::span(widened.data(), length));
      block_inputs[0] = std::span<const float>(widened.data(), length);
    } else {
      block_inputs[0] = self.subspan(begin, length);
    }
    for (std::size_t j = 0; j < received.size(); ++j) {
      float* slot = widened.data() + (j + 1) * kBlock;
      halves_to_floats(received[j].subspan(begin, length), std::span(slot, length));
      block_inputs[j + 1] = std::span<const float>(slot, length);
    }
    squared += mix_squared(out.subspan(begin, length), block_inputs, weights, delta);
  }
  return std::sqrt(squared);
}

GossipAverager::GossipAverager(Transport& transport, const topology::Topology& topology,
                               std::chrono::milliseconds round_timeout, std::uint64_t window,
                               WirePrecision precision)
    : transport_(transport),
      topology_(topology),
      round_timeout_(round_timeout),
      window_(window),
      precision_(precision),
      message_type_(precision == WirePrecision::f16 ? MessageType::gossip_params_f16
                                                    : MessageType::gossip_params) {
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
    auto halves = std::make_shared<std::vector<Half>>(model.size());
    floats_to_halves(model, *halves);
    snapshot.halves = std::move(halves);
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
  WireSnapshot wire;
  wire.floats = snapshot;
  if (precision_ == WirePrecision::f16) {
    auto halves = std::make_shared<std::vector<Half>>(snapshot->size());
    floats_to_halves(*snapshot, *halves);
    wire.halves = std::move(halves);
  }
  RoundExchange round_exchange = exchange(round, wire);
  GossipRoundResult& result = round_exchange.result;
  const bool delta = output == Output::delta;
  if (wire.halves) {
    std::vector<std::span<const Half>> received;
    for (auto& message : round_exchange.arrived) received.push_back(message.halves());
    result.consensus_distance = mix_halves_into(mixed, *snapshot, *wire.halves, received,
                                                round_exchange.weights, delta);
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
  const bool halves = precision_ == WirePrecision::f16;
  if (halves ? !snapshot.halves : !snapshot.floats) {
    throw std::invalid_argument(std::string("GossipAverager::exchange: no ") +
                                (halves ? "binary16" : "float") + " snapshot for this precision");
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
  message.payload = halves ? make_payload(std::span<const Half>(*snapshot.halves), snapshot.halves)
                           : make_payload(std::span<const float>(*snapshot.floats), snapshot.floats);
  for (std::size_t peer : plan.send_to) {
    if (!peers.is_dead(peer)) transport_.send(peer, message);
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
  // Not coming: the neighbour is dead, suspect or paused, or it is two rounds past this one.
  // It launches round + 2 only after round + 1, which waits for round's exchange, so its
  // message for `round` (if it ever sent one) was queued before the heartbeat that reports it,
  // on the same connection: had it been sent, it would be here. This is what makes a rejoin
  // quick: a node that jumped past rounds does not make its neighbours wait round_timeout for
  // each, nor wait itself for their messages of rounds it refused while it was behind.
  const PeerTable& peers = transport_.peers();
  return !peers.is_active(peer) || peers.reported_round(peer) >= round + 2;
}

bool GossipAverager::poll_exchange(PendingRound& pending) {
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

void GossipAverager::finish_exchange(PendingRound& pending) {
  if (pending.done) return;
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
  const bool halves = precision_ == WirePrecision::f16;
  RoundExchange& out = pending.exchange;
  GossipRoundResult& result = out.result;
  double self_weight = out.weights[0];
  out.arrived.reserve(pending.slots.size());
  for (auto& slot : pending.slots) {
    auto& message = slot.message;
    const std::size_t values =
        message ? (halves ? message->halves().size() : message->floats().size()) : 0;
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
  std::vector<float> w;
  for (std::size_t j = 1; j < exchange.weights.size(); ++j) {
    w.push_back(static_cast<float>(exchange.weights[j]));
  }
  const std::size_t inputs = exchange.arrived.size();
  double squared = 0.0;
  if (snapshot.halves) {
    // Widen a block of the snapshot and of every input at a time (it stays in cache), then
    // run the float kernel on it.
    constexpr std::size_t kBlock = 2048;
    std::vector<std::span<const Half>> received;
    for (auto& message : exchange.arrived) received.push_back(message.halves());
    std::vector<float> widened((inputs + 1) * kBlock);
    std::vector<const float*> in(inputs);
    for (std::size_t j = 0; j < inputs; ++j) in[j] = widened.data() + (j + 1) * kBlock;
    const std::span<const Half> own(*snapshot.halves);
    for (std::size_t begin = 0; begin < length; begin += kBlock) {
      const std::size_t n = std::min(kBlock, length - begin);
      halves_to_floats(own.subspan(begin, n), std::span(widened.data(), n));
      for (std::size_t j = 0; j < inputs; ++j) {
        halves_to_floats(received[j].subspan(begin, n), std::span(widened.data() + (j + 1) * kBlock, n));
      }
      squared += add_delta_squared(model.data() + begin, widened.data(), in, w, n);
    }
  } else {
    std::vector<const float*> in;
    for (auto& message : exchange.arrived) in.push_back(message.floats().data());
    squared = add_delta_squared(model.data(), snapshot.floats->data(), in, w, length);
  }
  exchange.result.consensus_distance = std::sqrt(squared);
  return exchange.result.consensus_distance;
}

}  // namespace starling::gossip
