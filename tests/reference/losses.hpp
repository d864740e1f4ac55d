// Scalar references of the two losses, in PyTorch's definitions:
// nn.CrossEntropyLoss (mean over N) on (N, K) logits and
// nn.BCEWithLogitsLoss (mean over N) on N logits. Both are written in their
// numerically stable forms (log-sum-exp with the maximum taken out;
// max(x, 0) - x t + log(1 + exp(-|x|))), so large logits give finite results.
// Test oracle only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "reference/elementwise.hpp"

namespace ref {

struct LossResult {
    double loss = 0.0;
    std::vector<double> grad; // d loss / d logits
};

inline LossResult softmax_cross_entropy(const std::vector<double> &logits, int n, int k,
                                        const std::vector<int32_t> &labels) {
    LossResult r;
    r.grad.assign(static_cast<std::size_t>(n) * k, 0.0);
    for (int i = 0; i < n; ++i) {
        const double *row = logits.data() + static_cast<std::size_t>(i) * k;
        const double m = *std::max_element(row, row + k);
        double sum = 0.0;
        for (int j = 0; j < k; ++j) sum += std::exp(row[j] - m);
        const double log_sum = m + std::log(sum);
        const int y = labels[static_cast<std::size_t>(i)];
        r.loss += log_sum - row[y];
        for (int j = 0; j < k; ++j) {
            const double p = std::exp(row[j] - log_sum);
            r.grad[static_cast<std::size_t>(i) * k + j] = (p - (j == y ? 1.0 : 0.0)) / n;
        }
    }
    r.loss /= n;
    return r;
}

inline LossResult logistic_loss(const std::vector<double> &logits, const std::vector<double> &targets) {
    LossResult r;
    const std::size_t n = logits.size();
    r.grad.assign(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        const double x = logits[i], t = targets[i];
        r.loss += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x)));
        r.grad[i] = (sigmoid(x) - t) / static_cast<double>(n);
    }
    r.loss /= static_cast<double>(n);
    return r;
}

} // namespace ref
