// binary16 conversions for wire_precision = "f16": exact where a half can hold the value,
// round to nearest even elsewhere, Inf beyond the range, and the F16C and portable kernels
// bit-identical.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gossip/half_float.h"

namespace starling::gossip {
namespace {

bool is_nan_half(Half h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }

TEST(HalfFloat, EveryHalfWidensExactlyAndNarrowsBackToItself) {
  for (std::uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const auto h = static_cast<Half>(bits);
    const float f = half_to_float(h);
    if (is_nan_half(h)) {
      EXPECT_TRUE(std::isnan(f)) << bits;
      EXPECT_TRUE(is_nan_half(float_to_half(f))) << bits;
    } else {
      EXPECT_EQ(float_to_half(f), h) << "half 0x" << std::hex << bits << " -> " << f;
    }
  }
  EXPECT_EQ(half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(half_to_float(0xC000), -2.0f);
}

TEST(HalfFloat, RoundsToNearestEvenAndOverflowsToInfinity) {
  const float ulp_at_one = std::ldexp(1.0f, -10);
  EXPECT_EQ(float_to_half(1.0f + ulp_at_one / 2), 0x3C00);      // tie: to the even 1.0
  EXPECT_EQ(float_to_half(1.0f + 1.5f * ulp_at_one), 0x3C02);   // tie: to the even 1 + 2 ulp
  EXPECT_EQ(float_to_half(1.0f + 0.6f * ulp_at_one), 0x3C01);   // nearest
  EXPECT_EQ(float_to_half(65519.0f), 0x7BFF);                   // still rounds to 65504
  EXPECT_EQ(float_to_half(65520.0f), 0x7C00);                   // tie above the largest: Inf
  EXPECT_EQ(float_to_half(-65520.0f), 0xFC00);
  EXPECT_EQ(float_to_half(1e10f), 0x7C00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(is_nan_half(float_to_half(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  // Subnormal halves: the unit is 2^-24.
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);          // tie: to the even zero
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -26)), 0x0001);          // 0.75 units: up
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -25)), 0x0002);          // tie 1.5 units: to 2
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14) * 0.99999f), 0x0400);  // rounds up to normal
  EXPECT_EQ(float_to_half(1e-10f), 0x0000);
  // The relative error of any value in the normal range is at most 2^-11.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-14.0f, 15.9f);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::exp2(exponent(rng)) * (i % 2 ? 1.0f : -1.0f);
    const float back = half_to_float(float_to_half(x));
    EXPECT_LE(std::fabs(back - x), std::fabs(x) * std::ldexp(1.0f, -11)) << x;
  }
}

TEST(HalfFloat, TheF16cKernelsAgreeBitForBitWithThePortableOnes) {
  if (!detail::cpu_has_f16c()) GTEST_SKIP() << "this CPU has no F16C";
  std::mt19937 rng(11);
  std::vector<float> floats(1 << 20);
  for (std::size_t k = 0; k < floats.size(); ++k) {
    // Random bit patterns cover every exponent, subnormals and specials; the rest are
    // ordinary parameter-sized values.
    floats[k] = k % 2 ? std::bit_cast<float>(static_cast<std::uint32_t>(rng()))
                      : std::normal_distribution<float>(0.0f, 0.1f)(rng);
  }
  std::vector<Half> portable(floats.size()), fast(floats.size());
  detail::floats_to_halves_portable(floats.data(), portable.data(), floats.size());
  detail::floats_to_halves_f16c(floats.data(), fast.data(), floats.size());
  for (std::size_t k = 0; k < floats.size(); ++k) {
    if (std::isnan(floats[k])) {
      EXPECT_TRUE(is_nan_half(portable[k]) && is_nan_half(fast[k])) << k;
    } else {
      ASSERT_EQ(portable[k], fast[k]) << "float " << floats[k] << " (bits 0x" << std::hex
                                      << std::bit_cast<std::uint32_t>(floats[k]) << ")";
    }
  }
  std::vector<Half> every(1 << 16);
  for (std::size_t k = 0; k < every.size(); ++k) every[k] = static_cast<Half>(k);
  std::vector<float> wide_portable(every.size()), wide_fast(every.size());
  detail::halves_to_floats_portable(every.data(), wide_portable.data(), every.size());
  detail::halves_to_floats_f16c(every.data(), wide_fast.data(), every.size());
  for (std::size_t k = 0; k < every.size(); ++k) {
    if (is_nan_half(every[k])) continue;
    ASSERT_EQ(std::bit_cast<std::uint32_t>(wide_portable[k]),
              std::bit_cast<std::uint32_t>(wide_fast[k])) << "half 0x" << std::hex << k;
  }
}

TEST(HalfFloat, SpanConversionsHandleEveryLengthAndRefuseMismatchedSizes) {
  for (std::size_t n = 0; n <= 19; ++n) {
    std::vector<float> in(n);
    for (std::size_t k = 0; k < n; ++k) in[k] = 0.25f * static_cast<float>(k) - 1.0f;  // exact
    std::vector<Half> halves(n);
    floats_to_halves(in, halves);
    std::vector<float> back(n, 99.0f);
    halves_to_floats(halves, back);
    EXPECT_EQ(back, in) << n;
  }
  std::vector<float> three(3);
  std::vector<Half> two(2);
  EXPECT_THROW(floats_to_halves(three, two), std::invalid_argument);
  EXPECT_THROW(halves_to_floats(two, three), std::invalid_argument);
}

// The conversion says whether everything it produced is finite, so a sender can tell that its
// neighbours will refuse the message: a value beyond the half range, NaN or Inf, at any place
// (the vector kernel's blocks of 8 and the tail), in both kernels.
TEST(HalfFloat, ConversionReportsValuesBinary16CannotCarry) {
  const float unsendable[] = {65520.0f, -1e6f, std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN()};
  for (std::size_t n : {1u, 7u, 8u, 9u, 33u}) {
    for (std::size_t at = 0; at < n; ++at) {
      for (float bad : unsendable) {
        std::vector<float> in(n, 0.5f);
        std::vector<Half> out(n);
        EXPECT_TRUE(floats_to_halves(in, out));
        EXPECT_TRUE(detail::floats_to_halves_portable(in.data(), out.data(), n));
        in[at] = bad;
        EXPECT_FALSE(floats_to_halves(in, out)) << n << " " << at << " " << bad;
        EXPECT_FALSE(detail::floats_to_halves_portable(in.data(), out.data(), n));
        if (detail::cpu_has_f16c()) {
          EXPECT_FALSE(detail::floats_to_halves_f16c(in.data(), out.data(), n)) << n << " " << at;
        }
      }
    }
  }
  std::vector<float> largest{65504.0f, -65504.0f, 65519.0f};  // still finite halves
  std::vector<Half> out(3);
  EXPECT_TRUE(floats_to_halves(largest, out));
}

TEST(HalfFloat, AllFiniteHalvesFindsNaNAndInfAnywhereAtAnyAlignment) {
  std::vector<Half> values(101, 0x3C00);
  values[50] = 0x7BFF;  // the largest finite half
  EXPECT_TRUE(all_finite_halves(std::as_bytes(std::span(values))));
  for (Half special : {Half{0x7C00}, Half{0xFC00}, Half{0x7E00}, Half{0x7C01}}) {
    for (std::size_t at : {std::size_t{0}, std::size_t{31}, std::size_t{64}, std::size_t{100}}) {
      auto copy = values;
      copy[at] = special;
      EXPECT_FALSE(all_finite_halves(std::as_bytes(std::span(copy)))) << at;
      std::vector<std::byte> shifted(copy.size() * 2 + 1);
      std::memcpy(shifted.data() + 1, copy.data(), copy.size() * 2);
      EXPECT_FALSE(all_finite_halves(std::span(shifted.data() + 1, copy.size() * 2))) << at;
    }
  }
}

}  // namespace
}  // namespace starling::gossip
