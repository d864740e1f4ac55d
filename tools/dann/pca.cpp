#include "pca.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dann::tool {

namespace {

constexpr int kMaxIterations = 1000;
constexpr double kTolerance = 1e-12; // on 1 - |cos| between successive iterates

double dot(const double *a, const double *b, size_t d) {
    double sum = 0;
    for (size_t i = 0; i < d; ++i) sum += a[i] * b[i];
    return sum;
}

// Removes from v its parts along the first `rows` components, then normalises;
// returns the norm before normalising.
double orthonormalise(std::vector<double> &v, const std::vector<double> &components, size_t rows,
                      size_t d) {
    for (int pass = 0; pass < 2; ++pass) // twice: classical Gram-Schmidt loses orthogonality
        for (size_t r = 0; r < rows; ++r) {
            const double *c = &components[r * d];
            const double projection = dot(v.data(), c, d);
            for (size_t i = 0; i < d; ++i) v[i] -= projection * c[i];
        }
    const double norm = std::sqrt(dot(v.data(), v.data(), d));
    if (norm > 0)
        for (double &value : v) value /= norm;
    return norm;
}

} // namespace

Pca fit_pca(const float *x, size_t n, size_t d, size_t k) {
    if (n == 0 || d == 0) throw std::invalid_argument("PCA of an empty data set");
    if (k > d) throw std::invalid_argument("PCA: more components than dimensions");
    Pca pca;
    pca.dim = d;
    pca.mean.assign(d, 0.0);
    for (size_t s = 0; s < n; ++s)
        for (size_t i = 0; i < d; ++i) pca.mean[i] += static_cast<double>(x[s * d + i]);
    for (double &m : pca.mean) m /= static_cast<double>(n);

    std::vector<double> centred(n * d);
    for (size_t s = 0; s < n; ++s)
        for (size_t i = 0; i < d; ++i)
            centred[s * d + i] = static_cast<double>(x[s * d + i]) - pca.mean[i];

    // C v = X^T (X v) / n, with X the centred data.
    std::vector<double> projected(n), next(d);
    auto multiply = [&](const std::vector<double> &v, std::vector<double> &out) {
        for (size_t s = 0; s < n; ++s) projected[s] = dot(&centred[s * d], v.data(), d);
        std::fill(out.begin(), out.end(), 0.0);
        for (size_t s = 0; s < n; ++s) {
            const double w = projected[s];
            const double *row = &centred[s * d];
            for (size_t i = 0; i < d; ++i) out[i] += w * row[i];
        }
        for (double &value : out) value /= static_cast<double>(n);
    };

    pca.components.reserve(k * d);
    for (size_t component = 0; component < k; ++component) {
        // A fixed start that no simple direction is orthogonal to.
        std::vector<double> v(d);
        uint64_t state = 0x9E3779B97F4A7C15ull * (component + 1);
        for (double &value : v) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            value = static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5;
        }
        if (orthonormalise(v, pca.components, component, d) == 0) {
            // The random start fell in the span of the others: take a basis vector.
            for (size_t i = 0; i < d && orthonormalise(v, pca.components, component, d) == 0; ++i) {
                std::fill(v.begin(), v.end(), 0.0);
                v[i] = 1;
            }
        }
        for (int iteration = 0; iteration < kMaxIterations; ++iteration) {
            multiply(v, next);
            if (orthonormalise(next, pca.components, component, d) == 0)
                break; // no variance left outside the components found so far
            const double change = 1 - std::fabs(dot(next.data(), v.data(), d));
            v.swap(next);
            if (change < kTolerance) break;
        }
        // The Rayleigh quotient is more accurate than the last norm.
        multiply(v, next);
        const double variance = std::max(0.0, dot(v.data(), next.data(), d));

        size_t largest = 0;
        for (size_t i = 1; i < d; ++i)
            if (std::fabs(v[i]) > std::fabs(v[largest])) largest = i;
        if (v[largest] < 0)
            for (double &value : v) value = -value;
        pca.components.insert(pca.components.end(), v.begin(), v.end());
        pca.variances.push_back(variance);
    }
    return pca;
}

std::vector<float> pca_project(const Pca &pca, const float *x, size_t n) {
    const size_t d = pca.dim, k = pca.count();
    std::vector<float> out(n * k);
    std::vector<double> centred(d);
    for (size_t s = 0; s < n; ++s) {
        for (size_t i = 0; i < d; ++i) centred[i] = static_cast<double>(x[s * d + i]) - pca.mean[i];
        for (size_t j = 0; j < k; ++j)
            out[s * k + j] = static_cast<float>(dot(centred.data(), &pca.components[j * d], d));
    }
    return out;
}

} // namespace dann::tool
