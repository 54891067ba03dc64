#include "training/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "training/trainer.h"

namespace starling::training {

LearningRateSchedule::LearningRateSchedule(const topology::TrainingSpec& spec,
                                           std::int64_t steps_per_epoch,
                                           std::int64_t total_steps)
    : base_lr_(spec.lr),
      gamma_(spec.gamma),
      warmup_steps_(spec.warmup_steps),
      total_steps_(total_steps) {
  if (spec.lr_schedule == "constant") {
    kind_ = Kind::constant;
  } else if (spec.lr_schedule == "step") {
    kind_ = Kind::step;
  } else if (spec.lr_schedule == "cosine") {
    kind_ = Kind::cosine;
  } else {
    throw TrainingError("training.lr_schedule: \"" + spec.lr_schedule +
                        "\" is not valid; use \"constant\", \"step\" or \"cosine\"");
  }
  if (!(spec.lr >= 0) || !std::isfinite(spec.lr)) {
    throw TrainingError("training.lr: must be a finite number >= 0");
  }
  if (warmup_steps_ < 0) throw TrainingError("training.warmup_steps: must be >= 0");
  if (kind_ == Kind::step) {
    if (spec.milestones.empty()) {
      throw TrainingError("training.milestones: lr_schedule \"step\" needs at least one");
    }
    for (double epoch : spec.milestones) {
      milestone_steps_.push_back(
          std::llround(epoch * static_cast<double>(steps_per_epoch)));
    }
    std::sort(milestone_steps_.begin(), milestone_steps_.end());
  }
}

double LearningRateSchedule::at(std::int64_t step) const {
  double lr = base_lr_;
  switch (kind_) {
    case Kind::constant:
      break;
    case Kind::step: {
      const auto passed = std::upper_bound(milestone_steps_.begin(), milestone_steps_.end(), step) -
                          milestone_steps_.begin();
      lr *= std::pow(gamma_, static_cast<double>(passed));
      break;
    }
    case Kind::cosine: {
      const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps_ - warmup_steps_));
      const double t = std::clamp(static_cast<double>(step - warmup_steps_) / span, 0.0, 1.0);
      lr *= 0.5 * (1.0 + std::cos(std::numbers::pi * t));
      break;
    }
  }
  if (step < warmup_steps_) {
    lr *= static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  }
  return lr;
}

}  // namespace starling::training
