#include "gossip/checksum.h"

#include <cstring>

#include "gossip/crc32c_kernels.h"

namespace starling::gossip {

using detail::crc32c_update;
using detail::fastest_crc32c_kernel;

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  return ~crc32c_update(fastest_crc32c_kernel(), ~seed, p, data.size());
}

namespace {

PayloadScan scan(std::span<const std::byte> data, bool check_finite) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t lane_bytes = 8 * (data.size() / 32);
  PayloadScan result;
  bool* finite = check_finite ? &result.all_finite : nullptr;
  // Lanes start at multiples of 8 bytes, so the kernels' float scan sees whole floats.
  std::byte summary[16 + 32];
  for (std::size_t k = 0; k < 4; ++k) {
    const std::uint32_t lane =
        ~crc32c_update(fastest_crc32c_kernel(), ~0u, p + k * lane_bytes, lane_bytes, finite);
    for (std::size_t b = 0; b < 4; ++b) {
      summary[4 * k + b] = static_cast<std::byte>((lane >> (8 * b)) & 0xFF);
    }
  }
  const auto tail = data.subspan(4 * lane_bytes);
  // (An empty payload has a null data(), which memcpy may not be given even for 0 bytes.)
  if (!tail.empty()) std::memcpy(summary + 16, tail.data(), tail.size());
  // The tail (< 32 bytes) is checksummed inside the summary, and scanned here.
  crc32c_update(fastest_crc32c_kernel(), 0, reinterpret_cast<const unsigned char*>(tail.data()),
                tail.size(), finite);
  result.checksum = crc32c(std::span<const std::byte>(summary, 16 + tail.size()));
  return result;
}

}  // namespace

std::uint32_t payload_checksum(std::span<const std::byte> data) { return scan(data, false).checksum; }

PayloadScan scan_payload(std::span<const std::byte> data) { return scan(data, true); }

}  // namespace starling::gossip
