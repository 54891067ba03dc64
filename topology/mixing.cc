#include "topology/mixing.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace starling::topology {

MixingMatrix MixingMatrix::identity(std::size_t n) {
  MixingMatrix m(n);
  for (std::size_t i = 0; i < n; ++i) m(i, i) = 1.0;
  return m;
}

MixingMatrix MixingMatrix::from_rows(const std::vector<std::vector<double>>& rows) {
  MixingMatrix m(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != rows.size()) throw std::invalid_argument("MixingMatrix: not square");
    for (std::size_t j = 0; j < rows.size(); ++j) m(i, j) = rows[i][j];
  }
  return m;
}

MixingMatrix MixingMatrix::operator*(const MixingMatrix& other) const {
  MixingMatrix out(n_);
  for (std::size_t i = 0; i < n_; ++i) {
    for (std::size_t k = 0; k < n_; ++k) {
      double a = (*this)(i, k);
      if (a == 0.0) continue;
      for (std::size_t j = 0; j < n_; ++j) out(i, j) += a * other(k, j);
    }
  }
  return out;
}

MixingMatrix MixingMatrix::operator-(const MixingMatrix& other) const {
  MixingMatrix out(n_);
  for (std::size_t i = 0; i < n_ * n_; ++i) out.w_[i] = w_[i] - other.w_[i];
  return out;
}

double MixingMatrix::frobenius_norm() const {
  double sum = 0;
  for (double v : w_) sum += v * v;
  return std::sqrt(sum);
}

bool MixingMatrix::is_symmetric(double tolerance) const {
  for (std::size_t i = 0; i < n_; ++i) {
    for (std::size_t j = i + 1; j < n_; ++j) {
      if (std::abs((*this)(i, j) - (*this)(j, i)) > tolerance) return false;
    }
  }
  return true;
}

std::vector<double> MixingMatrix::apply(const std::vector<double>& x) const {
  std::vector<double> y(n_, 0.0);
  for (std::size_t i = 0; i < n_; ++i) {
    for (std::size_t j = 0; j < n_; ++j) y[i] += (*this)(i, j) * x[j];
  }
  return y;
}

MixingMatrix metropolis_weights(const Graph& graph) {
  const std::size_t n = graph.size();
  MixingMatrix w(n);
  for (std::size_t i = 0; i < n; ++i) {
    double off_diagonal = 0;
    for (std::size_t j : graph.neighbours(i)) {
      double weight = 1.0 / (1.0 + static_cast<double>(std::max(graph.degree(i), graph.degree(j))));
      w(i, j) = weight;
      off_diagonal += weight;
    }
    w(i, i) = 1.0 - off_diagonal;
  }
  return w;
}

MixingMatrix uniform_weights(const Graph& graph) {
  const std::size_t n = graph.size();
  MixingMatrix w(n);
  for (std::size_t i = 0; i < n; ++i) {
    double weight = 1.0 / static_cast<double>(graph.degree(i) + 1);
    w(i, i) = weight;
    for (std::size_t j : graph.neighbours(i)) w(i, j) = weight;
  }
  return w;
}

MixingMatrix one_peer_exponential_weights(std::size_t n, std::uint64_t round) {
  if (n == 1) return MixingMatrix::identity(1);
  MixingMatrix w(n);
  for (std::size_t i = 0; i < n; ++i) {
    w(i, i) = 0.5;
    w(i, one_peer_receive_from(i, n, round)) += 0.5;
  }
  return w;
}

std::optional<std::string> row_stochastic_problem(const MixingMatrix& w, const Graph& graph,
                                                  const std::vector<std::string>& names,
                                                  double tolerance) {
  const std::size_t n = w.size();
  for (std::size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (std::size_t j = 0; j < n; ++j) {
      double v = w(i, j);
      std::ostringstream where;
      where << "weight of " << names[i] << " for " << names[j] << " (row " << i << ", column "
            << j << ") is " << v;
      if (!std::isfinite(v) || v < 0) return where.str() + "; weights must be non-negative";
      if (i != j && v != 0.0 && !graph.has_edge(i, j)) {
        return where.str() + " but " + names[i] + " and " + names[j] +
               " are not neighbours; only edges and the diagonal may carry weight";
      }
      sum += v;
    }
    if (std::abs(sum - 1.0) > tolerance) {
      std::ostringstream os;
      os.precision(12);
      os << "row " << i << " (" << names[i] << ") sums to " << sum
         << "; each row must sum to 1 within " << tolerance;
      return os.str();
    }
  }
  return std::nullopt;
}

std::optional<std::string> column_stochastic_problem(const MixingMatrix& w,
                                                     const std::vector<std::string>& names,
                                                     double tolerance) {
  const std::size_t n = w.size();
  for (std::size_t j = 0; j < n; ++j) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += w(i, j);
    if (std::abs(sum - 1.0) > tolerance) {
      std::ostringstream os;
      os.precision(12);
      os << "column " << j << " (" << names[j] << ") sums to " << sum
         << "; gossip averaging needs a doubly stochastic matrix (columns sum to 1 as well) to "
            "converge to the average";
      return os.str();
    }
  }
  return std::nullopt;
}

}  // namespace starling::topology
