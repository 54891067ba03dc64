#include "gossip/checksum.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace starling::gossip {
namespace {

constexpr std::uint32_t kPolynomial = 0x82F63B78u;  // CRC-32C, reflected

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr auto kTable = make_table();

std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t crc) {
  for (std::size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hardware(const unsigned char* p,
                                                                  std::size_t n,
                                                                  std::uint32_t crc) {
  std::uint64_t c = crc;
  // One dependency chain: the instruction's 3-cycle latency bounds this at ~8 bytes per 3
  // cycles (several GB/s), well above what loopback TCP delivers, so no stream interleaving.
  while (n >= 64) {
    std::uint64_t w[8];
    std::memcpy(w, p, 64);
    c = _mm_crc32_u64(c, w[0]);
    c = _mm_crc32_u64(c, w[1]);
    c = _mm_crc32_u64(c, w[2]);
    c = _mm_crc32_u64(c, w[3]);
    c = _mm_crc32_u64(c, w[4]);
    c = _mm_crc32_u64(c, w[5]);
    c = _mm_crc32_u64(c, w[6]);
    c = _mm_crc32_u64(c, w[7]);
    p += 64;
    n -= 64;
  }
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

// Exponent bits of the two floats in a little-endian 64-bit word; a float is NaN or Inf
// exactly when its exponent bits are all ones.
constexpr std::uint64_t kExponents = 0x7F8000007F800000ull;

inline std::uint64_t special_floats(std::uint64_t word) {
  std::uint64_t e = word & kExponents;
  return static_cast<std::uint64_t>((e & 0xFFFFFFFFu) == 0x7F800000u) |
         static_cast<std::uint64_t>((e >> 32) == 0x7F800000u);
}

// Four CRC-32C lanes of `lane_bytes` each (a multiple of 8) and, if `check_finite`, whether
// any float in them is NaN or Inf. Lanes start at multiples of 8 bytes, so every word holds
// two whole floats.
__attribute__((target("sse4.2"))) bool crc32c_four_lanes_hardware(const unsigned char* p,
                                                                    std::size_t lane_bytes,
                                                                    std::uint32_t crc[4],
                                                                    bool check_finite) {
  std::uint64_t c0 = ~0u, c1 = ~0u, c2 = ~0u, c3 = ~0u;
  std::uint64_t special = 0;
  const unsigned char* l0 = p;
  const unsigned char* l1 = p + lane_bytes;
  const unsigned char* l2 = p + 2 * lane_bytes;
  const unsigned char* l3 = p + 3 * lane_bytes;
  for (std::size_t i = 0; i < lane_bytes; i += 8) {
    std::uint64_t w0, w1, w2, w3;
    std::memcpy(&w0, l0 + i, 8);
    std::memcpy(&w1, l1 + i, 8);
    std::memcpy(&w2, l2 + i, 8);
    std::memcpy(&w3, l3 + i, 8);
    c0 = _mm_crc32_u64(c0, w0);
    c1 = _mm_crc32_u64(c1, w1);
    c2 = _mm_crc32_u64(c2, w2);
    c3 = _mm_crc32_u64(c3, w3);
    if (check_finite) {
      special |= special_floats(w0) | special_floats(w1) | special_floats(w2) | special_floats(w3);
    }
  }
  crc[0] = ~static_cast<std::uint32_t>(c0);
  crc[1] = ~static_cast<std::uint32_t>(c1);
  crc[2] = ~static_cast<std::uint32_t>(c2);
  crc[3] = ~static_cast<std::uint32_t>(c3);
  return special == 0;
}

bool have_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::uint32_t crc = ~seed;
#if defined(__x86_64__)
  if (have_sse42()) return ~crc32c_hardware(p, data.size(), crc);
#endif
  return ~crc32c_table(p, data.size(), crc);
}

namespace {

bool floats_finite(std::span<const std::byte> bytes) {
  std::uint32_t special = 0;
  for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    std::uint32_t bits;
    std::memcpy(&bits, bytes.data() + i, 4);
    special |= static_cast<std::uint32_t>((bits & 0x7F800000u) == 0x7F800000u);
  }
  return special == 0;
}

PayloadScan scan(std::span<const std::byte> data, bool check_finite) {
  const std::size_t lane_bytes = 8 * (data.size() / 32);
  std::uint32_t lanes[4];
  PayloadScan result;
#if defined(__x86_64__)
  if (have_sse42()) {
    result.all_finite = crc32c_four_lanes_hardware(
        reinterpret_cast<const unsigned char*>(data.data()), lane_bytes, lanes, check_finite);
  } else
#endif
  {
    for (std::size_t k = 0; k < 4; ++k) lanes[k] = crc32c(data.subspan(k * lane_bytes, lane_bytes));
    if (check_finite) result.all_finite = floats_finite(data.first(4 * lane_bytes));
  }
  std::byte summary[16 + 32];
  for (std::size_t k = 0; k < 4; ++k) {
    for (std::size_t b = 0; b < 4; ++b) {
      summary[4 * k + b] = static_cast<std::byte>((lanes[k] >> (8 * b)) & 0xFF);
    }
  }
  const auto tail = data.subspan(4 * lane_bytes);
  std::memcpy(summary + 16, tail.data(), tail.size());
  result.checksum = crc32c(std::span<const std::byte>(summary, 16 + tail.size()));
  if (check_finite) result.all_finite = result.all_finite && floats_finite(tail);
  return result;
}

}  // namespace

std::uint32_t payload_checksum(std::span<const std::byte> data) { return scan(data, false).checksum; }

PayloadScan scan_payload(std::span<const std::byte> data) { return scan(data, true); }

}  // namespace starling::gossip
