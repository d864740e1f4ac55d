// Principal component analysis for pictures of feature spaces: the top
// components of the covariance, found by power iteration with deflation in
// double precision. The covariance is never formed (features can be 8192 wide):
// each iteration multiplies by the centred data twice, O(n * d).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dann::tool {

struct Pca {
    size_t dim = 0;                 // input width d
    std::vector<double> mean;       // d
    std::vector<double> components; // k rows of d, unit length, mutually orthogonal
    std::vector<double> variances;  // k eigenvalues of the covariance, decreasing
    size_t count() const { return variances.size(); }
};

// The top `k` components of n samples of d floats (row-major). Each component's
// sign is fixed so that its largest-magnitude entry is positive, so the same
// data give the same picture. A degenerate direction (zero variance) comes back
// as a unit vector orthogonal to the others with variance 0. Throws
// std::invalid_argument if n == 0, d == 0 or k > d.
Pca fit_pca(const float *x, size_t n, size_t d, size_t k = 2);

// n rows of k coordinates: (x - mean) . component_j.
std::vector<float> pca_project(const Pca &pca, const float *x, size_t n);

} // namespace dann::tool
