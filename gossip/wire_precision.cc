#include "gossip/wire_precision.h"

namespace starling::gossip {

std::string_view to_string(WirePrecision precision) {
  switch (precision) {
    case WirePrecision::f16: return "f16";
    case WirePrecision::int8: return "int8";
    case WirePrecision::f32: break;
  }
  return "f32";
}

std::optional<WirePrecision> wire_precision_from(std::string_view name) {
  for (auto precision : {WirePrecision::f32, WirePrecision::f16, WirePrecision::int8}) {
    if (to_string(precision) == name) return precision;
  }
  return std::nullopt;
}

std::uint64_t wire_fingerprint(std::uint64_t model_fingerprint, WirePrecision precision) {
  if (precision == WirePrecision::f32) return model_fingerprint;  // as before f16 existed
  // Any fixed change that no f32 fingerprint collides with in practice: a multiply-xorshift
  // scramble of the model's fingerprint with a constant of its own.
  std::uint64_t x = model_fingerprint ^ (precision == WirePrecision::f16
                                             ? 0x6631365F77697265ull    // "f16_wire"
                                             : 0x696E74385F776972ull);  // "int8_wir"
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  return x;
}

}  // namespace starling::gossip
