#pragma once
// CRC-32C (Castagnoli) of payload bytes. Uses the SSE4.2 crc32 instruction when the CPU has it
// (about 8 bytes per cycle-latency), a table otherwise; both give identical results.
#include <cstddef>
#include <cstdint>
#include <span>

namespace starling::gossip {

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed = 0);

// The payload checksum of the wire format, "CRC-32C/4": the payload is cut into four
// contiguous lanes of L = 8 * floor(n / 32) bytes each and a tail of n - 4L (< 32) bytes; each
// lane gets its own CRC-32C, and the checksum is the CRC-32C of the four lane CRCs
// (little-endian u32 each) followed by the tail. Four independent dependency chains run about
// three times faster than one through the crc32 instruction, and the result is as strong
// against corrupted bytes as one CRC per lane.
std::uint32_t payload_checksum(std::span<const std::byte> data);

// payload_checksum and, in the same pass, whether every little-endian float in `data` is
// finite (the receive path needs both; one pass reads the payload from memory once).
struct PayloadScan {
  std::uint32_t checksum = 0;
  bool all_finite = true;
};
PayloadScan scan_payload(std::span<const std::byte> data);

}  // namespace starling::gossip
