#pragma once
// CRC-32C (Castagnoli) of payload bytes. Uses the SSE4.2 crc32 instruction when the CPU has it
// (about 8 bytes per cycle-latency), a table otherwise; both give identical results.
#include <cstddef>
#include <cstdint>
#include <span>

namespace starling::gossip {

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t seed = 0);

}  // namespace starling::gossip
