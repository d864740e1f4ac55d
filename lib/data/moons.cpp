#include "data/moons.hpp"

#include <cmath>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace dann::data {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kTwoPow53 = 9007199254740992.0;

struct Points {
    std::vector<double> xy; // interleaved
    std::vector<uint8_t> labels;
};

// numpy.linspace(0, pi, n)[i]: i * step, with the last value exactly pi.
double linspace_pi(size_t i, size_t n) {
    if (n == 1) return 0.0;
    if (i == n - 1) return kPi;
    return static_cast<double>(i) * (kPi / static_cast<double>(n - 1));
}

// scikit-learn's make_moons(n, shuffle=True, noise) on SplitMix64.
Points sklearn_moons(size_t n, double noise, uint64_t seed) {
    const size_t n_out = n / 2, n_in = n - n_out;
    Points p;
    p.xy.resize(2 * n);
    p.labels.resize(n);
    for (size_t i = 0; i < n_out; ++i) {
        const double t = linspace_pi(i, n_out);
        p.xy[2 * i] = std::cos(t);
        p.xy[2 * i + 1] = std::sin(t);
        p.labels[i] = 0;
    }
    for (size_t i = 0; i < n_in; ++i) {
        const double t = linspace_pi(i, n_in);
        p.xy[2 * (n_out + i)] = 1.0 - std::cos(t);
        p.xy[2 * (n_out + i) + 1] = 1.0 - std::sin(t) - 0.5;
        p.labels[n_out + i] = 1;
    }

    SplitMix64 rng(seed);
    for (size_t i = n - 1; i > 0; --i) {
        const auto j = static_cast<size_t>(rng.next() % (i + 1));
        std::swap(p.xy[2 * i], p.xy[2 * j]);
        std::swap(p.xy[2 * i + 1], p.xy[2 * j + 1]);
        std::swap(p.labels[i], p.labels[j]);
    }
    for (size_t i = 0; i < n; ++i) {
        // Box-Muller: one pair of standard normals per point.
        const double u1 = static_cast<double>((rng.next() >> 11) + 1) / kTwoPow53;
        const double u2 = static_cast<double>(rng.next() >> 11) / kTwoPow53;
        const double r = std::sqrt(-2.0 * std::log(u1));
        p.xy[2 * i] += noise * r * std::cos(2.0 * kPi * u2);
        p.xy[2 * i + 1] += noise * r * std::sin(2.0 * kPi * u2);
    }
    return p;
}

// 2 * (p - mean), then the rotation by angle_rad about the origin, into floats.
void place(const Points &p, const double mean[2], double angle_rad, std::vector<float> &xy,
           std::vector<uint8_t> &labels) {
    const double c = std::cos(angle_rad), s = std::sin(angle_rad);
    const size_t n = p.labels.size();
    xy.resize(2 * n);
    for (size_t i = 0; i < n; ++i) {
        const double x = 2.0 * (p.xy[2 * i] - mean[0]);
        const double y = 2.0 * (p.xy[2 * i + 1] - mean[1]);
        xy[2 * i] = static_cast<float>(c * x - s * y);
        xy[2 * i + 1] = static_cast<float>(s * x + c * y);
    }
    labels = p.labels;
}

void check_count(int n, int min, const char *what) {
    if (n < min || n > kMoonsMaxSamples)
        fail(DANN_ERR_INVALID_ARGUMENT, std::string("two moons: ") + what + " is " + std::to_string(n) +
                                            "; must be " + std::to_string(min) + " to " +
                                            std::to_string(kMoonsMaxSamples));
}

} // namespace

Moons make_moons(double angle_deg, int samples, double noise, uint64_t seed, int test_samples) {
    check_count(samples, 2, "samples");
    check_count(test_samples, 1, "test_samples");
    if (!(noise >= 0.0) || !std::isfinite(noise))
        fail(DANN_ERR_INVALID_ARGUMENT, "two moons: noise must be finite and >= 0, got " + std::to_string(noise));
    if (!std::isfinite(angle_deg))
        fail(DANN_ERR_INVALID_ARGUMENT, "two moons: the rotation angle must be finite");

    SplitMix64 seeds(seed);
    const uint64_t source_seed = seeds.next(), target_seed = seeds.next(), test_seed = seeds.next();
    const Points source = sklearn_moons(static_cast<size_t>(samples), noise, source_seed);
    const Points target = sklearn_moons(static_cast<size_t>(samples), noise, target_seed);
    const Points test = sklearn_moons(static_cast<size_t>(test_samples), noise, test_seed);

    double mean[2] = {0.0, 0.0};
    for (size_t i = 0; i < source.labels.size(); ++i) {
        mean[0] += source.xy[2 * i];
        mean[1] += source.xy[2 * i + 1];
    }
    mean[0] /= static_cast<double>(source.labels.size());
    mean[1] /= static_cast<double>(source.labels.size());

    const double angle = angle_deg * kPi / 180.0;
    Moons m;
    place(source, mean, 0.0, m.source_x, m.source_y);
    place(target, mean, angle, m.target_x, m.target_y);
    place(test, mean, angle, m.test_x, m.test_y);
    return m;
}

} // namespace dann::data
