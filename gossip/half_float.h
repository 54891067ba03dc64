#pragma once
// IEEE-754 binary16 ("half") conversions for gossip's compressed wire precision
// (`wire_precision = "f16"`): parameters go over the wire as halves, half the bytes of
// binary32, and are widened back to float before they are mixed.
//
// Float to half rounds to nearest, ties to even (what the F16C instruction does with
// _MM_FROUND_TO_NEAREST_INT); a finite float beyond the half range (|x| >= 65520) becomes
// +-Inf, which every receiver refuses as non-finite (floats_to_halves reports it, so the sender
// can say so); NaN stays NaN. Half to float is exact.
// The fastest kernel the CPU has is used (F16C, else portable bit arithmetic); both give
// bit-identical results for every input but NaN payloads.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace starling::gossip {

using Half = std::uint16_t;  // the raw binary16 bits, little-endian on the wire

// An allocator whose value-less construct() leaves trivial values uninitialised, so that
// std::vector::resize of a buffer that is written in full next costs no zeroing pass. (Each
// gossip round narrowed the model into a fresh vector of halves that was first zeroed: half a
// megabyte written for nothing, 5% of a round's CPU in bench/gossip_round_cost.)
template <typename T>
struct UninitialisedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  UninitialisedAllocator() = default;
  template <typename U>
  UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
// Halves written in full right after allocation (a snapshot narrowed to binary16).
using HalfBuffer = std::vector<Half, UninitialisedAllocator<Half>>;

Half float_to_half(float value);
float half_to_float(Half value);

// out[k] = float_to_half(in[k]); sizes must match. Returns whether every half is finite:
// false when an input is NaN or Inf, or beyond the half range (what receivers would refuse).
bool floats_to_halves(std::span<const float> in, std::span<Half> out);
// out[k] = half_to_float(in[k]); sizes must match.
void halves_to_floats(std::span<const Half> in, std::span<float> out);

// True when no half in the little-endian bytes is NaN or Inf (exponent bits all ones). Any
// alignment; an odd trailing byte is ignored (the decoder refuses odd lengths first).
bool all_finite_halves(std::span<const std::byte> bytes);

namespace detail {
// The kernels behind the functions above, exposed so tests can compare them.
bool cpu_has_f16c();
bool floats_to_halves_portable(const float* in, Half* out, std::size_t n);
void halves_to_floats_portable(const Half* in, float* out, std::size_t n);
bool floats_to_halves_f16c(const float* in, Half* out, std::size_t n);  // needs cpu_has_f16c()
void halves_to_floats_f16c(const Half* in, float* out, std::size_t n);  // needs cpu_has_f16c()
}  // namespace detail

}  // namespace starling::gossip
