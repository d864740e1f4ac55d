// The two-moons toy: sizes and labels, the geometry of scikit-learn's
// make_moons after centring on the source mean and scaling by 2, the target
// and test sets as the source distribution rotated, and determinism by seed.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/moons.hpp"

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Moments {
    double mean[2] = {0, 0};
    double cov[2][2] = {{0, 0}, {0, 0}};
};

Moments moments(const std::vector<float> &xy) {
    Moments m;
    const size_t n = xy.size() / 2;
    for (size_t i = 0; i < n; ++i)
        for (int a = 0; a < 2; ++a) m.mean[a] += static_cast<double>(xy[2 * i + a]) / static_cast<double>(n);
    for (size_t i = 0; i < n; ++i)
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b)
                m.cov[a][b] += (static_cast<double>(xy[2 * i + a]) - m.mean[a]) *
                               (static_cast<double>(xy[2 * i + b]) - m.mean[b]) / static_cast<double>(n);
    return m;
}

// The points rotated by -angle_deg: undoes the target's rotation.
std::vector<float> rotate_back(const std::vector<float> &xy, double angle_deg) {
    const double a = -angle_deg * kPi / 180.0, c = std::cos(a), s = std::sin(a);
    std::vector<float> out(xy.size());
    for (size_t i = 0; i < xy.size() / 2; ++i) {
        const double x = xy[2 * i], y = xy[2 * i + 1];
        out[2 * i] = static_cast<float>(c * x - s * y);
        out[2 * i + 1] = static_cast<float>(s * x + c * y);
    }
    return out;
}

size_t count_label(const std::vector<uint8_t> &labels, uint8_t label) {
    size_t n = 0;
    for (uint8_t l : labels) n += l == label;
    return n;
}

struct Box {
    double min_x = 1e300, max_x = -1e300, min_y = 1e300, max_y = -1e300;
};

Box extent(const std::vector<float> &xy, const std::vector<uint8_t> &labels, uint8_t label) {
    Box b;
    for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] != label) continue;
        b.min_x = std::fmin(b.min_x, static_cast<double>(xy[2 * i]));
        b.max_x = std::fmax(b.max_x, static_cast<double>(xy[2 * i]));
        b.min_y = std::fmin(b.min_y, static_cast<double>(xy[2 * i + 1]));
        b.max_y = std::fmax(b.max_y, static_cast<double>(xy[2 * i + 1]));
    }
    return b;
}

template <class F>
void expect_invalid(F &&f, const std::string &fragment) {
    try {
        f();
        FAIL("no error was thrown");
    } catch (const dann::Error &e) {
        CHECK(e.status() == DANN_ERR_INVALID_ARGUMENT);
        CHECK_MESSAGE(std::string(e.what()).find(fragment) != std::string::npos, e.what());
    }
}

} // namespace

TEST_CASE("Two moons have 300 points per domain and 1000 test points by default, two coordinates each") {
    const dann::data::Moons m = dann::data::make_moons();
    CHECK(m.source_x.size() == 600);
    CHECK(m.target_x.size() == 600);
    CHECK(m.test_x.size() == 2000);
    CHECK(m.source_y.size() == 300);
    CHECK(m.target_y.size() == 300);
    CHECK(m.test_y.size() == 1000);
    for (const auto *set : {&m.source_x, &m.target_x, &m.test_x})
        for (float v : *set) CHECK(std::isfinite(v));
}

TEST_CASE("Each moon holds half of every set, the lower one the extra point of an odd count") {
    const dann::data::Moons m = dann::data::make_moons(35.0, 300, 0.05, 7, 1001);
    CHECK(count_label(m.source_y, 0) == 150);
    CHECK(count_label(m.source_y, 1) == 150);
    CHECK(count_label(m.target_y, 0) == 150);
    CHECK(count_label(m.target_y, 1) == 150);
    CHECK(count_label(m.test_y, 0) == 500);
    CHECK(count_label(m.test_y, 1) == 501);
}

TEST_CASE("The points are shuffled rather than grouped by moon") {
    const dann::data::Moons m = dann::data::make_moons();
    size_t changes = 0;
    for (size_t i = 1; i < m.source_y.size(); ++i) changes += m.source_y[i] != m.source_y[i - 1];
    CHECK(changes > 100);
}

TEST_CASE("The source set is centred on the origin") {
    const Moments s = moments(dann::data::make_moons(35.0, 300, 0.05, 3).source_x);
    CHECK(std::fabs(s.mean[0]) < 1e-6);
    CHECK(std::fabs(s.mean[1]) < 1e-6);
}

TEST_CASE("Without noise the source moons are half circles of radius 2, the upper one class 0") {
    // 151 points per moon: linspace(0, pi, 151) holds pi / 2, so the extremes are exact.
    const dann::data::Moons m = dann::data::make_moons(35.0, 302, 0.0, 5);
    const Box upper = extent(m.source_x, m.source_y, 0), lower = extent(m.source_x, m.source_y, 1);
    // make_moons' upper moon spans x in [-1, 1], y in [0, 1]; the lower x in [0, 2], y in [-0.5, 0.5]; times 2.
    CHECK(upper.max_x - upper.min_x == doctest::Approx(4.0).epsilon(1e-6));
    CHECK(upper.max_y - upper.min_y == doctest::Approx(2.0).epsilon(1e-6));
    CHECK(lower.min_x - upper.min_x == doctest::Approx(2.0).epsilon(1e-6));
    CHECK(upper.max_y - lower.max_y == doctest::Approx(1.0).epsilon(1e-6));
    const double c0[2] = {(upper.min_x + upper.max_x) / 2, upper.min_y};
    const double c1[2] = {(lower.min_x + lower.max_x) / 2, lower.max_y};
    for (size_t i = 0; i < m.source_y.size(); ++i) {
        const double *c = m.source_y[i] == 0 ? c0 : c1;
        const double r = std::hypot(static_cast<double>(m.source_x[2 * i]) - c[0],
                                    static_cast<double>(m.source_x[2 * i + 1]) - c[1]);
        CHECK(r == doctest::Approx(2.0).epsilon(1e-5));
    }
}

TEST_CASE("Without noise the target and test sets are the source moons rotated by the angle about the origin") {
    const double angle = 35.0;
    const dann::data::Moons m = dann::data::make_moons(angle, 300, 0.0, 9, 300);
    for (const auto &[xy, labels] : {std::make_pair(&m.target_x, &m.target_y), std::make_pair(&m.test_x, &m.test_y)}) {
        const std::vector<float> back = rotate_back(*xy, angle);
        // Every rotated-back point is a source point of the same class (the sets differ only in order).
        for (size_t i = 0; i < labels->size(); ++i) {
            double best = 1e300;
            uint8_t best_label = 2;
            for (size_t j = 0; j < m.source_y.size(); ++j) {
                const double d = std::hypot(static_cast<double>(back[2 * i]) - static_cast<double>(m.source_x[2 * j]),
                                            static_cast<double>(back[2 * i + 1]) -
                                                static_cast<double>(m.source_x[2 * j + 1]));
                if (d < best) {
                    best = d;
                    best_label = m.source_y[j];
                }
            }
            CHECK(best < 1e-5);
            CHECK(best_label == (*labels)[i]);
        }
    }
}

TEST_CASE("The rotation is counter-clockwise: by 90 degrees, (x, y) becomes (-y, x)") {
    const dann::data::Moons m = dann::data::make_moons(90.0, 300, 0.0, 9);
    double src[2][2] = {{0, 0}, {0, 0}}, tgt[2][2] = {{0, 0}, {0, 0}}; // per class centroid
    for (size_t i = 0; i < 300; ++i)
        for (int k = 0; k < 2; ++k) {
            src[m.source_y[i]][k] += static_cast<double>(m.source_x[2 * i + k]) / 150;
            tgt[m.target_y[i]][k] += static_cast<double>(m.target_x[2 * i + k]) / 150;
        }
    for (int label = 0; label < 2; ++label) {
        CAPTURE(label);
        CHECK(tgt[label][0] == doctest::Approx(-src[label][1]).epsilon(1e-5));
        CHECK(tgt[label][1] == doctest::Approx(src[label][0]).epsilon(1e-5));
    }
    // The upper moon (class 0) sits left of the origin, so a quarter turn moves it below.
    CHECK(src[0][0] < -0.5);
    CHECK(tgt[0][1] < -0.5);
}

TEST_CASE("With noise the target set has the source distribution's moments, rotated") {
    const double angle = 35.0, a = angle * kPi / 180.0;
    const dann::data::Moons m = dann::data::make_moons(angle, 20000, 0.05, 11, 20000);
    const Moments s = moments(m.source_x);
    const double r[2][2] = {{std::cos(a), -std::sin(a)}, {std::sin(a), std::cos(a)}};
    for (const auto *set : {&m.target_x, &m.test_x}) {
        const Moments t = moments(*set);
        CHECK(std::fabs(t.mean[0]) < 0.03);
        CHECK(std::fabs(t.mean[1]) < 0.03);
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
                double rotated = 0; // (R S R^T)[i][j]
                for (int k = 0; k < 2; ++k)
                    for (int l = 0; l < 2; ++l) rotated += r[i][k] * s.cov[k][l] * r[j][l];
                CAPTURE(i);
                CAPTURE(j);
                CHECK(std::fabs(t.cov[i][j] - rotated) < 0.05);
            }
    }
}

TEST_CASE("The noise is Gaussian with the requested standard deviation, doubled by the scaling") {
    const double noise = 0.05;
    const dann::data::Moons clean = dann::data::make_moons(0.0, 20000, 0.0, 13, 1);
    const dann::data::Moons noisy = dann::data::make_moons(0.0, 20000, noise, 13, 1);
    // Same seed, so the same shuffle: the sets differ by 2 * (noise - mean noise).
    REQUIRE(clean.source_y == noisy.source_y);
    const size_t n = clean.source_y.size();
    const double sigma = 2 * noise;
    double sum2[2] = {0, 0}, cross = 0;
    size_t within1 = 0, within2 = 0;
    for (size_t i = 0; i < n; ++i) {
        double e[2];
        for (int k = 0; k < 2; ++k) {
            e[k] = static_cast<double>(noisy.source_x[2 * i + k]) - static_cast<double>(clean.source_x[2 * i + k]);
            sum2[k] += e[k] * e[k];
            within1 += std::fabs(e[k]) < sigma;
            within2 += std::fabs(e[k]) < 2 * sigma;
        }
        cross += e[0] * e[1];
    }
    for (int k = 0; k < 2; ++k) CHECK(std::sqrt(sum2[k] / static_cast<double>(n)) == doctest::Approx(sigma).epsilon(0.03));
    CHECK(std::fabs(cross / static_cast<double>(n)) < 0.1 * sigma * sigma);
    CHECK(static_cast<double>(within1) / static_cast<double>(2 * n) == doctest::Approx(0.6827).epsilon(0.02));
    CHECK(static_cast<double>(within2) / static_cast<double>(2 * n) == doctest::Approx(0.9545).epsilon(0.01));
}

TEST_CASE("The same seed gives the same moons and another seed different ones") {
    const dann::data::Moons a = dann::data::make_moons(35.0, 300, 0.05, 42);
    const dann::data::Moons b = dann::data::make_moons(35.0, 300, 0.05, 42);
    const dann::data::Moons c = dann::data::make_moons(35.0, 300, 0.05, 43);
    CHECK(a.source_x == b.source_x);
    CHECK(a.target_x == b.target_x);
    CHECK(a.test_x == b.test_x);
    CHECK(a.test_y == b.test_y);
    CHECK(a.source_x != c.source_x);
    CHECK(a.target_x != c.target_x);
    CHECK(a.test_x != c.test_x);
}

TEST_CASE("The three sets are independent draws, so one set's size leaves the others unchanged") {
    const dann::data::Moons a = dann::data::make_moons(35.0, 300, 0.05, 42, 1000);
    const dann::data::Moons b = dann::data::make_moons(35.0, 300, 0.05, 42, 50);
    CHECK(a.source_x == b.source_x);
    CHECK(a.target_x == b.target_x);
    CHECK(a.source_x != a.target_x);
    CHECK(std::vector<float>(a.test_x.begin(), a.test_x.begin() + 600) != a.target_x);
}

TEST_CASE("Invalid two-moons arguments fail with DANN_ERR_INVALID_ARGUMENT") {
    expect_invalid([] { dann::data::make_moons(35.0, 1); }, "samples is 1");
    expect_invalid([] { dann::data::make_moons(35.0, -300); }, "samples is -300");
    expect_invalid([] { dann::data::make_moons(35.0, 300, 0.05, 1, 0); }, "test_samples is 0");
    expect_invalid([] { dann::data::make_moons(35.0, dann::data::kMoonsMaxSamples + 1); }, "samples");
    expect_invalid([] { dann::data::make_moons(35.0, 300, -0.1); }, "noise");
    expect_invalid([] { dann::data::make_moons(35.0, 300, std::numeric_limits<double>::quiet_NaN()); }, "noise");
    expect_invalid([] { dann::data::make_moons(std::numeric_limits<double>::infinity()); }, "angle");
}
