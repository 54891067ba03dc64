#pragma once
// Undirected communication graphs over nodes 0..n-1, and the builders for every topology kind.
// Pure functions: no I/O, no config types. Invariant of Graph: adjacency lists are sorted,
// free of duplicates and self-loops, and symmetric (j in adj[i] <=> i in adj[j]).
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace starling::topology {

class Graph {
 public:
  explicit Graph(std::size_t n = 0) : adjacency_(n) {}
  static Graph from_edges(std::size_t n, const std::vector<std::pair<std::size_t, std::size_t>>& edges);

  std::size_t size() const { return adjacency_.size(); }
  const std::vector<std::size_t>& neighbours(std::size_t node) const { return adjacency_[node]; }
  std::size_t degree(std::size_t node) const { return adjacency_[node].size(); }
  bool has_edge(std::size_t a, std::size_t b) const;
  // Adds a - b; ignores self-loops and edges already present (so builders can be naive).
  void add_edge(std::size_t a, std::size_t b);

  // Connected components, each sorted, ordered by their smallest node.
  std::vector<std::vector<std::size_t>> components() const;
  // Hop distances from `source` (SIZE_MAX where unreachable).
  std::vector<std::size_t> distances_from(std::size_t source) const;
  // Longest shortest path; SIZE_MAX for a disconnected graph, 0 for one node.
  std::size_t diameter() const;

 private:
  std::vector<std::vector<std::size_t>> adjacency_;
};

Graph ring_graph(std::size_t n);
Graph torus_graph(std::size_t rows, std::size_t cols);  // node r*cols + c, wrapping both ways
Graph hypercube_graph(std::size_t n);                   // n must be a power of two
Graph exponential_graph(std::size_t n);                 // i ~ i +- 2^k (mod n) for 2^k < n
Graph complete_graph(std::size_t n);

// One-peer exponential graph (Ying et al. 2021): at round t node i sends to
// i + 2^(t mod tau) and receives from i - 2^(t mod tau) (mod n), tau = ceil(log2 n).
std::size_t one_peer_period(std::size_t n);
std::size_t one_peer_send_to(std::size_t node, std::size_t n, std::uint64_t round);
std::size_t one_peer_receive_from(std::size_t node, std::size_t n, std::uint64_t round);

bool is_power_of_two(std::size_t n);

}  // namespace starling::topology
