#pragma once
// The apply pass of a gossip round, on flat buffers:
//
//   model[k] += sum_j w[j] * (x_j[k] - s[k])                (every k)
//   returns   sum_k (s[k] - mean(s[k], x_1[k], ..., x_n[k]))^2
//
// s is the node's own snapshot and x_j the in-neighbours' snapshots, each as floats, as
// binary16 halves (wire_precision = "f16"), widened exactly, or as int8 codes with a scale per
// block (wire_precision = "int8"), widened as int8_blocks.h says. One pass over the model per round,
// so it is worth making fast: it runs on the training thread between steps.
//
// Two kernels, bit-identical for every input (tests/gossip/round_delta_test.cc): AVX2 with F16C
// where the CPU has them (halves and codes widened in registers, eight floats at a time), else a portable
// loop the compiler vectorises for the baseline ISA. The per-element arithmetic is the same
// sequence of float operations in both (no fused multiply-add: the build does not contract and
// the AVX2 kernel does not use FMA), and the squared distance is summed in the same order: in
// eight float lanes within each block of kDeltaBlock elements (lane l takes the block's
// elements l, l + 8, ...; gossip/lane_sum.h), the lanes in order, then the blocks in double.
// So what a node reports and the model it trains do not depend on the machine's vector unit.
#include <cstddef>
#include <span>

#include "gossip/half_float.h"
#include "gossip/int8_blocks.h"

namespace starling::gossip {

// One operand of the pass: exactly one of floats, halves and int8 (its codes) is set; each
// addresses `length` elements (the model's).
struct DeltaOperand {
  const float* floats = nullptr;
  const Half* halves = nullptr;
  Int8View int8{};
};

inline constexpr std::size_t kDeltaBlock = 1024;

// model += sum_j weights[j] (inputs[j] - own); returns the squared distance of own from the
// plain mean of own and the inputs. inputs.size() == weights.size(); no inputs leaves the
// model unchanged and returns 0.
double add_weighted_differences(std::span<float> model, DeltaOperand own,
                                std::span<const DeltaOperand> inputs,
                                std::span<const float> weights);

namespace detail {
// The kernels behind add_weighted_differences, exposed so tests can compare them.
bool cpu_has_avx2_f16c();
double add_weighted_differences_portable(std::span<float> model, DeltaOperand own,
                                         std::span<const DeltaOperand> inputs,
                                         std::span<const float> weights);
// Only where cpu_has_avx2_f16c().
double add_weighted_differences_avx2(std::span<float> model, DeltaOperand own,
                                     std::span<const DeltaOperand> inputs,
                                     std::span<const float> weights);
}  // namespace detail

}  // namespace starling::gossip
