#pragma once
// RoundSchedule: at which local steps a gossip node starts its rounds.
//
// Gossip rounds advance in lockstep with steps: round r starts at the same step on every node,
// which is what lets a node that fell behind jump to its neighbours' round and the matching
// step (daemon/gossip_sync.h). With one period H, round r starts at step (r + 1) H. A period
// schedule (`[sync] period_schedule`) changes H at given steps: phase k runs from its start
// step (0, or the previous phase's until_step) to its until_step, with rounds every H_k steps
// counted from the phase's start; after the last phase, `period` applies for the rest of the
// run. The unit is the step, the unit rounds are counted in (status and metrics show steps);
// every node has the same steps per epoch (those of the average shard, training/trainer.cc),
// so a step is the same point of the run on every node.
//
// Invariants (tested): step_of_round is strictly increasing; rounds_through(step_of_round(r))
// is r + 1; is_sync_point(s) holds exactly at the steps step_of_round returns.
#include <cstdint>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::daemon {

class RoundSchedule {
 public:
  // `phases`: until_step strictly increasing, every period >= 1 (the cluster file checks it);
  // `period` >= 1 applies after the last phase, and throughout when there is none.
  RoundSchedule(const std::vector<topology::PeriodPhase>& phases, std::int64_t period);
  explicit RoundSchedule(std::int64_t period) : RoundSchedule({}, period) {}

  // The step at which round r (from 0) starts.
  std::int64_t step_of_round(std::uint64_t round) const;
  // How many rounds start at or before `step` (step >= 0).
  std::uint64_t rounds_through(std::int64_t step) const;
  bool is_sync_point(std::int64_t step) const;
  // The period in force for a round that starts after `step`.
  std::int64_t period_after(std::int64_t step) const;

 private:
  struct Segment {
    std::int64_t start;        // rounds of this segment start at start + k * period, k >= 1
    std::int64_t end;          // ... up to and including end (the last segment: unbounded)
    std::int64_t period;
    std::uint64_t first_round; // the index of the segment's first round
  };
  const Segment& segment_of_step(std::int64_t step) const;  // start < step <= end, or the first
  std::vector<Segment> segments_;
};

}  // namespace starling::daemon
