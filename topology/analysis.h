#pragma once
// Spectral analysis of mixing matrices: how fast gossip shrinks disagreement.
#include <cstddef>
#include <limits>
#include <vector>

#include "topology/mixing.h"

namespace starling::topology {

inline constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();

// Spectral radius by Gelfand's formula, rho(M) = lim ||M^p||^(1/p), evaluated at p = 2^50 by
// repeated squaring with renormalisation. Works for non-symmetric M (complex eigenvalues,
// Jordan blocks), which a plain power iteration does not.
double spectral_radius(const MixingMatrix& m);

// Stationary distribution pi of a row-stochastic W (pi^T W = pi^T), from a row of W^(2^60).
std::vector<double> stationary_distribution(const MixingMatrix& w);

// Second-largest eigenvalue modulus: rho(W - 1 pi^T). 0 means one round reaches consensus.
double second_largest_eigenvalue_modulus(const MixingMatrix& w);

// Largest singular value, by power iteration on M^T M (symmetric positive semidefinite).
double spectral_norm(const MixingMatrix& m);

// Rounds for a static W to shrink disagreement tenfold at its asymptotic rate:
// ceil(ln 10 / -ln slem); 1 if slem == 0; kNever if slem >= 1.
std::size_t rounds_to_shrink_tenfold(double slem);

}  // namespace starling::topology
