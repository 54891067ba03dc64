#pragma once
// How parameters travel: binary32 (exact), binary16 (half the bytes; half_float.h), or 8-bit
// codes with a scale per block (a quarter; int8_blocks.h). Gossip sends its snapshots in it,
// dynamic averaging its drifts from the reference (f32 or f16 only). Allreduces are always
// binary32.
#include <cstdint>
#include <optional>
#include <string_view>

namespace starling::gossip {

enum class WirePrecision { f32, f16, int8 };
std::string_view to_string(WirePrecision precision);
// The precision a name (as to_string writes it) stands for; nullopt for any other name.
std::optional<WirePrecision> wire_precision_from(std::string_view name);

// The fingerprint a node puts on the wire: the model's, changed for f16 and int8, so that nodes
// configured with different precisions refuse each other (fingerprint mismatch) instead of
// waiting for messages of a type the other never sends.
std::uint64_t wire_fingerprint(std::uint64_t model_fingerprint, WirePrecision precision);

}  // namespace starling::gossip
