#include "gossip/crc32c_kernels.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace starling::gossip::detail {
namespace {

std::vector<unsigned char> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<unsigned char> bytes(n);
  for (auto& b : bytes) b = static_cast<unsigned char>(rng());
  return bytes;
}

// Lengths that cross every boundary of the folding kernels: below one 64- or 256-byte block,
// exact multiples, and remainders of 1..15 bytes and 16-byte blocks after the main loops.
std::vector<std::size_t> interesting_lengths() {
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 1100; ++n) lengths.push_back(n);
  for (std::size_t n : {4095u, 4096u, 4097u, 65536u + 8u, 100003u, 262144u + 200u}) lengths.push_back(n);
  return lengths;
}

TEST(Crc32cKernels, TheTableIsAlwaysThere) {
  ASSERT_FALSE(available_crc32c_kernels().empty());
  EXPECT_EQ(available_crc32c_kernels().front(), Crc32cKernel::table);
  EXPECT_EQ(fastest_crc32c_kernel(), available_crc32c_kernels().back());
}

TEST(Crc32cKernels, EveryKernelMatchesTheTable) {
  const auto data = random_bytes(262144 + 300, 7);
  std::mt19937 rng(11);
  for (Crc32cKernel kernel : available_crc32c_kernels()) {
    for (std::size_t n : interesting_lengths()) {
      const std::uint32_t start = rng();  // any register, not only the usual ~0
      // An unaligned start as well as an aligned one.
      for (std::size_t offset : {std::size_t{0}, std::size_t{3}}) {
        const unsigned char* p = data.data() + offset;
        ASSERT_EQ(crc32c_update(kernel, start, p, n), crc32c_update(Crc32cKernel::table, start, p, n))
            << name_of(kernel) << " n=" << n << " offset=" << offset;
      }
    }
  }
}

TEST(Crc32cKernels, KnownValue) {
  const char* digits = "123456789";
  for (Crc32cKernel kernel : available_crc32c_kernels()) {
    EXPECT_EQ(~crc32c_update(kernel, ~0u, reinterpret_cast<const unsigned char*>(digits), 9),
              0xE3069283u)
        << name_of(kernel);
  }
  // 1000 zero bytes take the folding paths; checked against the table.
  std::vector<unsigned char> zeros(1000, 0);
  for (Crc32cKernel kernel : available_crc32c_kernels()) {
    EXPECT_EQ(crc32c_update(kernel, ~0u, zeros.data(), zeros.size()),
              crc32c_update(Crc32cKernel::table, ~0u, zeros.data(), zeros.size()))
        << name_of(kernel);
  }
}

TEST(Crc32cKernels, ChainingEqualsOnePass) {
  const auto data = random_bytes(5000, 3);
  for (Crc32cKernel kernel : available_crc32c_kernels()) {
    const std::uint32_t whole = crc32c_update(kernel, ~0u, data.data(), data.size());
    for (std::size_t cut : {1u, 63u, 64u, 255u, 256u, 1000u, 4999u}) {
      std::uint32_t c = crc32c_update(kernel, ~0u, data.data(), cut);
      c = crc32c_update(kernel, c, data.data() + cut, data.size() - cut);
      EXPECT_EQ(c, whole) << name_of(kernel) << " cut=" << cut;
    }
  }
}

TEST(Crc32cKernels, ScanFindsNonFiniteFloatsWherever) {
  for (Crc32cKernel kernel : available_crc32c_kernels()) {
    for (std::size_t floats : {1u, 15u, 16u, 17u, 63u, 64u, 65u, 200u, 1000u, 1027u}) {
      std::vector<float> values(floats, -2.5f);
      const auto* p = reinterpret_cast<const unsigned char*>(values.data());
      const std::size_t n = floats * sizeof(float);
      bool finite = true;
      const std::uint32_t clean = crc32c_update(kernel, ~0u, p, n, &finite);
      EXPECT_TRUE(finite) << name_of(kernel) << " " << floats;
      EXPECT_EQ(clean, crc32c_update(Crc32cKernel::table, ~0u, p, n));
      for (std::size_t at = 0; at < floats; ++at) {
        for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
          values[at] = bad;
          bool seen_finite = true;
          const std::uint32_t c = crc32c_update(kernel, ~0u, p, n, &seen_finite);
          ASSERT_FALSE(seen_finite) << name_of(kernel) << " floats=" << floats << " at=" << at;
          ASSERT_EQ(c, crc32c_update(Crc32cKernel::table, ~0u, p, n));
          values[at] = -2.5f;
        }
      }
    }
  }
}

TEST(Crc32cKernels, LargestFiniteFloatsAreNotFlagged) {
  // The exponent test must not catch the largest finite values or denormals.
  std::vector<float> values(300);
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = (i % 3 == 0) ? std::numeric_limits<float>::max()
                : (i % 3 == 1) ? -std::numeric_limits<float>::denorm_min()
                               : -std::numeric_limits<float>::lowest();
  }
  for (Crc32cKernel kernel : available_crc32c_kernels()) {
    bool finite = true;
    crc32c_update(kernel, ~0u, reinterpret_cast<const unsigned char*>(values.data()),
                  values.size() * sizeof(float), &finite);
    EXPECT_TRUE(finite) << name_of(kernel);
  }
}

}  // namespace
}  // namespace starling::gossip::detail
