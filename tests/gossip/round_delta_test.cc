// The apply pass of a gossip round (gossip/round_delta.h): what it adds to the model and the
// distance it reports, against a plain double-precision reference, and its two kernels
// bit-identical to each other for every operand precision, input count and length.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gossip/int8_blocks.h"
#include "gossip/round_delta.h"

namespace starling::gossip {
namespace {

// How an operand travels: as floats, binary16 halves, or an int8 payload.
enum class Wire { f32, f16, int8 };

struct Operands {
  std::size_t length;
  std::vector<float> own_floats;
  std::vector<Half> own_halves;
  std::vector<std::byte> own_int8;
  std::vector<std::vector<float>> input_floats;
  std::vector<std::vector<Half>> input_halves;
  std::vector<std::vector<std::byte>> input_int8;
  std::vector<float> weights;
  std::vector<float> model;

  Operands(std::size_t inputs, std::size_t n, std::uint32_t seed) : length(n) {
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
    auto quantized = [&](const std::vector<float>& v) {
      std::vector<std::byte> payload(int8_payload_bytes(v.size()));
      quantize_int8(v, payload);
      return payload;
    };
    fill(own_floats);
    own_halves = narrowed(own_floats);
    own_int8 = quantized(own_floats);
    for (std::size_t j = 0; j < inputs; ++j) {
      input_floats.emplace_back();
      fill(input_floats.back());
      input_halves.push_back(narrowed(input_floats.back()));
      input_int8.push_back(quantized(input_floats.back()));
      weights.push_back(1.0f / static_cast<float>(inputs + 1 + j));
    }
    fill(model);
  }

  DeltaOperand operand(Wire wire, const std::vector<float>& floats, const std::vector<Half>& halves,
                       const std::vector<std::byte>& int8) const {
    switch (wire) {
      case Wire::f16: return DeltaOperand{.halves = halves.data()};
      case Wire::int8: return DeltaOperand{.int8 = int8_view(int8, length)};
      case Wire::f32: break;
    }
    return DeltaOperand{.floats = floats.data()};
  }
  DeltaOperand own(Wire wire) const { return operand(wire, own_floats, own_halves, own_int8); }
  std::vector<DeltaOperand> inputs(Wire wire) const {
    std::vector<DeltaOperand> out;
    for (std::size_t j = 0; j < input_floats.size(); ++j) {
      out.push_back(operand(wire, input_floats[j], input_halves[j], input_int8[j]));
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
  for (Wire wire : {Wire::f32, Wire::f16, Wire::int8}) {
    SCOPED_TRACE(static_cast<int>(wire));
    const Operands o(3, 3001, 11);
    std::vector<float> model = o.model;
    const double squared = add_weighted_differences(model, o.own(wire), o.inputs(wire), o.weights);
    // Each operand as the pass must read it: halves widened exactly, int8 codes times their
    // block's scale.
    auto widen = [&](const std::vector<float>& f, const std::vector<Half>& h,
                     const std::vector<std::byte>& q) {
      std::vector<float> w = f;
      if (wire == Wire::f16) halves_to_floats(h, w);
      if (wire == Wire::int8) dequantize_int8(q, w);
      return std::vector<double>(w.begin(), w.end());
    };
    const std::vector<double> own = widen(o.own_floats, o.own_halves, o.own_int8);
    std::vector<std::vector<double>> in;
    for (std::size_t j = 0; j < o.weights.size(); ++j) {
      in.push_back(widen(o.input_floats[j], o.input_halves[j], o.input_int8[j]));
    }
    double expected_squared = 0.0;
    for (std::size_t k = 0; k < model.size(); ++k) {
      const double s = own[k];
      double delta = 0.0, sum = s;
      for (std::size_t j = 0; j < o.weights.size(); ++j) {
        delta += o.weights[j] * (in[j][k] - s);
        sum += in[j][k];
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
  EXPECT_EQ(add_weighted_differences(model, o.own(Wire::f32), {}, {}), 0.0);
  EXPECT_EQ(model, o.model);
}

TEST(RoundDelta, RefusesInputsAndWeightsThatDifferInNumber) {
  const Operands o(2, 16, 5);
  std::vector<float> model = o.model;
  const std::vector<float> one_weight{0.5f};
  EXPECT_THROW(add_weighted_differences(model, o.own(Wire::f32), o.inputs(Wire::f32), one_weight),
               std::invalid_argument);
  EXPECT_EQ(model, o.model);
}

// Every length class around the 8-lane vectors, the 256-value int8 blocks and the 1024-element
// blocks, input counts on both sides of the portable kernel's unrolled cases (up to 7), and
// the operand combinations the averager uses (f32; f16 or int8 with the own term as sent; f16
// or int8 with the exact own snapshot, for Output::mix): the model and the distance are the
// same bits from both kernels.
TEST(RoundDelta, TheVectorKernelMatchesThePortableOneBitForBit) {
  if (!detail::cpu_has_avx2_f16c()) GTEST_SKIP() << "this CPU has no AVX2 with F16C";
  const std::vector<std::size_t> lengths{0,    1,    7,    8,        9,         255,       256, 257,
                                         1023, 1024, 1025, 2048 + 13, 262144 + 5};
  struct Precision {
    Wire own, input;
  };
  for (Precision p : {Precision{Wire::f32, Wire::f32}, Precision{Wire::f16, Wire::f16},
                      Precision{Wire::f32, Wire::f16}, Precision{Wire::int8, Wire::int8},
                      Precision{Wire::f32, Wire::int8}}) {
    for (std::size_t inputs : {0u, 1u, 2u, 3u, 7u, 8u, 11u}) {
      for (std::size_t length : lengths) {
        const Operands o(inputs, length, static_cast<std::uint32_t>(inputs * 100 + length));
        std::vector<float> portable = o.model, vector = o.model;
        const double d_portable = detail::add_weighted_differences_portable(
            portable, o.own(p.own), o.inputs(p.input), o.weights);
        const double d_vector = detail::add_weighted_differences_avx2(
            vector, o.own(p.own), o.inputs(p.input), o.weights);
        SCOPED_TRACE(testing::Message() << "own " << static_cast<int>(p.own) << ", input "
                                        << static_cast<int>(p.input) << ", " << inputs
                                        << " inputs, " << length << " floats");
        EXPECT_EQ(std::bit_cast<std::uint64_t>(d_portable), std::bit_cast<std::uint64_t>(d_vector));
        EXPECT_EQ(bits_of(portable), bits_of(vector));
      }
    }
  }
}

}  // namespace
}  // namespace starling::gossip
