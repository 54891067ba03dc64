#pragma once
// Test hooks (starlingd --test-drop-rate, --test-delay-ms): loss and delay injected into what
// a node sends, since loopback and veth pairs without netem have neither. Never in production.
#include <chrono>
#include <cstdint>
#include <random>

namespace starling::gossip {

struct FaultInjection {
  double drop_probability = 0.0;          // of each outgoing message
  std::chrono::milliseconds delay{0};     // added to each outgoing message
  std::uint64_t seed = 1;

  // Whether the next outgoing message vanishes, drawn from the sender's own stream.
  bool loses_next(std::mt19937_64& rng) const {
    return drop_probability > 0 &&
           std::uniform_real_distribution<double>(0.0, 1.0)(rng) < drop_probability;
  }
};

}  // namespace starling::gossip
