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

GossipRoundResult GossipAverager::run_round(std::uint64_t round,
                                            std::shared_ptr<const std::vector<float>> snapshot,
                                            std::span<float> mixed, Output output) {
  if (ran_ && round <= last_round_) {
    throw std::invalid_argument("GossipAverager::run_round: round " + std::to_string(round) +
                                " is not after " + std::to_string(last_round_));
  }
  if (mixed.size() != snapshot->size()) {
    throw std::invalid_argument("GossipAverager::run_round: buffer sizes differ");
  }
  ran_ = true;
  last_round_ = round;
  Mailbox& mailbox = transport_.mailbox();
  PeerTable& peers = transport_.peers();
  // Messages for earlier rounds are late from now on; up to `window_` rounds ahead are kept.
  mailbox.set_window(message_type_, round, round + window_);

  const std::size_t self = transport_.self();
  topology::MixingRound plan = topology_.round_for(self, round);
  std::span<const float> mine(*snapshot);

  const bool halves = precision_ == WirePrecision::f16;
  std::shared_ptr<std::vector<Half>> mine_on_wire;  // with f16: what the neighbours get
  OutgoingMessage message;
  message.type = message_type_;
  message.tag = round;
  if (halves) {
    mine_on_wire = std::make_shared<std::vector<Half>>(mine.size());
    floats_to_halves(mine, *mine_on_wire);
    message.payload = make_payload(std::span<const Half>(*mine_on_wire), mine_on_wire);
  } else {
    message.payload = make_payload(mine, snapshot);
  }
  for (std::size_t peer : plan.send_to) {
    if (!peers.is_dead(peer)) transport_.send(peer, message);
  }

  GossipRoundResult result;
  result.round = round;
  result.expected = plan.receive_from.size();
  const auto start = Clock::now();
  const auto deadline = start + round_timeout_;
  std::vector<ReceivedMessage> arrived;
  arrived.reserve(plan.receive_from.size());  // spans into these must stay valid
  std::vector<std::span<const float>> inputs{mine};
  std::vector<std::span<const Half>> received_halves;
  std::vector<double> weights{plan.self_weight};
  double self_weight = plan.self_weight;
  for (auto [peer, weight] : plan.receive_from) {
    auto message_in = mailbox.take(
        MailboxKey{message_type_, round, static_cast<std::uint32_t>(peer), 0},
        deadline, [&peers, p = peer, round] {
          // Not coming: the neighbour is dead, suspect or paused, or it is two rounds past
          // this one. It launches round + 2 only after round + 1, which waits for round's
          // exchange, so its message for `round` (if it ever sent one) was queued before the
          // heartbeat that reports it, on the same connection: had it been sent, it would be
          // here. This is what makes a rejoin quick: a node that jumped past rounds does not
          // make its neighbours wait round_timeout for each, nor wait itself for their
          // messages of rounds it refused while it was behind.
          return !peers.is_active(p) || peers.reported_round(p) >= round + 2;
        });
    const std::size_t values =
        message_in ? (halves ? message_in->halves().size() : message_in->floats().size()) : 0;
    if (message_in && values == mine.size()) {
      arrived.push_back(std::move(*message_in));
      if (halves) {
        received_halves.push_back(arrived.back().halves());
      } else {
        inputs.push_back(arrived.back().floats());
      }
      weights.push_back(weight);
    } else {
      // Silent (suspect or dead), late, or (impossible with equal fingerprints) another size:
      // keep our weight.
      self_weight += weight;
      result.missing.push_back(peer);
    }
  }
  result.waited = Clock::now() - start;
  weights[0] = self_weight;
  result.self_weight = self_weight;
  result.received = arrived.size();
  if (halves) {
    result.consensus_distance = mix_halves_into(mixed, mine, *mine_on_wire, received_halves,
                                                weights, output == Output::delta);
  } else {
    result.consensus_distance = mix_into(mixed, inputs, weights, output == Output::delta);
  }
  return result;
}

}  // namespace starling::gossip
