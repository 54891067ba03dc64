#pragma once
// CRC-32C (Castagnoli) of payload bytes. Uses the fastest kernel the CPU has (AVX-512
// VPCLMULQDQ folding, PCLMULQDQ folding, the SSE4.2 crc32 instruction, or a table; see
// gossip/crc32c_kernels.h); all give identical results.
#include <cstddef>
#include <cstdint>
#include <span>

namespace starling::gossip {

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed = 0);

// The payload checksum of the wire format, "CRC-32C/4": the payload is cut into four
// contiguous lanes of L = 8 * floor(n / 32) bytes each and a tail of n - 4L (< 32) bytes; each
// lane gets its own CRC-32C, and the checksum is the CRC-32C of the four lane CRCs
// (little-endian u32 each) followed by the tail. The lanes were chosen when the crc32
// instruction was the fastest kernel (four independent dependency chains); the folding kernels
// no longer need them, but they are part of the wire format. Against corrupted bytes the
// result is as strong as one CRC per lane.
std::uint32_t payload_checksum(std::span<const std::byte> data);

// payload_checksum and, in the same pass, whether every little-endian float in `data` is
// finite (the receive path needs both; one pass reads the payload from memory once).
struct PayloadScan {
  std::uint32_t checksum = 0;
  bool all_finite = true;
};
PayloadScan scan_payload(std::span<const std::byte> data);
// The same for binary16 values (the *_f16 payloads); an odd trailing byte is not a value.
PayloadScan scan_half_payload(std::span<const std::byte> data);

}  // namespace starling::gossip
