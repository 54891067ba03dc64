#include "topology/analysis.h"

#include <cmath>

namespace starling::topology {

double spectral_radius(const MixingMatrix& m) {
  constexpr int kSquarings = 50;
  MixingMatrix a = m;
  // Invariant: m^(2^k) = exp(log_scale) * a after the k-th squaring.
  double log_scale = 0.0;
  for (int k = 0; k < kSquarings; ++k) {
    double norm = a.frobenius_norm();
    if (norm == 0.0 || !std::isfinite(norm)) return norm == 0.0 ? 0.0 : INFINITY;
    MixingMatrix normalised(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      for (std::size_t j = 0; j < a.size(); ++j) normalised(i, j) = a(i, j) / norm;
    }
    log_scale += std::log(norm);
    a = normalised * normalised;
    log_scale *= 2.0;
  }
  double norm = a.frobenius_norm();
  if (norm == 0.0) return 0.0;
  return std::exp((log_scale + std::log(norm)) / std::ldexp(1.0, kSquarings));
}

std::vector<double> stationary_distribution(const MixingMatrix& w) {
  MixingMatrix power = w;
  for (int k = 0; k < 60; ++k) power = power * power;
  std::vector<double> pi(w.size());
  double sum = 0;
  for (std::size_t j = 0; j < w.size(); ++j) sum += pi[j] = power(0, j);
  if (!(sum > 0)) return std::vector<double>(w.size(), 1.0 / static_cast<double>(w.size()));
  for (double& p : pi) p /= sum;
  return pi;
}

double second_largest_eigenvalue_modulus(const MixingMatrix& w) {
  const std::size_t n = w.size();
  if (n <= 1) return 0.0;
  std::vector<double> pi = stationary_distribution(w);
  MixingMatrix deflated = w;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) deflated(i, j) -= pi[j];
  }
  return spectral_radius(deflated);
}

double spectral_norm(const MixingMatrix& m) {
  const std::size_t n = m.size();
  if (n == 0) return 0.0;
  // Fixed, non-special start vector so results are reproducible.
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = 1.0 + 0.1 * static_cast<double>((i * 7919) % 13);
  double lambda = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::vector<double> mv = m.apply(v);
    std::vector<double> mtmv(n, 0.0);  // M^T (M v)
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) mtmv[j] += m(i, j) * mv[i];
    }
    double norm = 0;
    for (double x : mtmv) norm += x * x;
    norm = std::sqrt(norm);
    if (norm == 0.0) return 0.0;
    for (std::size_t i = 0; i < n; ++i) v[i] = mtmv[i] / norm;
    lambda = norm;  // converges to the largest eigenvalue of M^T M
  }
  return std::sqrt(lambda);
}

std::size_t rounds_to_shrink_tenfold(double slem) {
  if (slem <= 1e-12) return 1;
  if (slem >= 1.0 - 1e-12) return kNever;
  return static_cast<std::size_t>(std::ceil(std::log(10.0) / -std::log(slem) - 1e-9));
}

}  // namespace starling::topology
