#pragma once
// Hashes over bytes, with no dependency on LibTorch.
//
// Crc64 guards checkpoint files: CRC-64/XZ (ECMA-182 polynomial, reflected) detects every
// burst error of up to 64 bits, so a flipped byte or a torn sector is always caught, not just
// with high probability. Fnv1a64 names model layouts (the fingerprint); it is not used against
// corruption.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace starling::training {

class Crc64 {
 public:
  void update(std::span<const std::uint8_t> bytes);
  std::uint64_t value() const { return ~state_; }

 private:
  std::uint64_t state_ = ~std::uint64_t{0};
};

std::uint64_t crc64(std::span<const std::uint8_t> bytes);

class Fnv1a64 {
 public:
  void update(std::span<const std::uint8_t> bytes);
  void update(std::string_view text);
  // Integers are hashed as 8 little-endian bytes, so the value does not depend on the host.
  void update(std::uint64_t value);
  std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace starling::training
