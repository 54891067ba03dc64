#include "topology/topology.h"

#include <algorithm>
#include <cmath>

#include "topology/analysis.h"
#include "topology/config_error.h"

namespace starling::topology {
namespace {

std::string describe_components(const std::vector<std::vector<std::size_t>>& components,
                                const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t c = 0; c < components.size(); ++c) {
    out += c ? " | {" : "{";
    for (std::size_t k = 0; k < components[c].size(); ++k) {
      out += (k ? ", " : "") + names[components[c][k]];
    }
    out += "}";
  }
  return out;
}

Graph build_graph(const ClusterSpec& spec) {
  const TopologySpec& topo = spec.topology;
  const std::size_t n = spec.nodes.size();
  auto fail = [&](const std::string& field, const std::string& message) {
    throw ConfigError(spec.file, topo.line, 0, "topology." + field, message);
  };
  switch (topo.kind) {
    case TopologyKind::ring: return ring_graph(n);
    case TopologyKind::torus: {
      auto cells = static_cast<std::size_t>(topo.rows) * static_cast<std::size_t>(topo.cols);
      if (cells != n) {
        fail("rows", "rows * cols = " + std::to_string(topo.rows) + " * " +
                         std::to_string(topo.cols) + " = " + std::to_string(cells) +
                         " but the cluster has " + std::to_string(n) + " nodes; they must match");
      }
      return torus_graph(static_cast<std::size_t>(topo.rows), static_cast<std::size_t>(topo.cols));
    }
    case TopologyKind::hypercube: {
      if (!is_power_of_two(n)) {
        std::size_t below = 1;
        while (below * 2 <= n) below *= 2;
        fail("kind", "\"hypercube\" needs a power-of-two number of nodes; the cluster has " +
                         std::to_string(n) + " (nearest: " + std::to_string(below) + " or " +
                         std::to_string(below * 2) + ")");
      }
      return hypercube_graph(n);
    }
    case TopologyKind::exponential:
    case TopologyKind::one_peer_exponential:
      // The one-peer graph's union over a period is the static exponential graph.
      return exponential_graph(n);
    case TopologyKind::complete: return complete_graph(n);
    case TopologyKind::edges: return Graph::from_edges(n, topo.edges);
  }
  return Graph(n);
}

}  // namespace

Topology Topology::compile(const ClusterSpec& spec) {
  const TopologySpec& topo = spec.topology;
  Topology t;
  t.kind_ = topo.kind;
  t.weights_ = topo.weights;
  for (const auto& node : spec.nodes) t.names_.push_back(node.id);
  const std::size_t n = t.names_.size();
  t.graph_ = build_graph(spec);

  auto components = t.graph_.components();
  if (components.size() > 1) {
    throw ConfigError(spec.file, topo.line, 0, "topology",
                      "the graph is disconnected; its components are " +
                          describe_components(components, t.names_) +
                          ". Gossip cannot reach consensus across components: add edges "
                          "between them");
  }

  auto weights_error = [&](const std::string& message) {
    throw ConfigError(spec.file, topo.weights_line, 0,
                      topo.weights == WeightScheme::explicit_matrix ? "topology.matrix"
                                                                    : "topology.weights",
                      message);
  };

  if (t.time_varying()) {
    if (topo.weights == WeightScheme::explicit_matrix) {
      weights_error("a one-peer exponential graph fixes its weights (1/2 self, 1/2 peer); "
                    "use weights = \"metropolis\" or \"uniform\"");
    }
    for (std::size_t round = 0; round < one_peer_period(n); ++round) {
      t.matrices_.push_back(one_peer_exponential_weights(n, round));
    }
  } else {
    MixingMatrix w;
    switch (topo.weights) {
      case WeightScheme::metropolis: w = metropolis_weights(t.graph_); break;
      case WeightScheme::uniform: w = uniform_weights(t.graph_); break;
      case WeightScheme::explicit_matrix: w = MixingMatrix::from_rows(topo.matrix); break;
    }
    if (auto problem = row_stochastic_problem(w, t.graph_, t.names_)) weights_error(*problem);
    if (topo.weights == WeightScheme::explicit_matrix) {
      // Zero weights on edges can disconnect the graph that actually mixes.
      Graph support(n);
      for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
          if (i != j && w(i, j) > 0) support.add_edge(i, j);
        }
      }
      auto mixing_components = support.components();
      if (mixing_components.size() > 1) {
        weights_error("the non-zero weights leave the mixing graph disconnected: " +
                      describe_components(mixing_components, t.names_));
      }
    }
    t.matrices_.push_back(std::move(w));
  }

  t.doubly_stochastic_ = true;
  t.symmetric_ = true;
  for (const auto& m : t.matrices_) {
    if (column_stochastic_problem(m, t.names_)) t.doubly_stochastic_ = false;
    if (!m.is_symmetric()) t.symmetric_ = false;
  }
  // Plain gossip averaging converges to the average only with a doubly stochastic W.
  // (allreduce mode gossips too, while it falls back.)
  const bool needs_doubly_stochastic =
      spec.sync.mode == "gossip" || spec.sync.mode == "post-local" || spec.sync.mode == "allreduce";
  if (needs_doubly_stochastic && !t.doubly_stochastic_) {
    auto problem = column_stochastic_problem(t.matrices_.front(), t.names_);
    weights_error("sync.mode = \"" + spec.sync.mode + "\": " +
                  problem.value_or("the matrix is not doubly stochastic") +
                  (topo.weights == WeightScheme::uniform
                       ? " (uniform weights are doubly stochastic only on regular graphs; use "
                         "\"metropolis\")"
                       : ""));
  }
  return t;
}

MixingRound Topology::round_for(std::size_t node, std::uint64_t round) const {
  MixingRound r;
  const MixingMatrix& w = matrix(round);
  r.self_weight = w(node, node);
  for (std::size_t j = 0; j < size(); ++j) {
    if (j == node) continue;
    if (w(node, j) > 0) r.receive_from.emplace_back(j, w(node, j));
    if (w(j, node) > 0) r.send_to.push_back(j);
  }
  return r;
}

TopologyAnalysis Topology::analyse() const {
  TopologyAnalysis a;
  const std::size_t n = size();
  a.nodes = n;
  a.time_varying = time_varying();
  a.period = period();
  if (n == 0) return a;
  a.min_degree = graph_.degree(0);
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    a.min_degree = std::min(a.min_degree, graph_.degree(i));
    a.max_degree = std::max(a.max_degree, graph_.degree(i));
    total += graph_.degree(i);
  }
  a.mean_degree = static_cast<double>(total) / static_cast<double>(n);
  a.diameter = graph_.diameter();

  if (!time_varying()) {
    a.slem = second_largest_eigenvalue_modulus(matrices_.front());
    a.period_slem = a.slem;
    a.rounds_to_tenfold = rounds_to_shrink_tenfold(a.slem);
  } else {
    // The product of one period's matrices (applied in round order) and its rate per round.
    MixingMatrix product = MixingMatrix::identity(n);
    for (const auto& m : matrices_) product = m * product;
    a.period_slem = second_largest_eigenvalue_modulus(product);
    a.slem = std::pow(a.period_slem, 1.0 / static_cast<double>(period()));
    // Worst case over all starting vectors: the first t with ||W_{t-1}..W_0 - J||_2 <= 0.1.
    // J = 11^T / n because every one-peer matrix is doubly stochastic.
    MixingMatrix average(n);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) average(i, j) = 1.0 / static_cast<double>(n);
    }
    a.rounds_to_tenfold = kNever;
    MixingMatrix running = MixingMatrix::identity(n);
    for (std::size_t t = 1; t <= 64 * period(); ++t) {
      running = matrix(t - 1) * running;
      if (spectral_norm(running - average) <= 0.1 + 1e-12) {
        a.rounds_to_tenfold = t;
        break;
      }
    }
  }
  a.spectral_gap = 1.0 - a.slem;
  return a;
}

}  // namespace starling::topology
