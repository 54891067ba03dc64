// The apply pass of a gossip round (gossip/round_delta.h): what it adds to the model and the
// distance it reports, against a plain double-precision reference, and its two kernels
// bit-identical to each other for every operand precision, input count and length.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gossip/round_delta.h"

namespace starling::gossip {
namespace {

struct Operands {
  std::vector<float> own_floats;
  std::vector<Half> own_halves;
  std::vector<std::vector<float>> input_floats;
  std::vector<std::vector<Half>> input_halves;
  std::vector<float> weights;
  std::vector<float> model;

  Operands(std::size_t inputs, std::size_t length, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> value(0.0f, 0.3f);
    auto fill = [&](std::vector<float>& v) {
      v.resize(length);
      for (float& x : v) x = value(rng);
    };
    auto narrowed = [&](const std::vector<float>& v) {
      std::vector<Half> h(v.size());
      floats_to_halves(v, h);
      return h;
    };
    fill(own_floats);
    own_halves = narrowed(own_floats);
    for (std::size_t j = 0; j < inputs; ++j) {
      input_floats.emplace_back();
      fill(input_floats.back());
      input_halves.push_back(narrowed(input_floats.back()));
      weights.push_back(1.0f / static_cast<float>(inputs + 1 + j));
    }
    fill(model);
  }

  DeltaOperand own(bool halves) const {
    return halves ? DeltaOperand{.halves = own_halves.data()}
                  : DeltaOperand{.floats = own_floats.data()};
  }
  std::vector<DeltaOperand> inputs(bool halves) const {
    std::vector<DeltaOperand> out;
    for (std::size_t j = 0; j < input_floats.size(); ++j) {
      out.push_back(halves ? DeltaOperand{.halves = input_halves[j].data()}
                           : DeltaOperand{.floats = input_floats[j].data()});
    }
    return out;
  }
};

std::vector<std::uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<std::uint32_t> out;
  for (float x : v) out.push_back(std::bit_cast<std::uint32_t>(x));
  return out;
}

TEST(RoundDelta, AddsTheWeightedDifferencesAndReportsTheDistanceFromTheMean) {
  for (bool halves : {false, true}) {
    const Operands o(3, 3001, 11);
    std::vector<float> model = o.model;
    const double squared =
        add_weighted_differences(model, o.own(halves), o.inputs(halves), o.weights);
    double expected_squared = 0.0;
    for (std::size_t k = 0; k < model.size(); ++k) {
      const double s = halves ? half_to_float(o.own_halves[k]) : o.own_floats[k];
      double delta = 0.0, sum = s;
      for (std::size_t j = 0; j < o.weights.size(); ++j) {
        const double x = halves ? half_to_float(o.input_halves[j][k]) : o.input_floats[j][k];
        delta += o.weights[j] * (x - s);
        sum += x;
      }
      EXPECT_NEAR(model[k], o.model[k] + delta, 1e-6) << "element " << k;
      const double diff = s - sum / 4.0;
      expected_squared += diff * diff;
    }
    EXPECT_NEAR(squared, expected_squared, 1e-6 * expected_squared);
  }
}

TEST(RoundDelta, NoInputsLeavesTheModelAsItWas) {
  const Operands o(0, 100, 3);
  std::vector<float> model = o.model;
  EXPECT_EQ(add_weighted_differences(model, o.own(false), {}, {}), 0.0);
  EXPECT_EQ(model, o.model);
}

TEST(RoundDelta, RefusesInputsAndWeightsThatDifferInNumber) {
  const Operands o(2, 16, 5);
  std::vector<float> model = o.model;
  const std::vector<float> one_weight{0.5f};
  EXPECT_THROW(add_weighted_differences(model, o.own(false), o.inputs(false), one_weight),
               std::invalid_argument);
  EXPECT_EQ(model, o.model);
}

// Every length class around the 8-lane vectors and the 1024-element blocks, input counts on
// both sides of the portable kernel's unrolled cases (up to 7), and the three operand
// combinations the averager uses (f32; f16 with the own term as sent; f16 with the exact own
// snapshot, for Output::mix): the model and the distance are the same bits from both kernels.
TEST(RoundDelta, TheVectorKernelMatchesThePortableOneBitForBit) {
  if (!detail::cpu_has_avx2_f16c()) GTEST_SKIP() << "this CPU has no AVX2 with F16C";
  const std::vector<std::size_t> lengths{0, 1, 7, 8, 9, 1023, 1024, 1025, 2048 + 13, 262144 + 5};
  struct Precision {
    bool own_halves, input_halves;
  };
  for (Precision p : {Precision{false, false}, Precision{true, true}, Precision{false, true}}) {
    for (std::size_t inputs : {0u, 1u, 2u, 3u, 7u, 8u, 11u}) {
      for (std::size_t length : lengths) {
        const Operands o(inputs, length, static_cast<std::uint32_t>(inputs * 100 + length));
        std::vector<float> portable = o.model, vector = o.model;
        const double d_portable = detail::add_weighted_differences_portable(
            portable, o.own(p.own_halves), o.inputs(p.input_halves), o.weights);
        const double d_vector = detail::add_weighted_differences_avx2(
            vector, o.own(p.own_halves), o.inputs(p.input_halves), o.weights);
        SCOPED_TRACE(testing::Message() << "own halves " << p.own_halves << ", input halves "
                                        << p.input_halves << ", " << inputs << " inputs, "
                                        << length << " floats");
        EXPECT_EQ(std::bit_cast<std::uint64_t>(d_portable), std::bit_cast<std::uint64_t>(d_vector));
        EXPECT_EQ(bits_of(portable), bits_of(vector));
      }
    }
  }
}

}  // namespace
}  // namespace starling::gossip
