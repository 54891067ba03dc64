#pragma once
// Learning rate as a pure function of the step, so a resumed run (which only restores the step
// count) uses exactly the rates an uninterrupted run would.
//
//   constant: lr
//   step:     lr * gamma^(milestones passed); a milestone at epoch e takes effect at step
//             round(e * steps_per_epoch)
//   cosine:   lr * (1 + cos(pi * t)) / 2, t = progress from the end of warmup to total_steps
// warmup_steps > 0 multiplies any of them by (step + 1) / warmup_steps for the first
// warmup_steps steps (linear warmup).
#include <cstdint>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::training {

class LearningRateSchedule {
 public:
  enum class Kind { constant, step, cosine };

  // Throws TrainingError for an unknown training.lr_schedule or a step schedule without
  // milestones.
  LearningRateSchedule(const topology::TrainingSpec& spec, std::int64_t steps_per_epoch,
                       std::int64_t total_steps);

  // Rate for the step with 0-based index `step`.
  double at(std::int64_t step) const;

 private:
  Kind kind_;
  double base_lr_;
  double gamma_;
  std::int64_t warmup_steps_;
  std::int64_t total_steps_;
  std::vector<std::int64_t> milestone_steps_;  // ascending
};

}  // namespace starling::training
