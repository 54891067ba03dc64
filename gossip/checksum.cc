#include "gossip/checksum.h"

#include <algorithm>
#include <cstring>

#include "gossip/crc32c_kernels.h"
#include "gossip/half_float.h"

namespace starling::gossip {

using detail::crc32c_update;
using detail::fastest_crc32c_kernel;

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  return ~crc32c_update(fastest_crc32c_kernel(), ~seed, p, data.size());
}

namespace {

enum class Values { unchecked, floats, halves };

// The CRC of one lane; with Values::halves, also whether its halves are finite, checked block
// by block right after the block's CRC, while the block is still in the L1 cache (one read of
// the payload from memory, as the CRC kernels' fused float scan does for floats).
std::uint32_t lane_crc(const unsigned char* p, std::size_t bytes, Values values, bool& finite) {
  if (values != Values::halves) {
    return ~crc32c_update(fastest_crc32c_kernel(), ~0u, p, bytes,
                          values == Values::floats ? &finite : nullptr);
  }
  constexpr std::size_t kBlock = 16 * 1024;
  std::uint32_t state = ~0u;
  for (std::size_t at = 0; at < bytes; at += kBlock) {
    const std::size_t n = std::min(kBlock, bytes - at);
    state = crc32c_update(fastest_crc32c_kernel(), state, p + at, n);
    finite = all_finite_halves(std::span(reinterpret_cast<const std::byte*>(p + at), n)) && finite;
  }
  return ~state;
}

PayloadScan scan(std::span<const std::byte> data, Values values) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t lane_bytes = 8 * (data.size() / 32);
  PayloadScan result;
  // Lanes start at multiples of 8 bytes, so the float and half scans see whole values.
  std::byte summary[16 + 32];
  for (std::size_t k = 0; k < 4; ++k) {
    const std::uint32_t lane = lane_crc(p + k * lane_bytes, lane_bytes, values, result.all_finite);
    for (std::size_t b = 0; b < 4; ++b) {
      summary[4 * k + b] = static_cast<std::byte>((lane >> (8 * b)) & 0xFF);
    }
  }
  const auto tail = data.subspan(4 * lane_bytes);
  // (An empty payload has a null data(), which memcpy may not be given even for 0 bytes.)
  if (!tail.empty()) std::memcpy(summary + 16, tail.data(), tail.size());
  // The tail (< 32 bytes) is checksummed inside the summary, and scanned here.
  if (values == Values::floats) {
    crc32c_update(fastest_crc32c_kernel(), 0, reinterpret_cast<const unsigned char*>(tail.data()),
                  tail.size(), &result.all_finite);
  } else if (values == Values::halves) {
    result.all_finite = all_finite_halves(tail) && result.all_finite;
  }
  result.checksum = crc32c(std::span<const std::byte>(summary, 16 + tail.size()));
  return result;
}

}  // namespace

std::uint32_t payload_checksum(std::span<const std::byte> data) {
  return scan(data, Values::unchecked).checksum;
}

PayloadScan scan_payload(std::span<const std::byte> data) { return scan(data, Values::floats); }

PayloadScan scan_half_payload(std::span<const std::byte> data) { return scan(data, Values::halves); }

}  // namespace starling::gossip
