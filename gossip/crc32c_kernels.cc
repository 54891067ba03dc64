#include "gossip/crc32c_kernels.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The folding kernels (pclmul, vpclmul) follow the method of Gopal et al., "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ Instruction" (Intel, 2009), with the
// fold constants derived here rather than tabulated:
//
// Read a 16-byte block as a polynomial A over GF(2) whose first message bit is the highest
// power, A = a_hi x^64 + a_lo (a_hi: the first 8 bytes). A block that lies d bits before
// another one may be replaced by any G with G = A x^d (mod P) that is added into the later
// block, without changing the CRC. With a_hi, a_lo, G in the reflected bit order that the
// reflected CRC-32C uses (the little-endian load of the bytes gives rev64(a_hi) in the low
// qword), a carry-less product of two reflected 64-bit values is rev127 of the product, one
// bit short of rev128; so
//     G = clmul(lo, rev64(x^(d+63) mod P)) xor clmul(hi, rev64(x^(d-1) mod P))
// is the reflected form of x(a_hi x^(d+63) + a_lo x^(d-1)) = A x^d (mod P), and has at most
// 96 significant bits. Once everything is folded into one 16-byte block G, the CRC of the
// whole input is the CRC (from a zero register) of G's 16 bytes followed by the bytes left
// over, because both inputs are the same polynomial modulo P at the same distance from the
// end. The initial register is XORed into the first four bytes, which is what a reflected
// CRC does with it.

namespace starling::gossip::detail {
namespace {

constexpr std::uint32_t kReflectedPolynomial = 0x82F63B78u;  // CRC-32C (Castagnoli)
constexpr std::uint32_t kNormalPolynomial = 0x1EDC6F41u;     // the same, x^32 implied

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kReflectedPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr auto kTable = make_table();

std::uint32_t update_table(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

constexpr std::uint32_t kExponentBits = 0x7F800000u;  // all ones: NaN or Inf

// False when a whole float in p[0..n) is NaN or Inf.
bool floats_finite(const unsigned char* p, std::size_t n) {
  std::uint32_t special = 0;
  for (std::size_t i = 0; i + 4 <= n; i += 4) {
    std::uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    special |= static_cast<std::uint32_t>((bits & kExponentBits) == kExponentBits);
  }
  return special == 0;
}

// x^k mod P, normal bit order (bit i: the coefficient of x^i).
constexpr std::uint32_t x_pow_mod(unsigned k) {
  std::uint32_t r = 1;
  for (unsigned i = 0; i < k; ++i) {
    const bool carry = (r & 0x80000000u) != 0;
    r <<= 1;
    if (carry) r ^= kNormalPolynomial;
  }
  return r;
}

// A polynomial of degree < 32 in the reflected 64-bit form: x^i goes to bit 63 - i.
constexpr std::uint64_t reflect64(std::uint32_t v) {
  std::uint64_t r = 0;
  for (int i = 0; i < 32; ++i) {
    if ((v >> i) & 1u) r |= std::uint64_t{1} << (63 - i);
  }
  return r;
}

// The pair of constants that folds a block d bits forward: {for the low qword, for the high}.
struct FoldConstants {
  std::uint64_t low;
  std::uint64_t high;
};

constexpr FoldConstants fold_by(unsigned bits) {
  return {reflect64(x_pow_mod(bits + 63)), reflect64(x_pow_mod(bits - 1))};
}

constexpr FoldConstants kFold128 = fold_by(128);
constexpr FoldConstants kFold256 = fold_by(256);
constexpr FoldConstants kFold384 = fold_by(384);
constexpr FoldConstants kFold512 = fold_by(512);
constexpr FoldConstants kFold2048 = fold_by(2048);

#if defined(__x86_64__)

__attribute__((target("sse4.2"))) std::uint32_t update_sse42(std::uint32_t crc,
                                                              const unsigned char* p,
                                                              std::size_t n) {
  std::uint64_t c = crc;
  // One dependency chain; the folding kernels take over for long inputs.
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

#define STARLING_PCLMUL_TARGET __attribute__((target("pclmul,sse4.2")))
#define STARLING_VPCLMUL_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,vpclmulqdq,pclmul,sse4.2")))

STARLING_PCLMUL_TARGET inline __m128i constants128(FoldConstants k) {
  return _mm_set_epi64x(static_cast<long long>(k.high), static_cast<long long>(k.low));
}

STARLING_PCLMUL_TARGET inline __m128i fold128(__m128i block, __m128i k) {
  return _mm_xor_si128(_mm_clmulepi64_si128(block, k, 0x00), _mm_clmulepi64_si128(block, k, 0x11));
}

STARLING_PCLMUL_TARGET inline __m128i load128(const unsigned char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

STARLING_PCLMUL_TARGET inline __m128i special128(__m128i v) {
  const __m128i e = _mm_set1_epi32(static_cast<int>(kExponentBits));
  return _mm_cmpeq_epi32(_mm_and_si128(v, e), e);
}

// Folds one 128-bit remainder `g` (everything before p) and then p[0..n), 16 bytes at a time,
// and finishes with the crc32 instruction. Scans what it loads when Scan.
template <bool Scan>
STARLING_PCLMUL_TARGET std::uint32_t finish128(__m128i g, const unsigned char* p, std::size_t n,
                                               __m128i& special) {
  const __m128i k128 = constants128(kFold128);
  for (; n >= 16; p += 16, n -= 16) {
    const __m128i v = load128(p);
    if constexpr (Scan) special = _mm_or_si128(special, special128(v));
    g = _mm_xor_si128(fold128(g, k128), v);
  }
  alignas(16) unsigned char bytes[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(bytes), g);
  std::uint32_t crc = update_sse42(0, bytes, 16);
  return update_sse42(crc, p, n);
}

template <bool Scan>
STARLING_PCLMUL_TARGET std::uint32_t update_pclmul(std::uint32_t crc, const unsigned char* p,
                                                   std::size_t n, bool* finite) {
  if (n < 64) {
    if constexpr (Scan) {
      if (!floats_finite(p, n)) *finite = false;
    }
    return update_sse42(crc, p, n);
  }
  __m128i special = _mm_setzero_si128();
  __m128i x0 = _mm_xor_si128(load128(p), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x1 = load128(p + 16);
  __m128i x2 = load128(p + 32);
  __m128i x3 = load128(p + 48);
  if constexpr (Scan) {
    special = _mm_or_si128(_mm_or_si128(special128(load128(p)), special128(x1)),
                           _mm_or_si128(special128(x2), special128(x3)));
  }
  p += 64;
  n -= 64;
  const __m128i k512 = constants128(kFold512);
  for (; n >= 64; p += 64, n -= 64) {
    const __m128i v0 = load128(p), v1 = load128(p + 16), v2 = load128(p + 32), v3 = load128(p + 48);
    if constexpr (Scan) {
      special = _mm_or_si128(special, _mm_or_si128(_mm_or_si128(special128(v0), special128(v1)),
                                                   _mm_or_si128(special128(v2), special128(v3))));
    }
    x0 = _mm_xor_si128(fold128(x0, k512), v0);
    x1 = _mm_xor_si128(fold128(x1, k512), v1);
    x2 = _mm_xor_si128(fold128(x2, k512), v2);
    x3 = _mm_xor_si128(fold128(x3, k512), v3);
  }
  __m128i g = _mm_xor_si128(_mm_xor_si128(fold128(x0, constants128(kFold384)),
                                          fold128(x1, constants128(kFold256))),
                            _mm_xor_si128(fold128(x2, constants128(kFold128)), x3));
  const std::uint32_t result = finish128<Scan>(g, p, n, special);
  if constexpr (Scan) {
    if (!_mm_testz_si128(special, special) || !floats_finite(p + (n & ~std::size_t{15}), n & 15)) {
      *finite = false;
    }
  }
  return result;
}

STARLING_VPCLMUL_TARGET inline __m512i fold512(__m512i block, __m512i k) {
  // (a.lo x k.lo) xor (a.hi x k.hi) in each 128-bit lane.
  return _mm512_xor_si512(_mm512_clmulepi64_epi128(block, k, 0x00),
                          _mm512_clmulepi64_epi128(block, k, 0x11));
}

STARLING_VPCLMUL_TARGET inline __m512i fold512_xor(__m512i block, __m512i k, __m512i next) {
  // 0x96: a xor b xor c.
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(block, k, 0x00),
                                   _mm512_clmulepi64_epi128(block, k, 0x11), next, 0x96);
}

STARLING_VPCLMUL_TARGET inline __m512i constants512(FoldConstants k) {
  const auto low = static_cast<long long>(k.low), high = static_cast<long long>(k.high);
  return _mm512_set_epi64(high, low, high, low, high, low, high, low);
}

STARLING_VPCLMUL_TARGET inline __m512i load512(const unsigned char* p) {
  return _mm512_loadu_si512(p);
}

STARLING_VPCLMUL_TARGET inline __mmask16 special512(__m512i v) {
  const __m512i e = _mm512_set1_epi32(static_cast<int>(kExponentBits));
  return _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, e), e);
}

template <bool Scan>
STARLING_VPCLMUL_TARGET std::uint32_t update_vpclmul(std::uint32_t crc, const unsigned char* p,
                                                     std::size_t n, bool* finite) {
  if (n < 256) return update_pclmul<Scan>(crc, p, n, finite);
  __mmask16 special = 0;
  __m512i z0 = load512(p), z1 = load512(p + 64), z2 = load512(p + 128), z3 = load512(p + 192);
  if constexpr (Scan) {
    special = static_cast<__mmask16>(special512(z0) | special512(z1) | special512(z2) |
                                     special512(z3));
  }
  z0 = _mm512_xor_si512(z0, _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(crc))));
  p += 256;
  n -= 256;
  const __m512i k2048 = constants512(kFold2048);
  for (; n >= 256; p += 256, n -= 256) {
    const __m512i v0 = load512(p), v1 = load512(p + 64), v2 = load512(p + 128),
                  v3 = load512(p + 192);
    if constexpr (Scan) {
      special = static_cast<__mmask16>(special | special512(v0) | special512(v1) |
                                       special512(v2) | special512(v3));
    }
    z0 = fold512_xor(z0, k2048, v0);
    z1 = fold512_xor(z1, k2048, v1);
    z2 = fold512_xor(z2, k2048, v2);
    z3 = fold512_xor(z3, k2048, v3);
  }
  const __m512i k512 = constants512(kFold512);
  z1 = fold512_xor(z0, k512, z1);
  z2 = fold512_xor(z1, k512, z2);
  z3 = fold512_xor(z2, k512, z3);
  for (; n >= 64; p += 64, n -= 64) {
    const __m512i v = load512(p);
    if constexpr (Scan) special = static_cast<__mmask16>(special | special512(v));
    z3 = fold512_xor(z3, k512, v);
  }
  // The four 128-bit lanes of z3 are consecutive blocks, the first in lane 0. (Through memory:
  // GCC 12's lane-extract intrinsics trip -Wmaybe-uninitialized in its own headers.)
  alignas(64) unsigned char lanes[64];
  _mm512_store_si512(lanes, z3);
  const __m128i g = _mm_xor_si128(
      _mm_xor_si128(fold128(load128(lanes), constants128(kFold384)),
                    fold128(load128(lanes + 16), constants128(kFold256))),
      _mm_xor_si128(fold128(load128(lanes + 32), constants128(kFold128)), load128(lanes + 48)));
  __m128i special_tail = _mm_setzero_si128();
  const std::uint32_t result = finish128<Scan>(g, p, n, special_tail);
  if constexpr (Scan) {
    if (special != 0 || !_mm_testz_si128(special_tail, special_tail) ||
        !floats_finite(p + (n & ~std::size_t{15}), n & 15)) {
      *finite = false;
    }
  }
  return result;
}

#endif  // __x86_64__

std::vector<Crc32cKernel> detect_kernels() {
  std::vector<Crc32cKernel> kernels{Crc32cKernel::table};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) {
    kernels.push_back(Crc32cKernel::sse42);
    if (__builtin_cpu_supports("pclmul")) {
      kernels.push_back(Crc32cKernel::pclmul);
      if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq")) {
        kernels.push_back(Crc32cKernel::vpclmul);
      }
    }
  }
#endif
  return kernels;
}

}  // namespace

std::string_view name_of(Crc32cKernel kernel) {
  switch (kernel) {
    case Crc32cKernel::table: return "table";
    case Crc32cKernel::sse42: return "sse4.2 crc32";
    case Crc32cKernel::pclmul: return "pclmulqdq folding";
    case Crc32cKernel::vpclmul: return "avx-512 vpclmulqdq folding";
  }
  return "?";
}

const std::vector<Crc32cKernel>& available_crc32c_kernels() {
  static const std::vector<Crc32cKernel> kernels = detect_kernels();
  return kernels;
}

Crc32cKernel fastest_crc32c_kernel() {
  static const Crc32cKernel fastest = available_crc32c_kernels().back();
  return fastest;
}

std::uint32_t crc32c_update(Crc32cKernel kernel, std::uint32_t crc, const unsigned char* p,
                            std::size_t n, bool* finite) {
  switch (kernel) {
#if defined(__x86_64__)
    case Crc32cKernel::vpclmul:
      return finite ? update_vpclmul<true>(crc, p, n, finite)
                    : update_vpclmul<false>(crc, p, n, nullptr);
    case Crc32cKernel::pclmul:
      return finite ? update_pclmul<true>(crc, p, n, finite)
                    : update_pclmul<false>(crc, p, n, nullptr);
    case Crc32cKernel::sse42:
      if (finite && !floats_finite(p, n)) *finite = false;
      return update_sse42(crc, p, n);
#endif
    default:
      if (finite && !floats_finite(p, n)) *finite = false;
      return update_table(crc, p, n);
  }
}

}  // namespace starling::gossip::detail
