#include "daemon/checkpoint_extras.h"

#include <bit>
#include <cstring>

namespace starling::daemon {

static_assert(std::endian::native == std::endian::little, "extras are stored little-endian");

void put_u64(training::CheckpointExtras& extras, const std::string& key, std::uint64_t value) {
  std::vector<std::uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<std::uint8_t>(value >> (8 * i));
  extras[key] = std::move(bytes);
}

std::optional<std::uint64_t> get_u64(const training::CheckpointExtras& extras,
                                     const std::string& key) {
  auto it = extras.find(key);
  if (it == extras.end() || it->second.size() != 8) return std::nullopt;
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= static_cast<std::uint64_t>(it->second[i]) << (8 * i);
  return value;
}

void put_floats(training::CheckpointExtras& extras, const std::string& key,
                std::span<const float> values) {
  std::vector<std::uint8_t> bytes(values.size_bytes());
  std::memcpy(bytes.data(), values.data(), bytes.size());
  extras[key] = std::move(bytes);
}

std::optional<std::vector<float>> get_floats(const training::CheckpointExtras& extras,
                                             const std::string& key) {
  auto it = extras.find(key);
  if (it == extras.end() || it->second.size() % sizeof(float) != 0) return std::nullopt;
  std::vector<float> values(it->second.size() / sizeof(float));
  std::memcpy(values.data(), it->second.data(), it->second.size());
  return values;
}

}  // namespace starling::daemon
