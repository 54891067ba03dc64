// Blockwise 8-bit quantisation (gossip/int8_blocks.h): the payload's length arithmetic, the
// error bound, the special blocks (zero, tiny, non-finite), and the two quantiser kernels
// bit-identical.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gossip/int8_blocks.h"

namespace starling::gossip {
namespace {

std::vector<std::byte> quantized(const std::vector<float>& values, bool* finite = nullptr) {
  std::vector<std::byte> payload(int8_payload_bytes(values.size()));
  const bool ok = quantize_int8(values, payload);
  if (finite) *finite = ok;
  return payload;
}

std::vector<float> widened(const std::vector<std::byte>& payload, std::size_t values) {
  std::vector<float> out(values);
  dequantize_int8(payload, out);
  return out;
}

float scale_at(const std::vector<std::byte>& payload, std::size_t block) {
  float s;
  std::memcpy(&s, payload.data() + block * sizeof(float), sizeof s);
  return s;
}

TEST(Int8Blocks, EveryLengthMapsToOnePayloadLengthAndBack) {
  EXPECT_EQ(int8_payload_bytes(0), 0u);
  EXPECT_EQ(int8_payload_bytes(1), 5u);
  EXPECT_EQ(int8_payload_bytes(256), 260u);
  EXPECT_EQ(int8_payload_bytes(257), 265u);
  EXPECT_EQ(int8_payload_bytes(262144), 262144u + 4096u);
  std::vector<bool> is_payload_length(6000, false);
  for (std::size_t n = 0; n < 5000; ++n) {
    const std::size_t bytes = int8_payload_bytes(n);
    ASSERT_EQ(int8_payload_values(bytes), n) << n;
    if (bytes < is_payload_length.size()) is_payload_length[bytes] = true;
  }
  // Every other length is refused: 1 to 4 bytes (a scale and no code, or part of one), 261
  // (a full block and one byte, too short for another scale and code), ...
  for (std::size_t bytes = 0; bytes < 5000; ++bytes) {
    EXPECT_EQ(int8_payload_values(bytes).has_value(), bool(is_payload_length[bytes])) << bytes;
  }
  EXPECT_FALSE(int8_payload_values(4).has_value());
  EXPECT_FALSE(int8_payload_values(261).has_value());
}

TEST(Int8Blocks, EachValueIsWithinHalfAStepOfItsBlocksScale) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::size_t n = 256 * 9 + 77;  // a short last block
  std::vector<float> values(n);
  for (std::size_t k = 0; k < n; ++k) {
    // Blocks of very different magnitudes, as a model's layers have.
    values[k] = normal(rng) * std::ldexp(1.0f, static_cast<int>(k / 256) * 3 - 12);
  }
  bool finite = false;
  const auto payload = quantized(values, &finite);
  EXPECT_TRUE(finite);
  const auto back = widened(payload, n);
  for (std::size_t b = 0; b < int8_blocks(n); ++b) {
    float largest = 0.0f;
    for (std::size_t k = b * 256; k < std::min(n, (b + 1) * 256); ++k) {
      largest = std::max(largest, std::fabs(values[k]));
    }
    EXPECT_FLOAT_EQ(scale_at(payload, b), largest / 127.0f);
    for (std::size_t k = b * 256; k < std::min(n, (b + 1) * 256); ++k) {
      // Half a step, plus the rounding of 127 / m and of the products.
      ASSERT_LE(std::fabs(back[k] - values[k]), largest / 254.0f * (1.0f + 1e-5f)) << k;
    }
  }
}

TEST(Int8Blocks, TheLargestValueOfABlockIsExactAndTiesRoundToEven) {
  // m = 127: scale 1, codes are the values rounded to nearest, ties to even.
  std::vector<float> values{127.0f, -127.0f, 2.5f, 3.5f, -2.5f, 0.49f, -0.51f, 0.0f};
  const auto payload = quantized(values);
  EXPECT_EQ(scale_at(payload, 0), 1.0f);
  EXPECT_EQ(widened(payload, values.size()),
            (std::vector<float>{127.0f, -127.0f, 2.0f, 4.0f, -2.0f, 0.0f, -1.0f, 0.0f}));
}

TEST(Int8Blocks, ZeroAndTinyBlocksGoAsZerosWithScaleZero) {
  std::vector<float> values(512, 0.0f);
  values[300] = 1e-35f;  // block 1: too small for 127 / m
  bool finite = false;
  const auto payload = quantized(values, &finite);
  EXPECT_TRUE(finite);
  EXPECT_EQ(scale_at(payload, 0), 0.0f);
  EXPECT_EQ(scale_at(payload, 1), 0.0f);
  for (float v : widened(payload, values.size())) EXPECT_EQ(v, 0.0f);
  EXPECT_TRUE(int8_scales_finite(payload, values.size()));
}

TEST(Int8Blocks, ANonFiniteValueMakesItsBlocksScaleNaNAndIsReported) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> values(600, 0.25f);
    values[260] = bad;  // block 1 of 3
    bool finite = true;
    const auto payload = quantized(values, &finite);
    EXPECT_FALSE(finite);
    EXPECT_EQ(scale_at(payload, 0), 0.25f / 127.0f);
    EXPECT_TRUE(std::isnan(scale_at(payload, 1)));
    EXPECT_EQ(scale_at(payload, 2), 0.25f / 127.0f);
    EXPECT_FALSE(int8_scales_finite(payload, values.size()));
  }
}

TEST(Int8Blocks, RefusesBuffersOfTheWrongLength) {
  std::vector<float> values(300, 1.0f);
  std::vector<std::byte> short_payload(int8_payload_bytes(300) - 1);
  EXPECT_THROW(quantize_int8(values, short_payload), std::invalid_argument);
  const auto payload = quantized(values);
  std::vector<float> out(299);
  EXPECT_THROW(dequantize_int8(payload, out), std::invalid_argument);
  EXPECT_THROW(int8_view(payload, 301), std::invalid_argument);
}

TEST(Int8Blocks, TheVectorQuantiserMatchesThePortableOneBitForBit) {
  if (!detail::cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2";
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (std::size_t n : {0u, 1u, 31u, 255u, 256u, 257u, 1000u, 4096u, 262144u + 5u}) {
    std::vector<float> values(n);
    for (float& v : values) v = normal(rng);
    // Ties and exact block maxima, a zero block, a tiny one, a non-finite one.
    if (n > 8) values[3] = values[4] = 0.0f;
    if (n >= 1024) {
      for (std::size_t k = 256; k < 512; ++k) values[k] = static_cast<float>(k % 9) - 4.5f;
      for (std::size_t k = 512; k < 768; ++k) values[k] = 0.0f;
      values[700] = 1e-33f;
      values[900] = std::numeric_limits<float>::quiet_NaN();
    }
    std::vector<std::byte> portable(int8_payload_bytes(n)), vector(int8_payload_bytes(n));
    const bool f_portable = detail::quantize_int8_portable(values.data(), n, portable.data());
    const bool f_vector = detail::quantize_int8_avx2(values.data(), n, vector.data());
    EXPECT_EQ(f_portable, f_vector) << n;
    EXPECT_EQ(portable, vector) << n;
  }
}

}  // namespace
}  // namespace starling::gossip
