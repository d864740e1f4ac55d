// The label-free measures of the adapter and dann_drift_score: how separable
// two sets of domain-head outputs are, and how spread the predicted classes are.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dann {

// 2 * AUC - 1 clamped to [0, 1], where AUC is the probability that a value of
// `recent` exceeds a value of `reference` (ties count one half). Sorts both
// arrays in place; allocates nothing. Values must be finite; n, m > 0.
float drift_auc(float *recent, size_t n, float *reference, size_t m);
// The same with `reference` already sorted ascending.
float drift_auc_sorted_reference(float *recent, size_t n, const float *reference, size_t m);

double mean_of(const float *values, size_t n);

// Entropy of the class histogram `counts` (k >= 2 classes, `total` samples),
// divided by ln k: 0 when every sample has one class, 1 when uniform.
float normalised_class_entropy(const uint32_t *counts, int k, size_t total);

} // namespace dann
