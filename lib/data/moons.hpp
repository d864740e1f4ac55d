// The two-moons toy of the DANN paper (Ganin et al., JMLR 2016, section 5.1),
// built as the authors' code builds it (make_trans_moons in their experiments,
// on top of scikit-learn's make_moons):
//
// - make_moons(n, noise): n_out = n / 2 points on the upper half circle
//   x = cos(t), y = sin(t), label 0, and n_in = n - n_out on the lower one
//   x = 1 - cos(t), y = 0.5 - sin(t), label 1, with t = linspace(0, pi, count)
//   on each; the points are shuffled, then N(0, noise^2) noise is added to
//   both coordinates (scikit-learn's order, shuffle on by default).
// - The source set, the target set and the test set are three independent
//   draws of make_moons.
// - Every set is translated by minus the mean of the SOURCE set and scaled by
//   2, so that the source set is centred on the origin.
// - The target and test sets are then rotated by angle_deg counter-clockwise
//   about the origin (the authors' rotation matrix with theta = -angle,
//   applied as X . R^T).
//
// The randomness is dann's SplitMix64, not NumPy's Mersenne Twister, so the
// points are not those of the authors' seeds, but they follow the same
// distribution. The authors' script calls make_trans_moons(35, nb=150), 150
// points per domain, and has no test set; here a domain has 300 points (150
// per moon) by default, and the test set is 1,000 fresh points of the target
// distribution, for measuring target accuracy on points not trained on.
#pragma once

#include <cstdint>
#include <vector>

namespace dann::data {

struct Moons {
    // Points as interleaved (x, y) pairs: 2 * count floats per set.
    std::vector<float> source_x, target_x, test_x;
    // 0 = upper moon, 1 = lower moon.
    std::vector<uint8_t> source_y, target_y, test_y;
};

constexpr int kMoonsMaxSamples = 1 << 24;

// The three sets. samples points per training domain (>= 2) and test_samples
// test points (>= 1), both at most kMoonsMaxSamples; noise >= 0 and finite;
// angle finite. DANN_ERR_INVALID_ARGUMENT otherwise.
//
// Randomness: SplitMix64(seed) gives one seed per set (source, target, test,
// in that order), so that changing one set's size leaves the others alone.
// Within a set, the Fisher-Yates shuffle draws first (j = next() % (i + 1) for
// i = n-1 down to 1), then the noise, x then y for each point in shuffled
// order, from Box-Muller pairs of uniforms u1 = ((next() >> 11) + 1) / 2^53 in
// (0, 1] and u2 = (next() >> 11) / 2^53 in [0, 1): sqrt(-2 ln u1) * cos(2 pi u2) first,
// the matching sin next. Computed in double, stored as float.
Moons make_moons(double angle_deg = 35.0, int samples = 300, double noise = 0.05, uint64_t seed = 1,
                 int test_samples = 1000);

} // namespace dann::data
