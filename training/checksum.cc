#include "training/checksum.h"

#include <array>

namespace starling::training {
namespace {

// Reflected ECMA-182 polynomial, as used by CRC-64/XZ.
constexpr std::uint64_t kCrc64Polynomial = 0xC96C5795D7870F42ULL;

constexpr std::array<std::uint64_t, 256> make_crc64_table() {
  std::array<std::uint64_t, 256> table{};
  for (std::uint64_t i = 0; i < 256; ++i) {
    std::uint64_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) ? (crc >> 1) ^ kCrc64Polynomial : crc >> 1;
    }
    table[i] = crc;
  }
  return table;
}

constexpr std::array<std::uint64_t, 256> kCrc64Table = make_crc64_table();

}  // namespace

void Crc64::update(std::span<const std::uint8_t> bytes) {
  std::uint64_t crc = state_;
  for (std::uint8_t byte : bytes) {
    crc = kCrc64Table[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  }
  state_ = crc;
}

std::uint64_t crc64(std::span<const std::uint8_t> bytes) {
  Crc64 crc;
  crc.update(bytes);
  return crc.value();
}

void Fnv1a64::update(std::span<const std::uint8_t> bytes) {
  for (std::uint8_t byte : bytes) {
    state_ ^= byte;
    state_ *= 0x100000001b3ULL;
  }
}

void Fnv1a64::update(std::string_view text) {
  update(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  // A terminator keeps ("ab","c") and ("a","bc") apart.
  update(std::uint64_t{text.size()});
}

void Fnv1a64::update(std::uint64_t value) {
  std::array<std::uint8_t, 8> bytes{};
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(value >> (8 * i));
  update(std::span<const std::uint8_t>(bytes));
}

}  // namespace starling::training
