#include "gossip/int8_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace starling::gossip {

namespace {

// Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer,
// to nearest with ties to even (the default rounding mode), in two plain float operations
// that both kernels perform alike. (The build never reassociates float arithmetic.)
constexpr float kRoundingMagic = 12582912.0f;
// A block whose largest |x| is below this is sent as zeros (scale 0): 127 / m would overflow.
constexpr float kTinyBlock = 0x1p-100f;
constexpr float kLargestFinite = std::numeric_limits<float>::max();
static_assert(kInt8Block % 32 == 0, "the AVX2 kernel packs 32 codes at a time");

struct BlockScale {
  bool finite = true;
  float scale = 0.0f;    // what goes on the wire
  float inverse = 0.0f;  // 127 / m; 0 for a zero or non-finite block
};

BlockScale scale_of(float largest, bool finite) {
  BlockScale s;
  s.finite = finite;
  if (!finite) {
    s.scale = std::numeric_limits<float>::quiet_NaN();
  } else if (largest >= kTinyBlock) {
    s.scale = largest / 127.0f;
    s.inverse = 127.0f / largest;
  }
  return s;
}

inline std::int8_t code_of(float x, float inverse) {
  float r = (x * inverse + kRoundingMagic) - kRoundingMagic;
  r = std::min(127.0f, std::max(-127.0f, r));
  return static_cast<std::int8_t>(static_cast<int>(r));
}

void put_scale(std::byte* scales, std::size_t block, float scale) {
  std::memcpy(scales + block * sizeof(float), &scale, sizeof(float));
}

// One block of `n` values, portably; the AVX2 kernel's short last block uses it too.
bool quantize_block_portable(const float* in, std::size_t n, std::byte* scales, std::size_t block,
                             std::int8_t* codes) {
  float largest = 0.0f;
  bool finite = true;
  for (std::size_t k = 0; k < n; ++k) {
    const float a = std::fabs(in[k]);
    finite = finite && a <= kLargestFinite;  // false for Inf and NaN
    largest = a > largest ? a : largest;
  }
  const BlockScale s = scale_of(largest, finite);
  put_scale(scales, block, s.scale);
  if (!finite) {
    std::memset(codes, 0, n);  // a block refused anyway: no NaN through the conversion
    return false;
  }
  for (std::size_t k = 0; k < n; ++k) codes[k] = code_of(in[k], s.inverse);
  return true;
}

}  // namespace

std::size_t int8_blocks(std::size_t values) { return (values + kInt8Block - 1) / kInt8Block; }

std::size_t int8_payload_bytes(std::size_t values) {
  return values + sizeof(float) * int8_blocks(values);
}

std::optional<std::size_t> int8_payload_values(std::size_t bytes) {
  // A full block takes 4 + 256 = 260 bytes and a partial one fewer, so `bytes` needs exactly
  // ceil(bytes / 260) blocks; whatever is not their scales is codes.
  constexpr std::size_t kFullBlockBytes = sizeof(float) + kInt8Block;
  const std::size_t blocks = (bytes + kFullBlockBytes - 1) / kFullBlockBytes;
  if (bytes < sizeof(float) * blocks) return std::nullopt;
  const std::size_t values = bytes - sizeof(float) * blocks;
  if (int8_blocks(values) != blocks) return std::nullopt;
  return values;
}

Int8View int8_view(std::span<const std::byte> payload, std::size_t values) {
  if (payload.size() != int8_payload_bytes(values)) {
    throw std::invalid_argument("int8_view: payload length does not match the value count");
  }
  return Int8View{payload.data(),
                  reinterpret_cast<const std::int8_t*>(payload.data() + sizeof(float) * int8_blocks(values))};
}

bool int8_scales_finite(std::span<const std::byte> payload, std::size_t values) {
  const std::size_t blocks = int8_blocks(values);
  if (payload.size() < sizeof(float) * blocks) return false;
  std::uint32_t all_ones = 0;
  for (std::size_t b = 0; b < blocks; ++b) {
    std::uint32_t bits;
    std::memcpy(&bits, payload.data() + b * sizeof(float), sizeof bits);
    // Exponent bits all ones: Inf or NaN. OR-ing one flag per scale keeps the loop branch-free.
    all_ones |= static_cast<std::uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
  }
  return all_ones == 0;
}

void dequantize_int8(std::span<const std::byte> payload, std::span<float> out) {
  const Int8View view = int8_view(payload, out.size());
  for (std::size_t begin = 0; begin < out.size(); begin += kInt8Block) {
    const std::size_t end = std::min(out.size(), begin + kInt8Block);
    const float scale = view.scale(begin / kInt8Block);
    for (std::size_t k = begin; k < end; ++k) out[k] = static_cast<float>(view.codes[k]) * scale;
  }
}

namespace detail {

bool cpu_has_avx2() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

bool quantize_int8_portable(const float* in, std::size_t n, std::byte* out) {
  auto* codes = reinterpret_cast<std::int8_t*>(out + sizeof(float) * int8_blocks(n));
  bool finite = true;
  for (std::size_t begin = 0, block = 0; begin < n; begin += kInt8Block, ++block) {
    const std::size_t count = std::min(kInt8Block, n - begin);
    finite = quantize_block_portable(in + begin, count, out, block, codes + begin) && finite;
  }
  return finite;
}

#if defined(__x86_64__)
// code_of for eight values, as 32-bit integers.
__attribute__((target("avx2"))) inline __m256i codes8(const float* x, __m256 inverse) {
  const __m256 magic = _mm256_set1_ps(kRoundingMagic);
  __m256 r = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x), inverse), magic);
  r = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(_mm256_set1_ps(-127.0f), _mm256_sub_ps(r, magic)));
  return _mm256_cvttps_epi32(r);
}

__attribute__((target("avx2"))) bool quantize_int8_avx2(const float* in, std::size_t n,
                                                        std::byte* out) {
  auto* codes = reinterpret_cast<std::int8_t*>(out + sizeof(float) * int8_blocks(n));
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 largest_finite = _mm256_set1_ps(kLargestFinite);
  // packs_epi32 then packs_epi16 leave four values of each input in each 128-bit lane; this
  // puts the 32 bytes back in input order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  bool finite = true;
  std::size_t begin = 0, block = 0;
  for (; begin + kInt8Block <= n; begin += kInt8Block, ++block) {
    const float* x = in + begin;
    __m256 largest8 = _mm256_setzero_ps();
    __m256 finite8 = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (std::size_t k = 0; k < kInt8Block; k += 8) {
      const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask);
      finite8 = _mm256_and_ps(finite8, _mm256_cmp_ps(a, largest_finite, _CMP_LE_OQ));
      largest8 = _mm256_max_ps(largest8, a);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, largest8);
    float largest = 0.0f;
    for (float lane : lanes) largest = lane > largest ? lane : largest;
    const bool block_finite = _mm256_movemask_ps(finite8) == 0xFF;
    // (With a NaN in the block `largest` may miss it; the scale is NaN then regardless.)
    const BlockScale s = scale_of(largest, block_finite);
    finite = finite && block_finite;
    put_scale(out, block, s.scale);
    if (!block_finite) {
      std::memset(codes + begin, 0, kInt8Block);
      continue;
    }
    const __m256 inverse = _mm256_set1_ps(s.inverse);
    for (std::size_t k = 0; k < kInt8Block; k += 32) {
      const __m256i ab = _mm256_packs_epi32(codes8(x + k, inverse), codes8(x + k + 8, inverse));
      const __m256i cd =
          _mm256_packs_epi32(codes8(x + k + 16, inverse), codes8(x + k + 24, inverse));
      const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + begin + k), bytes);
    }
  }
  if (begin < n) {
    finite = quantize_block_portable(in + begin, n - begin, out, block, codes + begin) && finite;
  }
  return finite;
}
#else
bool quantize_int8_avx2(const float* in, std::size_t n, std::byte* out) {
  return quantize_int8_portable(in, n, out);
}
#endif

}  // namespace detail

bool quantize_int8(std::span<const float> in, std::span<std::byte> out) {
  if (out.size() != int8_payload_bytes(in.size())) {
    throw std::invalid_argument("quantize_int8: output length does not match the value count");
  }
  return detail::cpu_has_avx2() ? detail::quantize_int8_avx2(in.data(), in.size(), out.data())
                                : detail::quantize_int8_portable(in.data(), in.size(), out.data());
}

}  // namespace starling::gossip
