#include "gossip/round_delta.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "gossip/lane_sum.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace starling::gossip {

namespace {

static_assert(kSumLanes == 8, "the AVX2 kernel keeps the lanes of lane_sum.h in one register");

// The three kinds of operand, each read by value: value k of the operand.
struct Floats {
  const float* p;
};
struct Halves {
  const Half* p;
};
struct Int8s {
  Int8View v;
};
inline float read(Floats o, std::size_t k) { return o.p[k]; }
inline float read(Halves o, std::size_t k) { return half_to_float(o.p[k]); }
inline float read(Int8s o, std::size_t k) { return o.v.value(k); }
// The portable kernel reads plain floats (other operands are widened a block at a time first).
inline float read(const float* p, std::size_t k) { return p[k]; }

// The element function both kernels compute, written once for the portable loop and for the
// AVX2 kernel's scalar tail: model[k] += delta, returns the squared difference of s from the
// mean. (The AVX2 kernel's vector body performs the same float operations in the same order.)
template <typename Own, typename Input>
inline float delta_element(float* model, const Own& own, const Input* in, const float* w,
                           std::size_t inputs, float inv, std::size_t k) {
  const float s = read(own, k);
  float delta = 0.0f, sum = s;
  for (std::size_t j = 0; j < inputs; ++j) {
    const float x = read(in[j], k);
    delta += w[j] * (x - s);
    sum += x;
  }
  model[k] += delta;
  const float diff = s - sum * inv;
  return diff * diff;
}

// Portable: the element function over a block, on floats (halves and int8 codes are widened
// a block at a time before it), summed in lanes (gossip/lane_sum.h). With a fixed number of inputs (N, up
// to 7) the inner loops unroll and the compiler vectorises the pass over k.
template <std::size_t N>
float portable_block(float* __restrict model, const float* __restrict s, const float* const* in,
                     const float* w, std::size_t count) {
  constexpr float inv = 1.0f / static_cast<float>(N + 1);
  return sum_in_lanes<float>(0, count, [&](std::size_t k) {
    return delta_element(model, s, in, w, N, inv, k);
  });
}

float portable_block_any(float* model, const float* s, const float* const* in, const float* w,
                         std::size_t inputs, std::size_t count) {
  const float inv = 1.0f / static_cast<float>(inputs + 1);
  return sum_in_lanes<float>(0, count, [&](std::size_t k) {
    return delta_element(model, s, in, w, inputs, inv, k);
  });
}

// One block of `count` elements, indexed from the block's start (the lanes are the block's).
float portable_dispatch(float* model, const float* s, const float* const* in, const float* w,
                        std::size_t inputs, std::size_t count) {
  switch (inputs) {
    case 0: return portable_block<0>(model, s, in, w, count);
    case 1: return portable_block<1>(model, s, in, w, count);
    case 2: return portable_block<2>(model, s, in, w, count);
    case 3: return portable_block<3>(model, s, in, w, count);
    case 4: return portable_block<4>(model, s, in, w, count);
    case 5: return portable_block<5>(model, s, in, w, count);
    case 6: return portable_block<6>(model, s, in, w, count);
    case 7: return portable_block<7>(model, s, in, w, count);
    default: return portable_block_any(model, s, in, w, inputs, count);
  }
}

void check_sizes(std::span<const DeltaOperand> inputs, std::span<const float> weights) {
  if (inputs.size() != weights.size()) {
    throw std::invalid_argument("add_weighted_differences: inputs and weights differ in number");
  }
}

#if defined(__x86_64__)
#define STARLING_AVX2 __attribute__((target("avx2,f16c")))

STARLING_AVX2 inline __m256 load8(Floats o, std::size_t k) { return _mm256_loadu_ps(o.p + k); }
STARLING_AVX2 inline __m256 load8(Halves o, std::size_t k) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o.p + k)));
}
// Eight codes of one block (k is a multiple of 8, and kInt8Block of 8), times the block's scale.
STARLING_AVX2 inline __m256 load8(Int8s o, std::size_t k) {
  const __m256i codes = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o.v.codes + k)));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(codes), _mm256_set1_ps(o.v.scale(k / kInt8Block)));
}
static_assert(kInt8Block % kSumLanes == 0, "eight int8 codes never straddle two blocks");

template <typename Own, typename Input>
STARLING_AVX2 double avx2_kernel(float* model, Own own, const Input* in, const float* w,
                                 std::size_t inputs, std::size_t length) {
  const float inv = 1.0f / static_cast<float>(inputs + 1);
  const __m256 inv8 = _mm256_set1_ps(inv);
  double squared = 0.0;
  for (std::size_t begin = 0; begin < length; begin += kDeltaBlock) {
    const std::size_t end = std::min(length, begin + kDeltaBlock);
    __m256 lanes8 = _mm256_setzero_ps();
    std::size_t k = begin;
    for (; k + kSumLanes <= end; k += kSumLanes) {
      const __m256 s = load8(own, k);
      __m256 delta = _mm256_setzero_ps();
      __m256 sum = s;
      for (std::size_t j = 0; j < inputs; ++j) {
        const __m256 x = load8(in[j], k);
        delta = _mm256_add_ps(delta, _mm256_mul_ps(_mm256_set1_ps(w[j]), _mm256_sub_ps(x, s)));
        sum = _mm256_add_ps(sum, x);
      }
      _mm256_storeu_ps(model + k, _mm256_add_ps(_mm256_loadu_ps(model + k), delta));
      const __m256 diff = _mm256_sub_ps(s, _mm256_mul_ps(sum, inv8));
      lanes8 = _mm256_add_ps(lanes8, _mm256_mul_ps(diff, diff));
    }
    float lanes[kSumLanes];
    _mm256_storeu_ps(lanes, lanes8);
    for (std::size_t l = 0; k + l < end; ++l) {
      lanes[l] += delta_element(model, own, in, w, inputs, inv, k + l);
    }
    float total = 0.0f;
    for (float lane : lanes) total += lane;
    squared += total;
  }
  return squared;
}

// An operand as the typed kernels take it.
enum class Kind { floats, halves, int8 };
Kind kind_of(const DeltaOperand& o) {
  return o.halves ? Kind::halves : (o.int8.codes ? Kind::int8 : Kind::floats);
}
Floats as(const DeltaOperand& o, Floats) { return {o.floats}; }
Halves as(const DeltaOperand& o, Halves) { return {o.halves}; }
Int8s as(const DeltaOperand& o, Int8s) { return {o.int8}; }

template <typename Own, typename Input>
double avx2_typed(std::span<float> model, const DeltaOperand& own,
                  std::span<const DeltaOperand> inputs, std::span<const float> weights) {
  std::vector<Input> in(inputs.size());
  for (std::size_t j = 0; j < inputs.size(); ++j) in[j] = as(inputs[j], Input{});
  return avx2_kernel<Own, Input>(model.data(), as(own, Own{}), in.data(), weights.data(),
                                 inputs.size(), model.size());
}

template <typename Own>
double avx2_inputs(std::span<float> model, const DeltaOperand& own, Kind inputs_kind,
                   std::span<const DeltaOperand> inputs, std::span<const float> weights) {
  switch (inputs_kind) {
    case Kind::floats: return avx2_typed<Own, Floats>(model, own, inputs, weights);
    case Kind::halves: return avx2_typed<Own, Halves>(model, own, inputs, weights);
    case Kind::int8: return avx2_typed<Own, Int8s>(model, own, inputs, weights);
  }
  return 0.0;
}
#endif

}  // namespace

namespace detail {

bool cpu_has_avx2_f16c() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}

double add_weighted_differences_portable(std::span<float> model, DeltaOperand own,
                                         std::span<const DeltaOperand> inputs,
                                         std::span<const float> weights) {
  check_sizes(inputs, weights);
  const std::size_t n = inputs.size();
  const std::size_t length = model.size();
  // Halves and int8 codes are widened a block at a time into `widened` (slot 0: own, slot j + 1: input j), so
  // nothing the size of the model is written besides the model.
  std::vector<float> widened((n + 1) * kDeltaBlock);
  std::vector<const float*> at(n);
  double squared = 0.0;
  for (std::size_t begin = 0; begin < length; begin += kDeltaBlock) {
    const std::size_t count = std::min(kDeltaBlock, length - begin);
    auto operand = [&](const DeltaOperand& o, std::size_t slot) -> const float* {
      if (o.floats) return o.floats + begin;
      float* out = widened.data() + slot * kDeltaBlock;
      if (o.halves) {
        halves_to_floats(std::span(o.halves + begin, count), std::span(out, count));
      } else {
        for (std::size_t k = 0; k < count; ++k) out[k] = o.int8.value(begin + k);
      }
      return out;
    };
    const float* s = operand(own, 0);
    for (std::size_t j = 0; j < n; ++j) at[j] = operand(inputs[j], j + 1);
    squared += portable_dispatch(model.data() + begin, s, at.data(), weights.data(), n, count);
  }
  return squared;
}

double add_weighted_differences_avx2(std::span<float> model, DeltaOperand own,
                                     std::span<const DeltaOperand> inputs,
                                     std::span<const float> weights) {
  check_sizes(inputs, weights);
#if defined(__x86_64__)
  const Kind inputs_kind = inputs.empty() ? Kind::floats : kind_of(inputs[0]);
  const bool uniform = std::all_of(inputs.begin(), inputs.end(), [&](const DeltaOperand& o) {
    return kind_of(o) == inputs_kind;
  });
  if (uniform) {
    switch (kind_of(own)) {
      case Kind::floats: return avx2_inputs<Floats>(model, own, inputs_kind, inputs, weights);
      case Kind::halves: return avx2_inputs<Halves>(model, own, inputs_kind, inputs, weights);
      case Kind::int8: return avx2_inputs<Int8s>(model, own, inputs_kind, inputs, weights);
    }
  }
#endif
  // Inputs of both precisions at once (no caller sends that) or no x86: the portable kernel,
  // which gives the same result.
  return add_weighted_differences_portable(model, own, inputs, weights);
}

}  // namespace detail

double add_weighted_differences(std::span<float> model, DeltaOperand own,
                                std::span<const DeltaOperand> inputs,
                                std::span<const float> weights) {
  if (detail::cpu_has_avx2_f16c()) {
    return detail::add_weighted_differences_avx2(model, own, inputs, weights);
  }
  return detail::add_weighted_differences_portable(model, own, inputs, weights);
}

}  // namespace starling::gossip
