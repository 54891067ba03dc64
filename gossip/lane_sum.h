#pragma once
// Sums of squares over a model that the compiler can vectorise.
//
// A loop that adds into one float or double accumulator is a chain of dependent additions:
// without -ffast-math the compiler may not reorder them, so the whole loop stays scalar, and
// any other work in it (a mix, an update of the model) is scalar with it. Keeping one
// accumulator per lane breaks the chain: lane l sums the elements begin + l, begin + l +
// kSumLanes, ..., each lane's chain is independent, and the lanes become SIMD registers. On a 1 MB model the
// gossip apply pass ran 2.4x faster this way on SSE2 alone (bench/RESULTS-cluster.md, "The
// apply pass, vectorised").
//
// The order of the additions is fixed by the range alone (lane by lane, then the lanes in
// order), so a build gives the same result on every run: what a node reports does not depend
// on timing. It differs in the last bits from a left-to-right sum.
#include <cstddef>

namespace starling::gossip {

inline constexpr std::size_t kSumLanes = 8;

// Calls element(k) for every k in [begin, end), in increasing k, and returns the sum of what
// it returns, accumulated in kSumLanes lanes of type T. element may write elsewhere (the mix
// it computes beside the square), as long as element(k) touches index k only.
template <typename T, typename Element>
inline T sum_in_lanes(std::size_t begin, std::size_t end, Element&& element) {
  T lanes[kSumLanes] = {};
  std::size_t k = begin;
  for (; k + kSumLanes <= end; k += kSumLanes) {
    for (std::size_t l = 0; l < kSumLanes; ++l) lanes[l] += element(k + l);
  }
  for (std::size_t l = 0; k + l < end; ++l) lanes[l] += element(k + l);
  T total = 0;
  for (T lane : lanes) total += lane;
  return total;
}

}  // namespace starling::gossip
