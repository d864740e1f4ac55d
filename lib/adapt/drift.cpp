#include "adapt/drift.hpp"

#include <algorithm>
#include <cmath>

namespace dann {

float drift_auc_sorted_reference(float *recent, size_t n, const float *reference, size_t m) {
    std::sort(recent, recent + n);
    // For each recent value (ascending), the references below it and equal to
    // it advance monotonically.
    double wins = 0.0;
    size_t below = 0, below_or_equal = 0;
    for (size_t i = 0; i < n; ++i) {
        const float r = recent[i];
        while (below < m && reference[below] < r) ++below;
        if (below_or_equal < below) below_or_equal = below;
        while (below_or_equal < m && reference[below_or_equal] <= r) ++below_or_equal;
        wins += static_cast<double>(below) + 0.5 * static_cast<double>(below_or_equal - below);
    }
    const double auc = wins / (static_cast<double>(n) * static_cast<double>(m));
    return static_cast<float>(std::clamp(2.0 * auc - 1.0, 0.0, 1.0));
}

float drift_auc(float *recent, size_t n, float *reference, size_t m) {
    std::sort(reference, reference + m);
    return drift_auc_sorted_reference(recent, n, reference, m);
}

double mean_of(const float *values, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += static_cast<double>(values[i]);
    return n ? sum / static_cast<double>(n) : 0.0;
}

float normalised_class_entropy(const uint32_t *counts, int k, size_t total) {
    if (total == 0 || k < 2) return 0.0f;
    double h = 0.0;
    for (int c = 0; c < k; ++c) {
        if (counts[c] == 0) continue;
        const double p = static_cast<double>(counts[c]) / static_cast<double>(total);
        h -= p * std::log(p);
    }
    return static_cast<float>(std::clamp(h / std::log(static_cast<double>(k)), 0.0, 1.0));
}

} // namespace dann
