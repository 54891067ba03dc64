#pragma once
// Topology: the compiled, validated communication structure of a cluster. Built once from a
// ClusterSpec; answers "whom does node i talk to in round t, with which weights" and how fast
// the mixing contracts. Static kinds have one matrix; the one-peer exponential graph cycles
// through `period()` matrices.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "topology/cluster_spec.h"
#include "topology/graph.h"
#include "topology/mixing.h"

namespace starling::topology {

// What one node does in one gossip round.
struct MixingRound {
  double self_weight = 1.0;
  std::vector<std::pair<std::size_t, double>> receive_from;  // (peer, weight), weight > 0
  std::vector<std::size_t> send_to;                          // peers that weight my model
};

struct TopologyAnalysis {
  std::size_t nodes = 0;
  std::size_t min_degree = 0;
  std::size_t max_degree = 0;
  double mean_degree = 0;
  std::size_t diameter = 0;
  double slem = 0;            // second-largest eigenvalue modulus, per round
  double spectral_gap = 0;    // 1 - slem
  std::size_t rounds_to_tenfold = 0;  // kNever if it does not contract
  bool time_varying = false;
  std::size_t period = 1;
  double period_slem = 0;     // time-varying: slem of the product of one period's matrices
};

class Topology {
 public:
  // Validates the whole-graph properties of spec.topology and builds the runtime object.
  // Throws ConfigError naming the file, line and field at fault.
  static Topology compile(const ClusterSpec& spec);

  std::size_t size() const { return names_.size(); }
  TopologyKind kind() const { return kind_; }
  WeightScheme weights() const { return weights_; }
  bool time_varying() const { return kind_ == TopologyKind::one_peer_exponential; }
  std::size_t period() const { return matrices_.size(); }
  const std::vector<std::string>& names() const { return names_; }
  // Union of every round's edges: the peers a node ever exchanges with.
  const Graph& graph() const { return graph_; }
  const MixingMatrix& matrix(std::uint64_t round) const { return matrices_[round % period()]; }
  MixingRound round_for(std::size_t node, std::uint64_t round) const;
  bool doubly_stochastic() const { return doubly_stochastic_; }
  bool symmetric() const { return symmetric_; }

  TopologyAnalysis analyse() const;

 private:
  TopologyKind kind_ = TopologyKind::ring;
  WeightScheme weights_ = WeightScheme::metropolis;
  std::vector<std::string> names_;
  Graph graph_;
  std::vector<MixingMatrix> matrices_;
  bool doubly_stochastic_ = false;
  bool symmetric_ = false;
};

}  // namespace starling::topology
