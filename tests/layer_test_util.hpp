// Helpers shared by the layer tests: seeded random data, element-wise
// comparison with a tolerance (and a record of the largest errors seen), and
// finite differences of the scalar loss L = sum(dst * R), which makes
// diff_dst = R.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace layer_test {

// SplitMix64: the same numbers on every platform and standard library
// (std::uniform_real_distribution is implementation-defined).
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [lo, hi), with 24 random bits so that the value is exact in float.
    float uniform(float lo, float hi) {
        const double u = static_cast<double>(next() >> 40) / 16777216.0;
        return static_cast<float>(static_cast<double>(lo) + u * (static_cast<double>(hi) - static_cast<double>(lo)));
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }

private:
    uint64_t state_;
};

inline std::vector<float> uniform_floats(std::size_t n, Rng &rng, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(n);
    for (float &x : v) x = rng.uniform(lo, hi);
    return v;
}

// n distinct values spaced by `spacing`, centred on 0, in random order: max
// pooling then has no ties, and a perturbation below spacing / 2 never changes
// which element wins a window.
inline std::vector<float> distinct_floats(std::size_t n, Rng &rng, float spacing) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<float>((static_cast<double>(i) - static_cast<double>(n) / 2.0) * static_cast<double>(spacing));
    for (std::size_t i = n; i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
    return v;
}

// Values with |x| in [margin, margin + 1), either sign: away from ReLU's kink.
inline std::vector<float> away_from_zero(std::size_t n, Rng &rng, float margin) {
    std::vector<float> v(n);
    for (float &x : v) {
        const float m = rng.uniform(margin, margin + 1.0f);
        x = (rng.next() & 1u) ? m : -m;
    }
    return v;
}

inline std::vector<double> to_double(const std::vector<float> &v) {
    return std::vector<double>(v.begin(), v.end());
}
inline std::vector<std::vector<double>> to_double(const std::vector<std::vector<float>> &v) {
    std::vector<std::vector<double>> out;
    for (const auto &x : v) out.push_back(to_double(x));
    return out;
}

inline std::size_t count_of(const std::vector<int> &dims) {
    std::size_t n = 1;
    for (int d : dims) n *= static_cast<std::size_t>(d);
    return n;
}

// The largest errors seen per comparison label, printed at exit when the
// environment variable DANN_LAYER_TEST_REPORT is set (to tune and document
// the tolerances; the tests never print otherwise).
class ErrorLog {
public:
    struct Entry {
        double max_abs = 0.0;
        double max_ratio = 0.0; // error / allowed error; < 1 passes
        double atol = 0.0, rtol = 0.0;
    };
    static ErrorLog &instance() {
        static ErrorLog log;
        return log;
    }
    void record(const std::string &label, double abs_err, double ratio, double atol, double rtol) {
        Entry &e = entries_[label];
        e.max_abs = std::max(e.max_abs, abs_err);
        e.max_ratio = std::max(e.max_ratio, ratio);
        e.atol = atol;
        e.rtol = rtol;
    }
    ~ErrorLog() {
        if (std::getenv("DANN_LAYER_TEST_REPORT") == nullptr) return;
        std::fprintf(stderr, "%-52s %10s %10s %8s %8s\n", "comparison", "max abs", "used", "atol", "rtol");
        for (const auto &kv : entries_)
            std::fprintf(stderr, "%-52s %10.3g %9.1f%% %8.0e %8.0e\n", kv.first.c_str(), kv.second.max_abs,
                         100.0 * kv.second.max_ratio, kv.second.atol, kv.second.rtol);
    }

private:
    ErrorLog() = default;
    std::map<std::string, Entry> entries_;
};

// Every element must satisfy |got - want| <= atol + rtol * |want|. On failure
// the message names the worst element.
template <typename Got>
void check_close(const std::string &label, const std::vector<Got> &got, const std::vector<double> &want,
                 double atol, double rtol) {
    REQUIRE_MESSAGE(got.size() == want.size(), label << ": " << got.size() << " values, expected " << want.size());
    double max_abs = 0.0, max_ratio = 0.0;
    std::size_t worst = 0;
    bool finite = true;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(got[i]);
        if (!std::isfinite(g)) finite = false;
        const double err = std::fabs(g - want[i]);
        const double allowed = atol + rtol * std::fabs(want[i]);
        const double ratio = err == 0.0 ? 0.0 : (allowed > 0.0 ? err / allowed : HUGE_VAL);
        max_abs = std::max(max_abs, err);
        if (!(ratio <= max_ratio)) {
            max_ratio = ratio;
            worst = i;
        }
    }
    ErrorLog::instance().record(label, max_abs, max_ratio, atol, rtol);
    CHECK_MESSAGE(finite, label << ": non-finite values");
    CHECK_MESSAGE(max_ratio <= 1.0, label << ": element " << worst << " is "
                                          << static_cast<double>(got.empty() ? Got{} : got[worst]) << ", expected "
                                          << (want.empty() ? 0.0 : want[worst]) << " (max abs error " << max_abs
                                          << ", tolerance " << atol << " + " << rtol << " * |expected|)");
}

// L = sum(dst * R), accumulated in double.
template <typename T>
double weighted_sum(const std::vector<T> &dst, const std::vector<float> &r) {
    double s = 0.0;
    for (std::size_t i = 0; i < dst.size(); ++i) s += static_cast<double>(dst[i]) * static_cast<double>(r[i]);
    return s;
}

// `count` distinct indices below n (all of them when n <= count), always
// including the first and the last.
inline std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count, Rng &rng) {
    std::vector<std::size_t> all(n);
    for (std::size_t i = 0; i < n; ++i) all[i] = i;
    if (n <= count) return all;
    std::vector<std::size_t> picked{0, n - 1};
    std::vector<std::size_t> middle(all.begin() + 1, all.end() - 1);
    for (std::size_t i = middle.size(); i > 1; --i) std::swap(middle[i - 1], middle[rng.below(i)]);
    for (std::size_t i = 0; picked.size() < count; ++i) picked.push_back(middle[i]);
    std::sort(picked.begin(), picked.end());
    return picked;
}

// Central difference of a scalar function of one float entry x[i]. The step
// actually taken is measured after rounding x +- h to float, so the quotient
// uses the true distance between the two points.
template <typename F>
double central_difference_float(std::vector<float> &x, std::size_t i, float h, F &&loss) {
    const float saved = x[i];
    x[i] = saved + h;
    const double plus_at = static_cast<double>(x[i]);
    const double plus = loss();
    x[i] = saved - h;
    const double minus_at = static_cast<double>(x[i]);
    const double minus = loss();
    x[i] = saved;
    return (plus - minus) / (plus_at - minus_at);
}

template <typename F>
double central_difference_double(std::vector<double> &x, std::size_t i, double h, F &&loss) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;
    return (plus - minus) / (2.0 * h);
}

} // namespace layer_test
