#include "gossip/half_float.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace starling::gossip {
namespace detail {
namespace {

// Float layout: 1 sign, 8 exponent (bias 127), 23 mantissa bits. Half: 1, 5 (bias 15), 10.
constexpr std::uint32_t kFloatExponentShift = 23;
constexpr std::uint32_t kBiasDifference = 127 - 15;
constexpr std::uint32_t kDroppedBits = 23 - 10;  // mantissa bits a half does not keep
constexpr Half kHalfExponentBits = 0x7C00u;       // all ones: Inf or NaN

Half one_float_to_half(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<Half>((bits >> 16) & 0x8000u);
  bits &= 0x7FFFFFFFu;
  if (bits >= 0x7F800000u) {  // Inf stays Inf; NaN stays a (quiet) NaN
    return sign | (bits > 0x7F800000u ? Half{0x7E00} : Half{0x7C00});
  }
  if (bits >= ((127u + 16u) << kFloatExponentShift)) return sign | Half{0x7C00};  // >= 2^16
  if (bits < ((kBiasDifference + 1) << kFloatExponentShift)) {
    // Below 2^-14 the half is subnormal (or zero): its unit is 2^-24. Adding 0.5 (whose unit
    // in the last place is 2^-24) makes the float adder round to that unit, to nearest even,
    // and the result's low mantissa bits are then the half's mantissa.
    constexpr float kHalf = 0.5f;
    const float rounded = std::bit_cast<float>(bits) + kHalf;
    return sign | static_cast<Half>(std::bit_cast<std::uint32_t>(rounded) -
                                    std::bit_cast<std::uint32_t>(kHalf));
  }
  // Normal: rebias the exponent and round the 13 dropped bits to nearest even. A carry out of
  // the mantissa correctly bumps the exponent (up to Inf for 65520 <= |x| < 65536).
  const std::uint32_t odd = (bits >> kDroppedBits) & 1u;
  bits += 0xFFFu + odd;
  bits -= kBiasDifference << kFloatExponentShift;
  return sign | static_cast<Half>(bits >> kDroppedBits);
}

float one_half_to_float(Half value) {
  const std::uint32_t sign = static_cast<std::uint32_t>(value & 0x8000u) << 16;
  const std::uint32_t exponent = (value >> 10) & 0x1Fu;
  const std::uint32_t mantissa = value & 0x3FFu;
  if (exponent == 0x1F) {  // Inf or NaN
    return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << kDroppedBits));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(magnitude));
  }
  return std::bit_cast<float>(sign | ((exponent + kBiasDifference) << kFloatExponentShift) |
                              (mantissa << kDroppedBits));
}

}  // namespace

bool floats_to_halves_portable(const float* in, Half* out, std::size_t n) {
  bool finite = true;
  for (std::size_t k = 0; k < n; ++k) {
    out[k] = one_float_to_half(in[k]);
    finite &= (out[k] & kHalfExponentBits) != kHalfExponentBits;
  }
  return finite;
}

void halves_to_floats_portable(const Half* in, float* out, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) out[k] = one_half_to_float(in[k]);
}

#if defined(__x86_64__)
bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}

__attribute__((target("avx,f16c"))) bool floats_to_halves_f16c(const float* in, Half* out,
                                                                  std::size_t n) {
  // A half is NaN or Inf when its exponent bits are all ones; the lanes that are stay set in
  // `non_finite`, at the cost of two instructions per eight values.
  const __m128i exponent = _mm_set1_epi16(static_cast<short>(kHalfExponentBits));
  __m128i non_finite = _mm_setzero_si128();
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 values = _mm256_loadu_ps(in + k);
    const __m128i halves = _mm256_cvtps_ph(values, _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), halves);
    non_finite = _mm_or_si128(
        non_finite, _mm_cmpeq_epi16(_mm_and_si128(halves, exponent), exponent));
  }
  const bool tail_finite = floats_to_halves_portable(in + k, out + k, n - k);
  return tail_finite && _mm_testz_si128(non_finite, non_finite);
}

__attribute__((target("avx,f16c"))) void halves_to_floats_f16c(const Half* in, float* out,
                                                                  std::size_t n) {
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + k));
    _mm256_storeu_ps(out + k, _mm256_cvtph_ps(halves));
  }
  halves_to_floats_portable(in + k, out + k, n - k);
}
#else
bool cpu_has_f16c() { return false; }
bool floats_to_halves_f16c(const float* in, Half* out, std::size_t n) {
  return floats_to_halves_portable(in, out, n);
}
void halves_to_floats_f16c(const Half* in, float* out, std::size_t n) {
  halves_to_floats_portable(in, out, n);
}
#endif

}  // namespace detail

Half float_to_half(float value) {
  Half out;
  detail::floats_to_halves_portable(&value, &out, 1);
  return out;
}

float half_to_float(Half value) {
  float out;
  detail::halves_to_floats_portable(&value, &out, 1);
  return out;
}

bool floats_to_halves(std::span<const float> in, std::span<Half> out) {
  if (in.size() != out.size()) throw std::invalid_argument("floats_to_halves: sizes differ");
  if (detail::cpu_has_f16c()) return detail::floats_to_halves_f16c(in.data(), out.data(), in.size());
  return detail::floats_to_halves_portable(in.data(), out.data(), in.size());
}

void halves_to_floats(std::span<const Half> in, std::span<float> out) {
  if (in.size() != out.size()) throw std::invalid_argument("halves_to_floats: sizes differ");
  if (detail::cpu_has_f16c()) {
    detail::halves_to_floats_f16c(in.data(), out.data(), in.size());
  } else {
    detail::halves_to_floats_portable(in.data(), out.data(), in.size());
  }
}

bool all_finite_halves(std::span<const std::byte> bytes) {
  // A half is NaN or Inf exactly when its exponent bits (0x7C00) are all ones, that is when
  // adding one exponent unit (0x0400) to them carries into bit 15. OR-ing those sums over all
  // values is a plain 16-bit reduction that vectorises; memcpy allows any alignment.
  constexpr std::uint16_t kExponentUnit = 0x0400u;
  constexpr std::size_t kBlock = 64;
  const std::size_t count = bytes.size() / sizeof(Half);
  const std::byte* data = bytes.data();
  std::uint16_t carries = 0;
  std::size_t i = 0;
  for (; i + kBlock <= count; i += kBlock) {
    std::uint16_t bits[kBlock];
    std::memcpy(bits, data + i * sizeof(Half), sizeof bits);
    for (std::size_t k = 0; k < kBlock; ++k) {
      carries |= static_cast<std::uint16_t>((bits[k] & detail::kHalfExponentBits) + kExponentUnit);
    }
  }
  for (; i < count; ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, data + i * sizeof(Half), sizeof bits);
    carries |= static_cast<std::uint16_t>((bits & detail::kHalfExponentBits) + kExponentUnit);
  }
  return (carries & 0x8000u) == 0;
}

}  // namespace starling::gossip
