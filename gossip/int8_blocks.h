#pragma once
// Blockwise 8-bit quantisation for gossip's smallest wire precision (`wire_precision =
// "int8"`): a quarter of float32's bytes, half of binary16's.
//
// Payload layout (little-endian): the values are cut into blocks of kInt8Block (the last may
// be shorter). First one float32 scale per block, then one signed byte ("code") per value:
//
//   [scale_0 .. scale_{B-1}] [code_0 .. code_{n-1}]      B = ceil(n / kInt8Block)
//
// Value k is code_k * scale_{k / kInt8Block}, one float multiply (the same one on every machine
// and in every kernel, so a sender and its receivers widen a payload to the same floats).
//
// Quantising: a block's scale is m / 127, m its largest |x|; code = x * (127 / m) rounded to
// nearest, ties to even, within [-127, 127]. So a value is off by at most about m / 254: a
// block of weights of size 0.05 carries them to within 2e-4. A block that holds NaN or Inf
// gets a NaN scale and zero codes, which every receiver refuses as non-finite (quantize_int8 reports it, so
// the sender can say why); an all-zero block gets scale 0.
//
// Why this is enough for gossip: the apply pass mixes x_i += sum_j W_ij (q(x_j) - q(x_i)) with
// the node's own snapshot as sent (gossip_averager.h), so the cluster's average model is still
// never moved by the rounding; the rounding adds disagreement of about m / 254 per value each
// round, which the next rounds contract again.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "gossip/half_float.h"

namespace starling::gossip {

inline constexpr std::size_t kInt8Block = 256;

// A payload written in full right after allocation.
using Int8Buffer = std::vector<std::byte, UninitialisedAllocator<std::byte>>;

std::size_t int8_blocks(std::size_t values);
// Bytes of the payload that carries `values` values.
std::size_t int8_payload_bytes(std::size_t values);
// The number of values a payload of `bytes` bytes carries, or nothing where no number of
// values gives that length (a malformed payload).
std::optional<std::size_t> int8_payload_values(std::size_t bytes);

// Writes the payload of `in` into `out` (out.size() == int8_payload_bytes(in.size())).
// Returns whether every value was finite (else some block's scale is NaN).
bool quantize_int8(std::span<const float> in, std::span<std::byte> out);
// Widens a payload of `values` values back to floats (out.size() == values).
void dequantize_int8(std::span<const std::byte> payload, std::span<float> out);

// True when every scale of a payload of `values` values is finite (any alignment).
bool int8_scales_finite(std::span<const std::byte> payload, std::size_t values);

// A payload as the apply pass reads it (round_delta.h): value k is codes[k] * scale(k).
struct Int8View {
  const std::byte* scales = nullptr;  // little-endian float32, any alignment
  const std::int8_t* codes = nullptr;
  float scale(std::size_t block) const {  // inline: the apply pass reads one per 8 values
    float s;
    std::memcpy(&s, scales + block * sizeof(float), sizeof(float));
    return s;
  }
  float value(std::size_t k) const { return static_cast<float>(codes[k]) * scale(k / kInt8Block); }
};
// The view of a payload of `values` values (payload.size() == int8_payload_bytes(values)).
Int8View int8_view(std::span<const std::byte> payload, std::size_t values);

namespace detail {
// The quantiser's kernels, bit-identical, exposed so tests can compare them.
bool cpu_has_avx2();
bool quantize_int8_portable(const float* in, std::size_t n, std::byte* out);
bool quantize_int8_avx2(const float* in, std::size_t n, std::byte* out);  // needs cpu_has_avx2()
}  // namespace detail

}  // namespace starling::gossip
