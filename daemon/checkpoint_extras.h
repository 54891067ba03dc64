#pragma once
// Encoding sync state into a checkpoint's named extras (little-endian, explicit sizes).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace starling::daemon {

void put_u64(training::CheckpointExtras& extras, const std::string& key, std::uint64_t value);
std::optional<std::uint64_t> get_u64(const training::CheckpointExtras& extras,
                                     const std::string& key);

void put_floats(training::CheckpointExtras& extras, const std::string& key,
                std::span<const float> values);
std::optional<std::vector<float>> get_floats(const training::CheckpointExtras& extras,
                                             const std::string& key);

}  // namespace starling::daemon
