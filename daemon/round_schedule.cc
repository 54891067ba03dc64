#include "daemon/round_schedule.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace starling::daemon {

RoundSchedule::RoundSchedule(const std::vector<topology::PeriodPhase>& phases,
                             std::int64_t period) {
  std::int64_t start = 0;
  std::uint64_t first_round = 0;
  for (const auto& phase : phases) {
    if (phase.period < 1 || phase.until_step <= start) {
      throw std::invalid_argument("period schedule: phase until step " +
                                  std::to_string(phase.until_step) + " with period " +
                                  std::to_string(phase.period) + " is out of order or empty");
    }
    segments_.push_back({start, phase.until_step, phase.period, first_round});
    first_round += static_cast<std::uint64_t>((phase.until_step - start) / phase.period);
    start = phase.until_step;
  }
  if (period < 1) throw std::invalid_argument("period must be at least 1");
  segments_.push_back({start, std::numeric_limits<std::int64_t>::max(), period, first_round});
}

std::int64_t RoundSchedule::step_of_round(std::uint64_t round) const {
  // The last segment whose first round is at or before `round`. A phase shorter than its
  // period has no round of its own and shares its first_round with the next segment, which
  // the search skips past, as it should.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), round,
                             [](std::uint64_t r, const Segment& s) { return r < s.first_round; });
  const Segment& s = *std::prev(it);
  return s.start + static_cast<std::int64_t>(round - s.first_round + 1) * s.period;
}

const RoundSchedule::Segment& RoundSchedule::segment_of_step(std::int64_t step) const {
  auto it = std::lower_bound(segments_.begin(), segments_.end(), step,
                             [](const Segment& s, std::int64_t v) { return s.end < v; });
  return it == segments_.end() ? segments_.back() : *it;
}

std::uint64_t RoundSchedule::rounds_through(std::int64_t step) const {
  if (step <= 0) return 0;
  const Segment& s = segment_of_step(step);
  return s.first_round + static_cast<std::uint64_t>((step - s.start) / s.period);
}

bool RoundSchedule::is_sync_point(std::int64_t step) const {
  if (step <= 0) return false;
  const Segment& s = segment_of_step(step);
  return (step - s.start) % s.period == 0;
}

std::int64_t RoundSchedule::period_after(std::int64_t step) const {
  // The segment of the next round's step (a phase too short for a round of its own has none).
  return segment_of_step(step_of_round(rounds_through(step))).period;
}

}  // namespace starling::daemon
