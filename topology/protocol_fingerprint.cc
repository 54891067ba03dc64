#include "topology/protocol_fingerprint.h"

#include <cstring>
#include <string>

namespace starling::topology {
namespace {

// FNV-1a over a canonical text of the fields; each field ends with a separator byte that no
// field contains, so "ab"+"c" and "a"+"bc" differ.
class Hasher {
 public:
  void add(const std::string& text) {
    for (unsigned char c : text) mix(c);
    mix(0x1F);
  }
  void add(std::int64_t value) { add(std::to_string(value)); }
  void add(double value) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);  // exact: two files agree on the value they parsed
    add(std::to_string(bits));
  }
  std::uint64_t value() const { return hash_; }

 private:
  void mix(unsigned char c) {
    hash_ ^= c;
    hash_ *= 0x100000001B3ull;
  }
  std::uint64_t hash_ = 0xCBF29CE484222325ull;
};

}  // namespace

std::uint64_t protocol_fingerprint(const ClusterSpec& spec, std::uint64_t model_fingerprint) {
  Hasher h;
  h.add(std::string("starling-protocol-1"));
  h.add(static_cast<std::int64_t>(model_fingerprint));
  h.add(spec.name);
  h.add(static_cast<std::int64_t>(spec.seed));
  h.add(static_cast<std::int64_t>(spec.nodes.size()));
  for (const auto& node : spec.nodes) h.add(node.id);

  // The data partition (the shards are a partition only if every node cuts the same way) and
  // the step count (lockstep rounds and collectives end together).
  const TrainingSpec& d = spec.training;
  h.add(d.dataset);
  h.add(static_cast<std::int64_t>(d.partition.kind));
  h.add(d.partition.alpha);
  h.add(static_cast<std::int64_t>(d.partition.shards));
  h.add(d.max_train_samples);
  h.add(d.batch_size);
  h.add(d.epochs);
  h.add(d.max_steps);

  const TopologySpec& t = spec.topology;
  h.add(to_string(t.kind));
  h.add(to_string(t.weights));
  h.add(static_cast<std::int64_t>(t.rows));
  h.add(static_cast<std::int64_t>(t.cols));
  for (const auto& [a, b] : t.edges) {
    h.add(static_cast<std::int64_t>(a));
    h.add(static_cast<std::int64_t>(b));
  }
  for (const auto& row : t.matrix) {
    for (double w : row) h.add(w);
  }

  const SyncSpec& s = spec.sync;
  h.add(s.mode);
  h.add(s.period);
  h.add(s.staleness);
  h.add(s.wire_precision);
  h.add(s.allreduce);
  h.add(s.delta);
  h.add(s.delta_mode);
  h.add(s.budget_bytes_per_epoch);
  h.add(s.final_rounds);
  h.add(static_cast<std::int64_t>(s.final_allreduce));
  // Only when set, so that files without it keep the fingerprint they had. (Nodes of one file
  // agree on "auto"'s answer: it depends on the file alone.)
  if (s.collective_transport != "auto") {
    h.add(std::string("collective_transport"));
    h.add(s.collective_transport);
  }
  // Only when present, so that files without a schedule keep the fingerprint they had.
  if (!s.period_schedule.empty()) {
    h.add(std::string("period_schedule"));
    for (const PeriodPhase& phase : s.period_schedule) {
      h.add(phase.until_step);
      h.add(phase.period);
    }
  }
  return h.value();
}

}  // namespace starling::topology
