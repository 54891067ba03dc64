#pragma once
// Rng: a small seeded generator whose every output is defined here (SplitMix64 and textbook
// samplers), so partitions, data order and initial weights are the same on every node whatever
// standard library or LibTorch build it runs (std::*_distribution algorithms are
// implementation-defined; LibTorch's initialisers change between versions).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>

namespace starling::training {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  // A generator for one purpose, independent of the others drawn from the same seed: the tags
  // name the purpose (e.g. {kind, node, epoch}).
  static Rng stream(std::uint64_t seed, std::initializer_list<std::uint64_t> tags);

  std::uint64_t next_u64();
  double uniform();                            // [0, 1), 53 random bits
  std::uint64_t below(std::uint64_t bound);    // uniform in [0, bound), bound > 0, unbiased
  double normal();                             // standard normal (Box-Muller)
  double gamma(double shape);                  // Gamma(shape, 1), shape > 0 (Marsaglia-Tsang)

  template <typename T>
  void shuffle(std::span<T> items) {  // Fisher-Yates
    for (std::size_t i = items.size(); i > 1; --i) {
      std::size_t j = static_cast<std::size_t>(below(i));
      std::swap(items[i - 1], items[j]);
    }
  }

  std::uint64_t state() const { return state_; }

 private:
  std::uint64_t state_;
};

}  // namespace starling::training
