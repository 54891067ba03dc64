#pragma once
// Mixing matrices W for gossip averaging: x_i <- sum_j W_ij x_j. Dense n x n (clusters are small:
// the analysis is O(n^3 log) anyway). Row i holds the weights node i gives itself and the nodes
// it receives from.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "topology/graph.h"

namespace starling::topology {

class MixingMatrix {
 public:
  explicit MixingMatrix(std::size_t n = 0) : n_(n), w_(n * n, 0.0) {}
  static MixingMatrix identity(std::size_t n);
  static MixingMatrix from_rows(const std::vector<std::vector<double>>& rows);

  std::size_t size() const { return n_; }
  double operator()(std::size_t i, std::size_t j) const { return w_[i * n_ + j]; }
  double& operator()(std::size_t i, std::size_t j) { return w_[i * n_ + j]; }

  MixingMatrix operator*(const MixingMatrix& other) const;
  MixingMatrix operator-(const MixingMatrix& other) const;
  double frobenius_norm() const;
  bool is_symmetric(double tolerance = 1e-12) const;
  // Mixes one scalar per node: y = W x.
  std::vector<double> apply(const std::vector<double>& x) const;

 private:
  std::size_t n_;
  std::vector<double> w_;
};

// Metropolis-Hastings: W_ij = 1 / (1 + max(deg_i, deg_j)) on edges, the rest on the diagonal.
// Symmetric and doubly stochastic on any undirected graph.
MixingMatrix metropolis_weights(const Graph& graph);
// Uniform: W_ij = 1 / (deg_i + 1) on edges and the diagonal. Row stochastic; doubly stochastic
// only on regular graphs.
MixingMatrix uniform_weights(const Graph& graph);
// One-peer exponential graph at `round`: x_i <- (x_i + x_{i - 2^(t mod tau)}) / 2.
MixingMatrix one_peer_exponential_weights(std::size_t n, std::uint64_t round);

// The first violated property, described for a person, or nullopt if W is a valid
// row-stochastic mixing matrix on `graph` (non-negative, rows sum to 1 within tolerance,
// off-diagonal weight only on edges).
std::optional<std::string> row_stochastic_problem(const MixingMatrix& w, const Graph& graph,
                                                  const std::vector<std::string>& names,
                                                  double tolerance = 1e-9);
// Likewise for columns summing to 1 (needed for gossip to converge to the plain average).
std::optional<std::string> column_stochastic_problem(const MixingMatrix& w,
                                                     const std::vector<std::string>& names,
                                                     double tolerance = 1e-9);

}  // namespace starling::topology
