#pragma once
// CRC-32C kernels behind gossip/checksum.h. Every kernel computes the same function; they
// differ only in speed, so checksum.cc picks the fastest one the CPU has and the tests run
// every available kernel against the table.
//
// All kernels work on the raw CRC register (no pre- or post-inversion: callers do that), so
// crc = update(update(crc, a), b) equals update(crc, a || b).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace starling::gossip::detail {

enum class Crc32cKernel {
  table,    // byte-at-a-time table: any CPU
  sse42,    // the crc32 instruction, one dependency chain
  pclmul,   // carry-less-multiply folding, 4 x 128-bit accumulators (PCLMULQDQ)
  vpclmul,  // the same folding on 4 x 512-bit accumulators (AVX-512 + VPCLMULQDQ)
};

std::string_view name_of(Crc32cKernel kernel);

// The kernels this CPU can run, slowest first.
const std::vector<Crc32cKernel>& available_crc32c_kernels();

// The last element of available_crc32c_kernels().
Crc32cKernel fastest_crc32c_kernel();

// Updates the CRC register over p[0..n). If `finite` is not null, it is set to false when a
// little-endian float32 in the range is NaN or Inf (floats at offsets 0, 4, 8, ... from p;
// trailing bytes that do not make a whole float are not scanned) and left alone otherwise,
// in the same pass over memory.
std::uint32_t crc32c_update(Crc32cKernel kernel, std::uint32_t crc, const unsigned char* p,
                            std::size_t n, bool* finite = nullptr);

}  // namespace starling::gossip::detail
