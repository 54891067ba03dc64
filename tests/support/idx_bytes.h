#pragma once
// The bytes of an uncompressed IDX file (the MNIST layout): magic with the element type and
// the number of dimensions, each dimension big-endian, then every element set to `fill`.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace starling::testing {

inline std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                           std::uint8_t fill = 7, std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> out = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  std::size_t total = 1;
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(d >> shift));
    total *= d;
  }
  out.insert(out.end(), total, fill);
  return out;
}

}  // namespace starling::testing
