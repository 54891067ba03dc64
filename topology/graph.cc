#include "topology/graph.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <stdexcept>

namespace starling::topology {

Graph Graph::from_edges(std::size_t n,
                        const std::vector<std::pair<std::size_t, std::size_t>>& edges) {
  Graph g(n);
  for (auto [a, b] : edges) g.add_edge(a, b);
  return g;
}

bool Graph::has_edge(std::size_t a, std::size_t b) const {
  const auto& adj = adjacency_[a];
  return std::binary_search(adj.begin(), adj.end(), b);
}

void Graph::add_edge(std::size_t a, std::size_t b) {
  if (a >= size() || b >= size()) throw std::out_of_range("Graph::add_edge: node out of range");
  if (a == b || has_edge(a, b)) return;
  adjacency_[a].insert(std::upper_bound(adjacency_[a].begin(), adjacency_[a].end(), b), b);
  adjacency_[b].insert(std::upper_bound(adjacency_[b].begin(), adjacency_[b].end(), a), a);
}

std::vector<std::size_t> Graph::distances_from(std::size_t source) const {
  std::vector<std::size_t> dist(size(), std::numeric_limits<std::size_t>::max());
  std::deque<std::size_t> queue{source};
  dist[source] = 0;
  while (!queue.empty()) {
    std::size_t u = queue.front();
    queue.pop_front();
    for (std::size_t v : adjacency_[u]) {
      if (dist[v] == std::numeric_limits<std::size_t>::max()) {
        dist[v] = dist[u] + 1;
        queue.push_back(v);
      }
    }
  }
  return dist;
}

std::vector<std::vector<std::size_t>> Graph::components() const {
  std::vector<std::vector<std::size_t>> result;
  std::vector<bool> seen(size(), false);
  for (std::size_t start = 0; start < size(); ++start) {
    if (seen[start]) continue;
    std::vector<std::size_t> component;
    auto dist = distances_from(start);
    for (std::size_t v = 0; v < size(); ++v) {
      if (dist[v] != std::numeric_limits<std::size_t>::max()) {
        seen[v] = true;
        component.push_back(v);
      }
    }
    result.push_back(std::move(component));
  }
  return result;
}

std::size_t Graph::diameter() const {
  std::size_t longest = 0;
  for (std::size_t s = 0; s < size(); ++s) {
    for (std::size_t d : distances_from(s)) longest = std::max(longest, d);
  }
  return longest;
}

bool is_power_of_two(std::size_t n) { return n > 0 && (n & (n - 1)) == 0; }

Graph ring_graph(std::size_t n) {
  Graph g(n);
  for (std::size_t i = 0; n > 1 && i < n; ++i) g.add_edge(i, (i + 1) % n);
  return g;
}

Graph torus_graph(std::size_t rows, std::size_t cols) {
  Graph g(rows * cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      std::size_t node = r * cols + c;
      g.add_edge(node, r * cols + (c + 1) % cols);
      g.add_edge(node, ((r + 1) % rows) * cols + c);
    }
  }
  return g;
}

Graph hypercube_graph(std::size_t n) {
  if (!is_power_of_two(n)) throw std::invalid_argument("hypercube_graph: n must be a power of two");
  Graph g(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t bit = 1; bit < n; bit <<= 1) g.add_edge(i, i ^ bit);
  }
  return g;
}

Graph exponential_graph(std::size_t n) {
  Graph g(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t hop = 1; hop < n; hop <<= 1) {
      g.add_edge(i, (i + hop) % n);
      g.add_edge(i, (i + n - hop) % n);
    }
  }
  return g;
}

Graph complete_graph(std::size_t n) {
  Graph g(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = i + 1; j < n; ++j) g.add_edge(i, j);
  }
  return g;
}

std::size_t one_peer_period(std::size_t n) {
  std::size_t tau = 0;
  while ((std::size_t{1} << tau) < n) ++tau;
  return std::max<std::size_t>(tau, 1);
}

std::size_t one_peer_send_to(std::size_t node, std::size_t n, std::uint64_t round) {
  std::size_t hop = (std::size_t{1} << (round % one_peer_period(n))) % n;
  return (node + hop) % n;
}

std::size_t one_peer_receive_from(std::size_t node, std::size_t n, std::uint64_t round) {
  std::size_t hop = (std::size_t{1} << (round % one_peer_period(n))) % n;
  return (node + n - hop) % n;
}

}  // namespace starling::topology
