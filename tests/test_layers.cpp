// Every layer kind, the GRL and both losses, run through the real oneDNN-backed
// implementation (layers/harness.hpp) and compared with
// - the scalar references in tests/reference/ (forward, diff_src, parameter
//   gradients, running statistics), and
// - central finite differences of L = sum(dst * R) (so diff_dst = R), taken
//   both through the library's own forward pass (checks its analytic
//   gradients independently of the references) and through the reference's
//   forward pass in double (checks the references' backward passes).
//
// Tolerances, as |got - want| <= atol + rtol * |want|:
// - Exact (0, 0) where the layer only copies or selects values: max-pool and
//   ReLU forward, ReLU backward, flatten, the GRL forward.
// - Convolution and dense: float32 sums of at most a few hundred products of
//   values in [-1, 1]; the rounding error is about sqrt(terms) * 2^-24 *
//   |partial sums|, a few 1e-6 here, so 1e-4 + 1e-4 * |want| leaves a wide
//   margin while any indexing or layout mistake gives errors of order 0.1.
// - Element-wise float functions (sigmoid, dropout's product, BN's
//   normalisation): a few float ulps, so 1e-5 absolute and relative.
// - Finite differences through the library: the forward pass runs in float,
//   so each changed output carries ~2^-24 * |dst| of rounding that the
//   quotient divides by 2h = 2e-2, about 1e-5 per output; BN adds the
//   O(h^2) truncation of a non-linear function. 5e-3 + 1e-2 * |want| stays
//   clear of both yet far below the O(0.1) error of a wrong gradient.
// - Finite differences through the reference run in double with h = 1e-5:
//   truncation below 1e-7 (the worst: BN on 3 samples per part), rounding
//   ~1e-10; 1e-6 + 1e-6 * |want|.
// Setting DANN_LAYER_TEST_REPORT=1 prints the largest error of every comparison.

#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "layer_test_util.hpp"
#include "core/convert.hpp"
#include "core/dnn.hpp"
#include "layers/conv_bf16.hpp"
#include "layers/harness.hpp"
#include "reference/layer.hpp"
#include "reference/losses.hpp"

namespace {

using dann::testing::LayerOptions;
using dann::testing::LayerRun;
using dann::testing::run_layer;
using namespace layer_test;

struct Tolerance {
    double atol, rtol;
};

constexpr Tolerance kExact{0.0, 0.0};
constexpr Tolerance kLinearTol{1e-4, 1e-4};
constexpr Tolerance kElementwiseTol{1e-5, 1e-5};
constexpr Tolerance kLibraryFdTol{5e-3, 1e-2};
constexpr Tolerance kReferenceFdTol{1e-6, 1e-6};
constexpr float kLibraryFdStep = 1e-2f;
constexpr double kReferenceFdStep = 1e-5;
constexpr std::size_t kFdSamples = 8; // per tensor, through the library

// Layer descriptions are written out field by field (not through the
// dann_layer_* constructors) so that the tests pin the fields themselves.
dann_layer_desc layer_of(dann_layer_kind kind) {
    dann_layer_desc d{};
    d.kind = kind;
    return d;
}

dann_layer_desc conv(int units, int kh, int kw, int sh, int sw, int ph, int pw) {
    dann_layer_desc d = layer_of(DANN_LAYER_CONV2D);
    d.units = units;
    d.kernel_h = kh;
    d.kernel_w = kw;
    d.stride_h = sh;
    d.stride_w = sw;
    d.pad_h = ph;
    d.pad_w = pw;
    return d;
}

dann_layer_desc maxpool(int kh, int kw, int sh, int sw, int ph, int pw) {
    dann_layer_desc d = conv(0, kh, kw, sh, sw, ph, pw);
    d.kind = DANN_LAYER_MAXPOOL2D;
    return d;
}

dann_layer_desc dense(int units) {
    dann_layer_desc d = layer_of(DANN_LAYER_DENSE);
    d.units = units;
    return d;
}

dann_layer_desc dropout(float rate) {
    dann_layer_desc d = layer_of(DANN_LAYER_DROPOUT);
    d.rate = rate;
    return d;
}

dann_layer_desc batchnorm(float eps = 0.0f, float momentum = 0.0f) {
    dann_layer_desc d = layer_of(DANN_LAYER_BATCHNORM);
    d.eps = eps;
    d.momentum = momentum;
    return d;
}

enum class Fill {
    uniform,        // U(-1, 1)
    distinct,       // no two equal, spaced 0.05 apart (max pooling)
    away_from_zero, // |x| >= 0.05 (ReLU)
};

// One layer with its data: source, parameters (PyTorch layout) and the fixed
// random R that serves as diff_dst.
struct Problem {
    dann_layer_desc layer;
    std::vector<int> src_dims;
    std::vector<float> src;
    std::vector<std::vector<float>> params;
    std::vector<float> diff_dst;
};

Problem make_problem(const dann_layer_desc &layer, const std::vector<int> &src_dims, Fill fill, uint64_t seed) {
    Rng rng(seed);
    Problem p{layer, src_dims, {}, {}, {}};
    const std::size_t n = count_of(src_dims);
    switch (fill) {
    case Fill::uniform: p.src = uniform_floats(n, rng); break;
    case Fill::distinct: p.src = distinct_floats(n, rng, 0.05f); break;
    case Fill::away_from_zero: p.src = away_from_zero(n, rng, 0.05f); break;
    }
    const std::vector<std::size_t> sizes = ref::layer_param_sizes(layer, src_dims);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (layer.kind == DANN_LAYER_BATCHNORM)
            p.params.push_back(i == 0 ? uniform_floats(sizes[i], rng, 0.5f, 1.5f)
                                      : uniform_floats(sizes[i], rng, -0.5f, 0.5f));
        else
            p.params.push_back(uniform_floats(sizes[i], rng));
    }
    p.diff_dst = uniform_floats(count_of(ref::layer_output_dims(layer, src_dims)), rng);
    return p;
}

LayerOptions training(bool blocked = false) {
    LayerOptions o;
    o.training = true;
    o.blocked_input = blocked;
    return o;
}

LayerOptions inference(bool blocked = false) {
    LayerOptions o = training(blocked);
    o.training = false;
    return o;
}

ref::LayerMode mode_for(const LayerOptions &options, const LayerRun &run) {
    ref::LayerMode mode;
    mode.training = options.training;
    mode.domain_split = options.domain_split;
    mode.running_mean = to_double(options.running_mean);
    mode.running_var = to_double(options.running_var);
    mode.dropout_mask = to_double(run.dropout_mask);
    return mode;
}

// Forward output and, in training, diff_src and every parameter gradient of
// the library against the reference.
void check_against_reference(const std::string &label, const Problem &p, const LayerOptions &options,
                             const Tolerance &forward_tol, const Tolerance &backward_tol) {
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, options);
    CHECK(run.dst_dims == ref::layer_output_dims(p.layer, p.src_dims));
    const ref::LayerMode mode = mode_for(options, run);
    const std::vector<double> src = to_double(p.src);
    const std::vector<std::vector<double>> params = to_double(p.params);
    check_close(label + " forward", run.dst, ref::layer_forward(p.layer, p.src_dims, src, params, mode),
                forward_tol.atol, forward_tol.rtol);
    if (!options.training) return;
    const ref::LayerGrads want = ref::layer_backward(p.layer, p.src_dims, src, params, to_double(p.diff_dst), mode);
    check_close(label + " diff_src", run.diff_src, want.diff_src, backward_tol.atol, backward_tol.rtol);
    REQUIRE(run.diff_params.size() == want.diff_params.size());
    for (std::size_t i = 0; i < want.diff_params.size(); ++i)
        check_close(label + " diff_param" + std::to_string(i), run.diff_params[i], want.diff_params[i],
                    backward_tol.atol, backward_tol.rtol);
}

// The library's analytic gradients against central differences of its own
// forward pass, on a sample of the source and parameter entries. The forward
// runs in training mode where that changes it (batch statistics, dropout mask
// from the same seed), in inference mode otherwise (cheaper).
void check_library_gradients(const std::string &label, Problem p, const LayerOptions &options) {
    const LayerRun analytic = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, options);
    LayerOptions forward_options = options;
    forward_options.training =
        p.layer.kind == DANN_LAYER_BATCHNORM || p.layer.kind == DANN_LAYER_DROPOUT;
    auto loss = [&] {
        const LayerRun r = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, forward_options);
        return weighted_sum(r.dst, p.diff_dst);
    };
    Rng rng(0x5eed);
    auto check_tensor = [&](const std::string &what, std::vector<float> &x, const std::vector<float> &grad) {
        REQUIRE(grad.size() == x.size());
        std::vector<float> got;
        std::vector<double> want;
        for (std::size_t i : sample_indices(x.size(), kFdSamples, rng)) {
            got.push_back(grad[i]);
            want.push_back(central_difference_float(x, i, kLibraryFdStep, loss));
        }
        check_close(label + " " + what + " vs FD", got, want, kLibraryFdTol.atol, kLibraryFdTol.rtol);
    };
    check_tensor("diff_src", p.src, analytic.diff_src);
    REQUIRE(analytic.diff_params.size() == p.params.size());
    for (std::size_t t = 0; t < p.params.size(); ++t)
        check_tensor("diff_param" + std::to_string(t), p.params[t], analytic.diff_params[t]);
}

// The reference's backward pass against central differences of its forward
// pass, in double, over every entry.
void check_reference_gradients(const std::string &label, const Problem &p, const ref::LayerMode &mode) {
    std::vector<double> src = to_double(p.src);
    std::vector<std::vector<double>> params = to_double(p.params);
    const ref::LayerGrads analytic =
        ref::layer_backward(p.layer, p.src_dims, src, params, to_double(p.diff_dst), mode);
    auto loss = [&] { return weighted_sum(ref::layer_forward(p.layer, p.src_dims, src, params, mode), p.diff_dst); };
    auto check_tensor = [&](const std::string &what, std::vector<double> &x, const std::vector<double> &grad) {
        std::vector<double> numeric(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) numeric[i] = central_difference_double(x, i, kReferenceFdStep, loss);
        check_close(label + " reference " + what + " vs FD", grad, numeric, kReferenceFdTol.atol,
                    kReferenceFdTol.rtol);
    };
    check_tensor("diff_src", src, analytic.diff_src);
    for (std::size_t t = 0; t < params.size(); ++t)
        check_tensor("diff_param" + std::to_string(t), params[t], analytic.diff_params[t]);
}

void check_reference_gradients(const std::string &label, const Problem &p) {
    check_reference_gradients(label, p, ref::LayerMode{});
}

// Both layouts of the source, as SUBCASEs of the calling test case.
#define FOR_BOTH_LAYOUTS(blocked)                                                                                      \
    bool blocked = false;                                                                                              \
    SUBCASE("plain NCHW input") { blocked = false; }                                                                   \
    SUBCASE("blocked nChw16c input") { blocked = true; }

std::string layout_label(const std::string &label, bool blocked) {
    return blocked ? label + " blocked" : label;
}

} // namespace

// ---------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------

TEST_CASE("Convolution matches the scalar reference for kernel 3, stride 1, padding 1") {
    const Problem p = make_problem(conv(4, 3, 3, 1, 1, 1, 1), {2, 3, 6, 6}, Fill::uniform, 101);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k3 s1 p1", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for kernel 3, stride 2, padding 1") {
    const Problem p = make_problem(conv(4, 3, 3, 2, 2, 1, 1), {2, 3, 7, 7}, Fill::uniform, 102);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k3 s2 p1", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for kernel 5, stride 1, padding 2") {
    const Problem p = make_problem(conv(3, 5, 5, 1, 1, 2, 2), {2, 2, 7, 7}, Fill::uniform, 103);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k5 s1 p2", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for kernel 5, stride 1, no padding") {
    const Problem p = make_problem(conv(5, 5, 5, 1, 1, 0, 0), {2, 3, 9, 9}, Fill::uniform, 104);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k5 s1 p0", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for kernel 1, stride 1, no padding") {
    const Problem p = make_problem(conv(2, 1, 1, 1, 1, 0, 0), {3, 5, 5, 5}, Fill::uniform, 105);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k1 s1 p0", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for a single input channel") {
    const Problem p = make_problem(conv(5, 3, 3, 1, 1, 0, 0), {3, 1, 6, 6}, Fill::uniform, 118);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv 1 channel k3 s1 p0", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

// bf16 training plans: every operand (source, weights, output gradient) is
// made exactly representable in bf16, so the products are exact and only the
// f32 sums differ from the reference: the linear tolerance holds, while a
// wrong index or layout in the transposed backward products (ConvBf16Backward)
// or in the bias sums gives errors of order 0.1. The cases cover that path
// (unit strides, >= 16 channels; output channels that do not fill a
// 16-channel block; padding) and the ones that keep oneDNN's own backward
// (3 input channels; stride 2), with the source and output gradient plain,
// blocked and NHWC.
namespace {

std::vector<float> bf16_exact(std::vector<float> v) {
    for (float &x : v) {
        uint32_t u;
        std::memcpy(&u, &x, sizeof u);
        u &= 0xffff0000u;
        std::memcpy(&x, &u, sizeof u);
    }
    return v;
}

void check_bf16_conv(const std::string &label, const dann_layer_desc &layer, const std::vector<int> &dims,
                     uint64_t seed) {
    Problem p = make_problem(layer, dims, Fill::uniform, seed);
    p.src = bf16_exact(p.src);
    for (auto &t : p.params) t = bf16_exact(t);
    p.diff_dst = bf16_exact(p.diff_dst);
    LayerOptions o = training();
    o.bf16 = true;
    std::string layout = " plain";
    SUBCASE("plain") {}
    SUBCASE("blocked") {
        o.blocked_input = true;
        layout = " blocked";
    }
    SUBCASE("nhwc") {
        o.nhwc_input = true;
        layout = " nhwc";
    }
    check_against_reference(label + layout, p, o, kLinearTol, kLinearTol);
}

} // namespace

TEST_CASE("bf16 convolutions match the scalar reference on bf16-exact values") {
    if (!dann_precision_supported(DANN_PRECISION_BF16)) {
        MESSAGE("bf16 is not supported on this CPU: skipped");
        return;
    }
    SUBCASE("kernel 5, no padding, 32 -> 24 channels (transposed backward)") {
        check_bf16_conv("bf16 conv k5 p0 32->24", conv(24, 5, 5, 1, 1, 0, 0), {4, 32, 12, 12}, 131);
    }
    SUBCASE("kernel 3, padding 1, 16 -> 20 channels (transposed backward)") {
        check_bf16_conv("bf16 conv k3 p1 16->20", conv(20, 3, 3, 1, 1, 1, 1), {3, 16, 7, 7}, 132);
    }
    SUBCASE("rectangular 3x5 kernel, padding 2x1 (transposed backward)") {
        check_bf16_conv("bf16 conv k3x5 p2x1 17->16", conv(16, 3, 5, 1, 1, 2, 1), {2, 17, 6, 8}, 133);
    }
    SUBCASE("3 input channels (the layer stays f32)") {
        check_bf16_conv("bf16 conv k5 3->32", conv(32, 5, 5, 1, 1, 0, 0), {2, 3, 10, 10}, 134);
    }
    SUBCASE("stride 2 (oneDNN's backward)") {
        check_bf16_conv("bf16 conv k3 s2 16->16", conv(16, 3, 3, 2, 2, 1, 1), {2, 16, 9, 9}, 135);
    }
    SUBCASE("more than 64 output positions (oneDNN's backward)") {
        check_bf16_conv("bf16 conv k3 p1 9x9 16->24", conv(24, 3, 3, 1, 1, 1, 1), {2, 16, 9, 9}, 136);
    }
}

TEST_CASE("bf16 dense layers match the scalar reference on bf16-exact values") {
    if (!dann_precision_supported(DANN_PRECISION_BF16)) {
        MESSAGE("bf16 is not supported on this CPU: skipped");
        return;
    }
    for (const auto &c : {std::pair<int, std::vector<int>>{24, {8, 40}}, {100, {16, 768}}, {1, {16, 100}}}) {
        Problem p = make_problem(dense(c.first), c.second, Fill::uniform, 137);
        p.src = bf16_exact(p.src);
        for (auto &t : p.params) t = bf16_exact(t);
        p.diff_dst = bf16_exact(p.diff_dst);
        LayerOptions o = training();
        o.bf16 = true;
        check_against_reference("bf16 dense " + std::to_string(c.second[1]) + "->" + std::to_string(c.first), p, o,
                                kLinearTol, kLinearTol);
    }
}

// Where dnn::bf16_weight_gradients() (AVX512-BF16 without AMX), a bf16
// layer outside ConvBf16Backward takes its weight and bias gradients from
// the source and output gradient rounded to bf16 (nearest even); elsewhere
// from the f32 values. On values that are not bf16-exact the two differ by
// far more than the tolerance, so each run must match the one reference its
// CPU calls for and miss the other.
namespace {

std::vector<float> bf16_nearest(std::vector<float> v) {
    for (float &x : v) {
        uint32_t u;
        std::memcpy(&u, &x, sizeof u);
        u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
        std::memcpy(&x, &u, sizeof u);
    }
    return v;
}

bool within(const std::vector<float> &got, const std::vector<double> &want, const Tolerance &tol) {
    if (got.size() != want.size()) return false;
    for (std::size_t i = 0; i < got.size(); ++i)
        if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol.atol + tol.rtol * std::fabs(want[i])))
            return false;
    return true;
}

} // namespace

TEST_CASE("bf16 weight gradients come from bf16 operands exactly where dnn::bf16_weight_gradients()") {
    if (!dann_precision_supported(DANN_PRECISION_BF16)) {
        MESSAGE("bf16 is not supported on this CPU: skipped");
        return;
    }
    const bool rounded = dann::dnn::bf16_weight_gradients();
    const std::string note = std::string("bf16 weight gradients on this CPU: ") + (rounded ? "yes" : "no");
    MESSAGE(note);
    Problem p;
    std::string label;
    SUBCASE("convolution on 3 channels") {
        p = make_problem(conv(32, 5, 5, 1, 1, 0, 0), {2, 3, 10, 10}, Fill::uniform, 141);
        label = "conv 3->32";
    }
    SUBCASE("convolution with stride 2") {
        p = make_problem(conv(16, 3, 3, 2, 2, 1, 1), {2, 16, 9, 9}, Fill::uniform, 142);
        label = "conv s2 16->16";
    }
    SUBCASE("dense") {
        p = make_problem(dense(24), {8, 40}, Fill::uniform, 143);
        label = "dense 40->24";
    }
    for (auto &t : p.params) t = bf16_exact(t);
    LayerOptions o = training();
    o.bf16 = true;
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
    const ref::LayerMode mode = mode_for(o, run);
    const std::vector<std::vector<double>> params = to_double(p.params);
    const ref::LayerGrads f32 =
        ref::layer_backward(p.layer, p.src_dims, to_double(p.src), params, to_double(p.diff_dst), mode);
    const ref::LayerGrads bf16 = ref::layer_backward(p.layer, p.src_dims, to_double(bf16_nearest(p.src)), params,
                                                     to_double(bf16_nearest(p.diff_dst)), mode);
    REQUIRE(run.diff_params.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        const std::string what = label + (i == 0 ? " weight gradient" : " bias gradient");
        const auto &want = rounded ? bf16.diff_params[i] : f32.diff_params[i];
        const auto &other = rounded ? f32.diff_params[i] : bf16.diff_params[i];
        check_close(what, run.diff_params[i], want, kLinearTol.atol, kLinearTol.rtol);
        CHECK_MESSAGE(!within(run.diff_params[i], other, kLinearTol),
                      what << " also matches the other reference: the values cannot tell them apart");
    }
}

TEST_CASE("dann's own f32 -> bf16 reorder writes oneDNN's bits") {
    // dnn::reformat() runs a type-only f32 -> bf16 reorder in its own loop
    // (core/convert.hpp) where it can: it must round exactly as oneDNN's
    // reorder does, ties, denormals, infinities and NaNs included, in every
    // layout, on one thread or two, with a tail shorter than a vector.
    if (!dann_precision_supported(DANN_PRECISION_BF16)) {
        MESSAGE("bf16 is not supported on this CPU: skipped");
        return;
    }
    const bool own = dann::convert::f32_to_bf16_available();
    const std::vector<uint32_t> specials = {
        0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u, // NaNs
        0x7fbfffffu, 0x00000001u, 0x807fffffu, 0x00800000u, 0x3f808000u, 0x3f818000u, 0x3f807fffu,
        0x3f808001u, 0x7f7fffffu, 0xff7f8000u, 0x477fe000u, 0x3effffffu};
    for (const auto &c : {std::pair<dann::dnn::dims, dann::dnn::tag>{{3, 32, 5, 7}, dann::dnn::tag::nChw16c},
                          {{2, 3, 7, 9}, dann::dnn::tag::nchw},
                          {{5, 13}, dann::dnn::tag::nc}}) {
        for (const int threads : {1, 2}) {
            dann::dnn::Device dev;
            dann::dnn::Arena arena(dev);
            std::deque<dann::dnn::Call> calls;
            dann::dnn::PlanCtx pc(dev, arena, calls, true);
            const dann::dnn::md f32_md(c.first, dann::dnn::f32, c.second);
            dnnl::memory from = arena.make(f32_md);
            const size_t n = dann::dnn::physical_floats(f32_md);
            Rng rng(151);
            std::vector<uint32_t> bits(n);
            for (size_t i = 0; i < n; ++i) {
                const float v = (uniform_floats(1, rng)[0]) * (i % 3 == 0 ? 1e-39f : 3.0f);
                std::memcpy(&bits[i], &v, sizeof v);
                if (i % 5 == 0) bits[i] = specials[(i / 5) % specials.size()];
            }
            std::memcpy(from.get_data_handle(), bits.data(), n * sizeof(float));
            const dann::dnn::md bf16_md = dann::dnn::with_type(f32_md, dann::dnn::bf16);
            const dann::dnn::Reformat r = dann::dnn::reformat(pc, from, bf16_md);
            REQUIRE(r.call != nullptr);
            CHECK((r.call->cvt_count > 0) == own);
            const int saved = omp_get_max_threads();
            omp_set_num_threads(threads);
            dann::dnn::run(dev, r.call);
            dann::dnn::wait(dev);
            omp_set_num_threads(saved);
            dnnl::memory want(bf16_md, dev.eng);
            dnnl::reorder(from, want).execute(dev.strm, from, want);
            dev.strm.wait();
            const auto *got_p = static_cast<const uint16_t *>(r.mem.get_data_handle());
            const auto *want_p = static_cast<const uint16_t *>(want.get_data_handle());
            size_t differ = 0, first = n;
            for (size_t i = 0; i < n; ++i)
                if (got_p[i] != want_p[i]) {
                    ++differ;
                    if (first == n) first = i;
                }
            char input[16] = "";
            if (first < n) std::snprintf(input, sizeof input, "0x%08x", static_cast<unsigned>(bits[first]));
            CHECK_MESSAGE(differ == 0,
                          differ << " of " << n << " values differ, first at " << first << " (input " << input << ")");
        }
    }
}

TEST_CASE("The bf16 backward as forward convolutions serves unit strides, 16+ channels, small outputs") {
    dann::GemmGeometry g;
    g.conv = true;
    g.n = 128;
    g.c = 32;
    g.h = g.w = 12;
    g.oc = 48;
    g.kh = g.kw = 5;
    g.oh = g.ow = 8; // the MNIST network's second convolution
    CHECK(dann::ConvBf16Backward::applies(g));
    dann::GemmGeometry big = g; // 16x16 output: oneDNN's own backward
    big.h = big.w = 16;
    big.ph = big.pw = 2;
    big.oh = big.ow = 16;
    CHECK_FALSE(dann::ConvBf16Backward::applies(big));
    dann::GemmGeometry few = g; // 3 input channels
    few.c = 3;
    CHECK_FALSE(dann::ConvBf16Backward::applies(few));
    dann::GemmGeometry strided = g;
    strided.sh = 2;
    CHECK_FALSE(dann::ConvBf16Backward::applies(strided));
    dann::GemmGeometry wide_pad = g; // padding as large as the kernel
    wide_pad.ph = 5;
    CHECK_FALSE(dann::ConvBf16Backward::applies(wide_pad));
}

TEST_CASE("Convolution with kernel 3, stride 2, no padding drops the last column of an even input") {
    const Problem p = make_problem(conv(3, 3, 3, 2, 2, 0, 0), {2, 2, 8, 8}, Fill::uniform, 106);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k3 s2 p0", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for a rectangular 3x5 kernel with padding 1x2") {
    const Problem p = make_problem(conv(3, 3, 5, 1, 1, 1, 2), {2, 3, 6, 8}, Fill::uniform, 107);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k3x5 s1 p1x2", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference for a rectangular 2x3 kernel with stride 1x2") {
    const Problem p = make_problem(conv(2, 2, 3, 1, 2, 0, 0), {3, 2, 5, 9}, Fill::uniform, 108);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv k2x3 s1x2 p0", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Convolution reads zero kernel_w, stride_w and pad_w as copies of the _h values") {
    const Problem p = make_problem(conv(3, 3, 0, 2, 0, 1, 0), {2, 2, 7, 6}, Fill::uniform, 109);
    check_against_reference("conv k3 s2 p1 from _h", p, training(), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution in inference mode matches the scalar reference") {
    const Problem p = make_problem(conv(4, 3, 3, 2, 2, 1, 1), {2, 3, 7, 7}, Fill::uniform, 110);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv inference", blocked), p, inference(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference when channels span more than one 16-channel block") {
    const Problem p = make_problem(conv(18, 3, 3, 1, 1, 1, 1), {2, 17, 4, 4}, Fill::uniform, 117);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("conv 17->18 channels", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Convolution gradients agree with finite differences of the library's forward pass") {
    SUBCASE("kernel 3, stride 2, padding 1") {
        check_library_gradients("conv k3 s2 p1", make_problem(conv(3, 3, 3, 2, 2, 1, 1), {2, 2, 7, 7}, Fill::uniform, 111),
                                training());
    }
    SUBCASE("kernel 5, stride 1, padding 2, blocked input") {
        check_library_gradients("conv k5 s1 p2 blocked",
                                make_problem(conv(2, 5, 5, 1, 1, 2, 2), {2, 3, 6, 6}, Fill::uniform, 112),
                                training(true));
    }
    SUBCASE("rectangular 3x5 kernel, padding 1x2") {
        check_library_gradients("conv k3x5 s1 p1x2",
                                make_problem(conv(2, 3, 5, 1, 1, 1, 2), {2, 2, 5, 7}, Fill::uniform, 113),
                                training());
    }
}

TEST_CASE("The convolution reference's gradients agree with its own finite differences") {
    SUBCASE("kernel 3, stride 2, padding 1") {
        check_reference_gradients("conv k3 s2 p1", make_problem(conv(2, 3, 3, 2, 2, 1, 1), {2, 2, 5, 5}, Fill::uniform, 114));
    }
    SUBCASE("kernel 5, stride 1, padding 2") {
        check_reference_gradients("conv k5 s1 p2", make_problem(conv(2, 5, 5, 1, 1, 2, 2), {2, 2, 5, 5}, Fill::uniform, 115));
    }
    SUBCASE("rectangular 2x3 kernel, stride 1x2") {
        check_reference_gradients("conv k2x3 s1x2",
                                  make_problem(conv(2, 2, 3, 1, 2, 0, 0), {2, 2, 5, 7}, Fill::uniform, 116));
    }
}

// ---------------------------------------------------------------------------
// Max pooling (inputs distinct, so that every window has one maximum)
// ---------------------------------------------------------------------------

TEST_CASE("Max pooling matches the scalar reference for kernel 2, stride 2") {
    FOR_BOTH_LAYOUTS(blocked);
    const Problem even = make_problem(maxpool(2, 2, 2, 2, 0, 0), {2, 3, 8, 8}, Fill::distinct, 201);
    check_against_reference(layout_label("maxpool k2 s2", blocked), even, training(blocked), kExact, kElementwiseTol);
    // Odd extent: the last row and column belong to no window.
    const Problem odd = make_problem(maxpool(2, 2, 2, 2, 0, 0), {2, 2, 7, 7}, Fill::distinct, 202);
    check_against_reference(layout_label("maxpool k2 s2 odd", blocked), odd, training(blocked), kExact,
                            kElementwiseTol);
}

TEST_CASE("Max pooling reads an output gradient that arrives in NHWC against a blocked output") {
    // The own loops read an f32 output gradient in the layout it arrives in
    // when its channels fill the output's blocks (32 channels: two blocks of
    // 16), and reorder it first otherwise (24 channels; a 3x3 window, 8
    // lanes). Gradients are exact either way.
    struct Shape {
        std::vector<int> dims;
        int kernel;
    };
    for (const Shape &s : {Shape{{2, 32, 8, 8}, 2}, Shape{{3, 24, 6, 6}, 2}, Shape{{2, 16, 9, 9}, 3}}) {
        const Problem p = make_problem(maxpool(s.kernel, s.kernel, s.kernel, s.kernel, 0, 0), s.dims,
                                       Fill::distinct, 217);
        for (const bool relu : {false, true}) {
            CAPTURE(s.dims[1]);
            CAPTURE(relu);
            LayerOptions o = training(true);
            o.nhwc_diff_dst = true;
            o.fuse_relu = relu;
            const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
            const ref::LayerMode mode = mode_for(o, run);
            std::vector<double> dd = to_double(p.diff_dst);
            std::vector<double> dst = ref::layer_forward(p.layer, p.src_dims, to_double(p.src), {}, mode);
            if (relu) {
                for (size_t i = 0; i < dst.size(); ++i)
                    if (dst[i] <= 0.0) dd[i] = 0.0, dst[i] = 0.0;
            }
            REQUIRE(run.fused_relu == relu);
            check_close("maxpool nhwc diff_dst forward", run.dst, dst, 0.0, 0.0);
            const ref::LayerGrads want = ref::layer_backward(p.layer, p.src_dims, to_double(p.src), {}, dd, mode);
            check_close("maxpool nhwc diff_dst diff_src", run.diff_src, want.diff_src, 0.0, 0.0);
        }
    }
}

TEST_CASE("Max pooling matches the scalar reference for kernel 3, stride 2, padding 1") {
    FOR_BOTH_LAYOUTS(blocked);
    const Problem odd = make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 3, 7, 7}, Fill::distinct, 203);
    check_against_reference(layout_label("maxpool k3 s2 p1", blocked), odd, training(blocked), kExact,
                            kElementwiseTol);
    const Problem even = make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 2, 8, 8}, Fill::distinct, 204);
    check_against_reference(layout_label("maxpool k3 s2 p1 even", blocked), even, training(blocked), kExact,
                            kElementwiseTol);
}

TEST_CASE("Max pooling matches the scalar reference for overlapping kernel 3, stride 1, padding 1") {
    const Problem p = make_problem(maxpool(3, 3, 1, 1, 1, 1), {2, 2, 6, 6}, Fill::distinct, 205);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("maxpool k3 s1 p1", blocked), p, training(blocked), kExact, kElementwiseTol);
}

TEST_CASE("Max pooling matches the scalar reference for kernel 3, stride 2, no padding") {
    const Problem p = make_problem(maxpool(3, 3, 2, 2, 0, 0), {2, 2, 9, 9}, Fill::distinct, 206);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("maxpool k3 s2 p0", blocked), p, training(blocked), kExact, kElementwiseTol);
}

TEST_CASE("Max pooling matches the scalar reference for a rectangular 2x3 kernel, stride 2x1, padding 0x1") {
    const Problem p = make_problem(maxpool(2, 3, 2, 1, 0, 1), {2, 2, 6, 7}, Fill::distinct, 207);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("maxpool k2x3 s2x1 p0x1", blocked), p, training(blocked), kExact,
                            kElementwiseTol);
}

TEST_CASE("Max pooling with stride 0 uses the kernel size as stride") {
    const Problem p = make_problem(maxpool(2, 0, 0, 0, 0, 0), {2, 2, 6, 6}, Fill::distinct, 208);
    check_against_reference("maxpool k2 default stride", p, training(), kExact, kElementwiseTol);
}

TEST_CASE("Max pooling matches the scalar reference when channels span more than one 16-channel block") {
    const Problem p = make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 18, 5, 5}, Fill::distinct, 213);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("maxpool 18 channels", blocked), p, training(blocked), kExact,
                            kElementwiseTol);
}

TEST_CASE("Max pooling with kernel 2, stride 2 matches the scalar reference with a padded channel block") {
    // Non-overlapping windows: the training forward runs without a workspace
    // and the backward is dann's own loop; 18 channels leave the second
    // 16-channel block mostly padding.
    const Problem p = make_problem(maxpool(2, 2, 2, 2, 0, 0), {2, 18, 6, 6}, Fill::distinct, 214);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("maxpool k2 s2 18 channels", blocked), p, training(blocked), kExact,
                            kElementwiseTol);
}

TEST_CASE("Max pooling with tied maxima gives each window's gradient to its first maximum only") {
    // Values from {-1, 0, 1}: most 2x2 windows hold their maximum more than
    // once. The gradient of each output goes to the first maximal element in
    // row-major window order, and every other element gets 0.
    Problem p = make_problem(maxpool(2, 2, 2, 2, 0, 0), {2, 17, 4, 6}, Fill::uniform, 215);
    for (float &v : p.src) v = v < -0.33f ? -1.0f : (v < 0.33f ? 0.0f : 1.0f);
    FOR_BOTH_LAYOUTS(blocked);
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, training(blocked));
    const int n = 2, c = 17, h = 4, w = 6, oh = 2, ow = 3;
    std::vector<float> expected(p.src.size(), 0.0f);
    int tied = 0;
    for (int i = 0; i < n * c; ++i)
        for (int y = 0; y < oh; ++y)
            for (int x = 0; x < ow; ++x) {
                int best = -1, count = 0;
                for (int dy = 0; dy < 2; ++dy)
                    for (int dx = 0; dx < 2; ++dx) {
                        const int at = (i * h + 2 * y + dy) * w + 2 * x + dx;
                        if (best < 0 || p.src[size_t(at)] > p.src[size_t(best)]) best = at;
                    }
                for (int dy = 0; dy < 2; ++dy)
                    for (int dx = 0; dx < 2; ++dx)
                        count += p.src[size_t((i * h + 2 * y + dy) * w + 2 * x + dx)] == p.src[size_t(best)];
                tied += count > 1;
                expected[size_t(best)] = p.diff_dst[size_t((i * oh + y) * ow + x)];
            }
    CHECK(tied > 50);
    REQUIRE(run.diff_src.size() == expected.size());
    int wrong = 0;
    for (size_t i = 0; i < expected.size(); ++i) wrong += run.diff_src[i] != expected[i];
    CHECK(wrong == 0);
}

TEST_CASE("Max pooling's own backward handles NHWC input, with and without a fused ReLU, "
          "writing its gradient NHWC or in the blocked layout asked for") {
    // Kernel 2, stride 2 on 32 NHWC channels: the backward walks the
    // contiguous channels as 16-wide lanes. With the ReLU that follows fused
    // in, the output is max(window maximum, 0) and a gradient passes only
    // where that is positive (PyTorch's ReLU backward: x > 0). Asked for an
    // nChw16c gradient (the layout a convolution before reads it in), it
    // writes that layout.
    const int n = 2, c = 32, h = 6, w = 4, oh = 3, ow = 2;
    Problem p = make_problem(maxpool(2, 2, 2, 2, 0, 0), {n, c, h, w}, Fill::distinct, 216);
    // Some windows entirely negative, some with a maximum of exactly 0.
    for (size_t i = 0; i < p.src.size(); i += 7) p.src[i] = -std::fabs(p.src[i]) - 2.0f;
    for (int i = 0; i < n * c; i += 5)
        for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx) {
                float &v = p.src[size_t((i * h + dy) * w + dx)];
                v = dy == 0 && dx == 1 ? 0.0f : -std::fabs(v) - 1.0f;
            }
    for (const bool relu : {false, true})
    for (const bool hint : {false, true}) {
        CAPTURE(relu);
        CAPTURE(hint);
        LayerOptions o = training();
        o.nhwc_input = true;
        o.fuse_relu = relu;
        o.blocked_diff_src_hint = hint;
        const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
        CHECK(run.fused_relu == relu);
        CHECK(run.diff_src_blocked == hint);
        std::vector<float> want_dst(size_t(n * c * oh * ow)), want_diff(p.src.size(), 0.0f);
        for (int i = 0; i < n * c; ++i)
            for (int y = 0; y < oh; ++y)
                for (int x = 0; x < ow; ++x) {
                    int best = -1;
                    for (int dy = 0; dy < 2; ++dy)
                        for (int dx = 0; dx < 2; ++dx) {
                            const int at = (i * h + 2 * y + dy) * w + 2 * x + dx;
                            if (best < 0 || p.src[size_t(at)] > p.src[size_t(best)]) best = at;
                        }
                    const size_t o_at = size_t((i * oh + y) * ow + x);
                    const float m = p.src[size_t(best)];
                    want_dst[o_at] = relu ? std::max(m, 0.0f) : m;
                    want_diff[size_t(best)] = !relu || m > 0.0f ? p.diff_dst[o_at] : 0.0f;
                }
        CHECK(run.dst == want_dst);
        CHECK(run.diff_src == want_diff);
    }
}

TEST_CASE("Max pooling's own loops pool a bf16 input exactly, into bf16, with f32 gradients") {
    // A bf16 convolution before writes bf16 (PlanCtx::bf16_dst): the own
    // training loops read it, write a bf16 output (the maxima, exact), and
    // route the f32 output gradient into an f32 input gradient, in every
    // layout they walk, with and without the fused ReLU and the blocked
    // gradient layout asked for. Ties (from rounding to bf16) go to the
    // first maximum. Without oneDNN's bf16 support (ONEDNN_MAX_CPU_ISA=AVX2)
    // the input is widened to f32 and pooled the same way.
    for (const int c : {32, 18}) {
        const int n = 2, h = 6, w = 4, oh = 3, ow = 2;
        Problem p = make_problem(maxpool(2, 2, 2, 2, 0, 0), {n, c, h, w}, Fill::distinct, 217);
        for (size_t i = 0; i < p.src.size(); i += 7) p.src[i] = -std::fabs(p.src[i]) - 2.0f;
        for (size_t i = 3; i < p.src.size(); i += 11) p.src[i] = 0.0f;
        p.src = bf16_exact(p.src);
        for (const int layout : {0, 1, 2})
        for (const bool relu : {false, true})
        for (const bool hint : {false, true}) {
            CAPTURE(c);
            CAPTURE(layout);
            CAPTURE(relu);
            CAPTURE(hint);
            LayerOptions o = training(layout == 1);
            o.nhwc_input = layout == 2;
            o.bf16_input = true;
            o.fuse_relu = relu;
            o.blocked_diff_src_hint = hint;
            const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
            // Where oneDNN has no bf16 pooling (no AVX-512), the input is
            // widened to f32 first: the same values either way.
            if (dann_precision_supported(DANN_PRECISION_BF16)) CHECK(run.dst_bf16);
            CHECK(run.fused_relu == relu);
            std::vector<float> want_dst(size_t(n * c * oh * ow)), want_diff(p.src.size(), 0.0f);
            for (int i = 0; i < n * c; ++i)
                for (int y = 0; y < oh; ++y)
                    for (int x = 0; x < ow; ++x) {
                        int best = -1;
                        for (int dy = 0; dy < 2; ++dy)
                            for (int dx = 0; dx < 2; ++dx) {
                                const int at = (i * h + 2 * y + dy) * w + 2 * x + dx;
                                if (best < 0 || p.src[size_t(at)] > p.src[size_t(best)]) best = at;
                            }
                        const size_t o_at = size_t((i * oh + y) * ow + x);
                        const float m = p.src[size_t(best)];
                        want_dst[o_at] = relu ? std::max(m, 0.0f) : m;
                        want_diff[size_t(best)] = !relu || m > 0.0f ? p.diff_dst[o_at] : 0.0f;
                    }
            CHECK(run.dst == want_dst);
            CHECK(run.diff_src == want_diff);
        }
    }
}

TEST_CASE("A bf16 convolution offered a bf16 output writes its f32 result rounded to bf16") {
    // PlanCtx::bf16_dst: the forward output is the f32 result rounded to
    // nearest bf16 (relative error at most 2^-8, beside 1e-5 for a kernel
    // that sums in another order); the gradients are those of the
    // f32-output layer.
    if (!dann_precision_supported(DANN_PRECISION_BF16)) {
        MESSAGE("bf16 is not supported on this CPU: skipped");
        return;
    }
    for (const std::vector<int> &dims : {std::vector<int>{2, 3, 10, 10}, std::vector<int>{2, 32, 9, 9}}) {
        CAPTURE(dims[1]);
        Problem p = make_problem(conv(24, 5, 5, 1, 1, 0, 0), dims, Fill::uniform, 136);
        p.src = bf16_exact(p.src);
        for (auto &t : p.params) t = bf16_exact(t);
        p.diff_dst = bf16_exact(p.diff_dst);
        LayerOptions o = training();
        o.bf16 = true;
        const LayerRun f32_out = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
        o.bf16_dst = true;
        const LayerRun bf16_out = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
        CHECK_FALSE(f32_out.dst_bf16);
        CHECK(bf16_out.dst_bf16);
        REQUIRE(bf16_out.dst.size() == f32_out.dst.size());
        int far = 0, rounded = 0;
        for (size_t i = 0; i < f32_out.dst.size(); ++i) {
            const float want = f32_out.dst[i], got = bf16_out.dst[i];
            // Rounding, plus what a different order of the f32 sums may change.
            far += std::fabs(got - want) > std::ldexp(std::fabs(want), -8) + 1e-5f;
            rounded += bf16_exact({got})[0] == got;
        }
        CHECK(far == 0);
        CHECK(rounded == int(f32_out.dst.size()));
        CHECK(bf16_out.diff_src == f32_out.diff_src);
        CHECK(bf16_out.diff_params == f32_out.diff_params);
    }
}

TEST_CASE("Max pooling in inference mode matches the scalar reference") {
    const Problem p = make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 3, 7, 7}, Fill::distinct, 209);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("maxpool inference", blocked), p, inference(blocked), kExact, kExact);
}

TEST_CASE("Max pooling with non-overlapping windows in inference mode matches the scalar reference") {
    // The f32 inference pass of kernel == stride windows is dann's own loop,
    // in every layout it walks: plain, nChw16c, and NHWC with 16, 8 or 1
    // lanes per block (32, 24 and 6 channels), and with the last row and
    // column outside every window (odd extent). Ties are included: the
    // output is the maximum, whichever element holds it.
    struct Shape {
        std::vector<int> dims;
        int kernel;
    };
    for (const Shape &s : {Shape{{2, 32, 8, 8}, 2}, Shape{{3, 24, 7, 9}, 2}, Shape{{2, 6, 9, 9}, 3},
                           Shape{{1, 18, 6, 6}, 2}}) {
        Problem p = make_problem(maxpool(s.kernel, s.kernel, s.kernel, s.kernel, 0, 0), s.dims,
                                 Fill::distinct, 216);
        for (size_t i = 0; i < p.src.size(); i += 5) p.src[i] = p.src[i / 2];
        for (const int layout : {0, 1, 2}) {
            CAPTURE(s.dims[1]);
            CAPTURE(layout);
            LayerOptions o = inference(layout == 1);
            o.nhwc_input = layout == 2;
            check_against_reference("maxpool k=s inference", p, o, kExact, kExact);
        }
    }
}

TEST_CASE("Max pooling gradients agree with finite differences of the library's forward pass") {
    SUBCASE("kernel 3, stride 2, padding 1") {
        check_library_gradients("maxpool k3 s2 p1", make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 2, 7, 7}, Fill::distinct, 210),
                                training());
    }
    SUBCASE("kernel 2, stride 2, blocked input") {
        check_library_gradients("maxpool k2 s2 blocked",
                                make_problem(maxpool(2, 2, 2, 2, 0, 0), {2, 3, 6, 6}, Fill::distinct, 211),
                                training(true));
    }
}

TEST_CASE("The max-pooling reference's gradients agree with its own finite differences") {
    check_reference_gradients("maxpool k3 s2 p1", make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 2, 7, 7}, Fill::distinct, 212));
}

// ---------------------------------------------------------------------------
// Dense
// ---------------------------------------------------------------------------

TEST_CASE("Dense matches the scalar reference on a flat input") {
    const Problem p = make_problem(dense(4), {3, 7}, Fill::uniform, 301);
    check_against_reference("dense flat", p, training(), kLinearTol, kLinearTol);
}

TEST_CASE("Dense on an image input flattens it in CHW order") {
    const Problem p = make_problem(dense(6), {2, 3, 4, 5}, Fill::uniform, 302);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("dense 4-D", blocked), p, training(blocked), kLinearTol, kLinearTol);
}

TEST_CASE("Dense on an image input with more than 16 channels flattens it in CHW order") {
    const Problem p = make_problem(dense(5), {2, 17, 2, 3}, Fill::uniform, 308);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("dense 4-D 17 channels", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Dense in inference mode matches the scalar reference") {
    SUBCASE("flat input") {
        check_against_reference("dense flat inference", make_problem(dense(4), {3, 7}, Fill::uniform, 303), inference(),
                                kLinearTol, kLinearTol);
    }
    SUBCASE("blocked image input") {
        check_against_reference("dense 4-D inference blocked", make_problem(dense(3), {2, 5, 3, 3}, Fill::uniform, 304),
                                inference(true), kLinearTol, kLinearTol);
    }
}

TEST_CASE("Dense gradients agree with finite differences of the library's forward pass") {
    SUBCASE("flat input") {
        check_library_gradients("dense flat", make_problem(dense(4), {3, 7}, Fill::uniform, 305), training());
    }
    SUBCASE("blocked image input") {
        check_library_gradients("dense 4-D blocked", make_problem(dense(3), {2, 3, 3, 4}, Fill::uniform, 306),
                                training(true));
    }
}

TEST_CASE("The dense reference's gradients agree with its own finite differences") {
    check_reference_gradients("dense 4-D", make_problem(dense(3), {2, 2, 3, 4}, Fill::uniform, 307));
}

// ---------------------------------------------------------------------------
// ReLU and sigmoid (ReLU inputs kept away from the kink at 0)
// ---------------------------------------------------------------------------

TEST_CASE("ReLU matches the scalar reference exactly") {
    SUBCASE("image input, plain") {
        check_against_reference("relu 4-D", make_problem(layer_of(DANN_LAYER_RELU), {2, 3, 5, 5}, Fill::away_from_zero, 401),
                                training(), kExact, kExact);
    }
    SUBCASE("image input, blocked") {
        check_against_reference("relu 4-D blocked",
                                make_problem(layer_of(DANN_LAYER_RELU), {2, 3, 5, 5}, Fill::away_from_zero, 402),
                                training(true), kExact, kExact);
    }
    SUBCASE("flat input") {
        check_against_reference("relu 2-D", make_problem(layer_of(DANN_LAYER_RELU), {3, 6}, Fill::away_from_zero, 403),
                                training(), kExact, kExact);
    }
    SUBCASE("inference") {
        check_against_reference("relu inference",
                                make_problem(layer_of(DANN_LAYER_RELU), {2, 3, 5, 5}, Fill::away_from_zero, 404),
                                inference(true), kExact, kExact);
    }
}

TEST_CASE("ReLU gradients agree with finite differences of the library's forward pass") {
    check_library_gradients("relu", make_problem(layer_of(DANN_LAYER_RELU), {2, 3, 5, 5}, Fill::away_from_zero, 405),
                            training());
}

TEST_CASE("The ReLU reference's gradients agree with its own finite differences") {
    check_reference_gradients("relu", make_problem(layer_of(DANN_LAYER_RELU), {2, 3, 5, 5}, Fill::away_from_zero, 406));
}

TEST_CASE("Sigmoid matches the scalar reference") {
    SUBCASE("image input, plain") {
        check_against_reference("sigmoid 4-D", make_problem(layer_of(DANN_LAYER_SIGMOID), {2, 3, 5, 5}, Fill::uniform, 411),
                                training(), kElementwiseTol, kElementwiseTol);
    }
    SUBCASE("image input, blocked") {
        check_against_reference("sigmoid 4-D blocked",
                                make_problem(layer_of(DANN_LAYER_SIGMOID), {2, 3, 5, 5}, Fill::uniform, 412),
                                training(true), kElementwiseTol, kElementwiseTol);
    }
    SUBCASE("flat input") {
        check_against_reference("sigmoid 2-D", make_problem(layer_of(DANN_LAYER_SIGMOID), {3, 6}, Fill::uniform, 413),
                                training(), kElementwiseTol, kElementwiseTol);
    }
    SUBCASE("inference") {
        check_against_reference("sigmoid inference",
                                make_problem(layer_of(DANN_LAYER_SIGMOID), {3, 6}, Fill::uniform, 414), inference(),
                                kElementwiseTol, kElementwiseTol);
    }
}

TEST_CASE("Sigmoid saturates to 0 and 1 without overflow at large inputs") {
    Problem p = make_problem(layer_of(DANN_LAYER_SIGMOID), {2, 4}, Fill::uniform, 415);
    p.src = {80.0f, -80.0f, 200.0f, -200.0f, 30.0f, -30.0f, 0.0f, 1e-3f};
    check_against_reference("sigmoid large inputs", p, training(), kElementwiseTol, kElementwiseTol);
}

TEST_CASE("Sigmoid gradients agree with finite differences of the library's forward pass") {
    check_library_gradients("sigmoid", make_problem(layer_of(DANN_LAYER_SIGMOID), {2, 3, 4, 4}, Fill::uniform, 416),
                            training(true));
}

TEST_CASE("The sigmoid reference's gradients agree with its own finite differences") {
    check_reference_gradients("sigmoid", make_problem(layer_of(DANN_LAYER_SIGMOID), {2, 3, 4, 4}, Fill::uniform, 417));
}

// ---------------------------------------------------------------------------
// Flatten
// ---------------------------------------------------------------------------

TEST_CASE("Flatten passes values and gradients through unchanged in CHW order") {
    const Problem p = make_problem(layer_of(DANN_LAYER_FLATTEN), {2, 3, 4, 5}, Fill::uniform, 501);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("flatten", blocked), p, training(blocked), kExact, kExact);
}

TEST_CASE("Flatten in inference mode passes values through unchanged") {
    const Problem p = make_problem(layer_of(DANN_LAYER_FLATTEN), {2, 5, 3, 3}, Fill::uniform, 502);
    check_against_reference("flatten inference blocked", p, inference(true), kExact, kExact);
}

TEST_CASE("Flatten gradients agree with finite differences of the library's forward pass") {
    check_library_gradients("flatten", make_problem(layer_of(DANN_LAYER_FLATTEN), {2, 3, 3, 3}, Fill::uniform, 503),
                            training(true));
}

TEST_CASE("The flatten reference's gradients agree with its own finite differences") {
    check_reference_gradients("flatten", make_problem(layer_of(DANN_LAYER_FLATTEN), {2, 3, 3, 3}, Fill::uniform, 504));
}

// ---------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------

namespace {

// Every mask entry is 0 or 1 / (1 - rate); returns the share of zeros.
double check_mask_values(const std::vector<float> &mask, float rate) {
    const double keep_scale = 1.0 / (1.0 - static_cast<double>(rate));
    std::size_t zeros = 0, bad = 0;
    for (float m : mask) {
        if (m == 0.0f)
            ++zeros;
        else if (std::fabs(static_cast<double>(m) - keep_scale) > 1e-6 * keep_scale)
            ++bad;
    }
    CHECK_MESSAGE(bad == 0, bad << " mask entries are neither 0 nor " << keep_scale);
    return mask.empty() ? 0.0 : static_cast<double>(zeros) / static_cast<double>(mask.size());
}

} // namespace

TEST_CASE("Dropout multiplies values and gradients by a mask of 0 and 1/(1-p)") {
    const Problem p = make_problem(dropout(0.3f), {2, 3, 6, 6}, Fill::uniform, 601);
    FOR_BOTH_LAYOUTS(blocked);
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, training(blocked));
    REQUIRE(run.dropout_mask.size() == p.src.size());
    check_mask_values(run.dropout_mask, 0.3f);
    // The product of two floats is exact in double; the library's float
    // product is within half an ulp of it.
    check_against_reference(layout_label("dropout p0.3", blocked), p, training(blocked), kElementwiseTol,
                            kElementwiseTol);
}

TEST_CASE("Dropout drops a share of units close to the rate on a large tensor") {
    for (float rate : {0.25f, 0.5f}) {
        CAPTURE(rate);
        const Problem p = make_problem(dropout(rate), {2, 8, 16, 16}, Fill::uniform, 602);
        const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, training());
        REQUIRE(run.dropout_mask.size() == p.src.size());
        // 4096 Bernoulli draws: standard deviation of the share <= 0.008; 0.04 is 5 sigma.
        const double share = check_mask_values(run.dropout_mask, rate);
        CHECK(std::fabs(share - static_cast<double>(rate)) < 0.04);
    }
}

TEST_CASE("Dropout draws the same mask from the same seed and another from a different seed") {
    const Problem p = make_problem(dropout(0.5f), {2, 4, 8, 8}, Fill::uniform, 603);
    LayerOptions o = training();
    o.seed = 7;
    const LayerRun first = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
    const LayerRun again = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
    o.seed = 8;
    const LayerRun other = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, o);
    REQUIRE(first.dropout_mask.size() == p.src.size());
    CHECK(first.dropout_mask == again.dropout_mask);
    CHECK(first.dst == again.dst);
    CHECK(first.dropout_mask != other.dropout_mask);
}

TEST_CASE("Dropout with rate 0 keeps every unit") {
    const Problem p = make_problem(dropout(0.0f), {2, 3, 4, 4}, Fill::uniform, 604);
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, training());
    CHECK(run.dropout_mask == std::vector<float>(p.src.size(), 1.0f));
    CHECK(run.dst == p.src);
    CHECK(run.diff_src == p.diff_dst);
}

TEST_CASE("Dropout in inference mode is the identity") {
    const Problem p = make_problem(dropout(0.5f), {2, 3, 5, 5}, Fill::uniform, 605);
    FOR_BOTH_LAYOUTS(blocked);
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, inference(blocked));
    CHECK(run.dst == p.src);
}

TEST_CASE("Dropout gradients agree with finite differences of the library's forward pass with the same seed") {
    check_library_gradients("dropout", make_problem(dropout(0.4f), {2, 3, 4, 4}, Fill::uniform, 606), training());
}

TEST_CASE("The dropout reference's gradients agree with its own finite differences") {
    const Problem p = make_problem(dropout(0.4f), {2, 3, 4, 4}, Fill::uniform, 607);
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, training());
    ref::LayerMode mode;
    mode.dropout_mask = to_double(run.dropout_mask);
    REQUIRE(mode.dropout_mask.size() == p.src.size());
    check_reference_gradients("dropout", p, mode);
}

// ---------------------------------------------------------------------------
// Batch normalisation
// ---------------------------------------------------------------------------

namespace {

LayerOptions split_training(int split, bool blocked = false) {
    LayerOptions o = training(blocked);
    o.domain_split = split;
    return o;
}

// Running statistics after one update from mean 0 / variance 1, per part.
void check_running_statistics(const std::string &label, const Problem &p, int split) {
    const LayerRun run = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, split_training(split));
    const ref::BatchNormShape s = ref::batchnorm_shape(p.src_dims);
    const std::vector<ref::BatchNormPart> parts = ref::batchnorm_statistics(s, to_double(p.src), split);
    const double momentum = ref::resolved_momentum(p.layer);
    std::vector<double> mean, var;
    ref::batchnorm_running_update(s, parts[0], momentum, mean, var);
    check_close(label + " running_mean", run.running_mean, mean, kElementwiseTol.atol, kElementwiseTol.rtol);
    check_close(label + " running_var", run.running_var, var, kElementwiseTol.atol, kElementwiseTol.rtol);
    if (split > 0) {
        ref::batchnorm_running_update(s, parts[1], momentum, mean, var);
        check_close(label + " running_mean_target", run.running_mean_target, mean, kElementwiseTol.atol,
                    kElementwiseTol.rtol);
        check_close(label + " running_var_target", run.running_var_target, var, kElementwiseTol.atol,
                    kElementwiseTol.rtol);
    }
}

} // namespace

// Backward: sums of N*H*W products followed by a subtraction of means that
// cancels most of them; 1e-5 absolute on gradients of order 1 is still
// ~100 float ulps of the partial sums.
constexpr Tolerance kBatchNormBackwardTol{2e-5, 1e-4};

TEST_CASE("Batch normalisation in training matches the scalar reference on an image input") {
    const Problem p = make_problem(batchnorm(), {3, 4, 5, 5}, Fill::uniform, 701);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("batchnorm 4-D", blocked), p, training(blocked), kElementwiseTol,
                            kBatchNormBackwardTol);
}

TEST_CASE("Batch normalisation in training matches the scalar reference on a flat input") {
    const Problem p = make_problem(batchnorm(), {6, 5}, Fill::uniform, 702);
    check_against_reference("batchnorm 2-D", p, training(), kElementwiseTol, kBatchNormBackwardTol);
}

TEST_CASE("Batch normalisation uses the description's eps") {
    const Problem p = make_problem(batchnorm(0.5f), {4, 3, 3, 3}, Fill::uniform, 703);
    check_against_reference("batchnorm eps 0.5", p, training(), kElementwiseTol, kBatchNormBackwardTol);
}

TEST_CASE("Batch normalisation matches the scalar reference when channels span more than one 16-channel block") {
    const Problem p = make_problem(batchnorm(), {4, 17, 3, 3}, Fill::uniform, 704);
    SUBCASE("whole batch") {
        FOR_BOTH_LAYOUTS(blocked);
        check_against_reference(layout_label("batchnorm 17 channels", blocked), p, training(blocked), kElementwiseTol,
                                kBatchNormBackwardTol);
    }
    SUBCASE("domain split") {
        FOR_BOTH_LAYOUTS(blocked);
        check_against_reference(layout_label("batchnorm 17 channels split", blocked), p, split_training(2, blocked),
                                kElementwiseTol, kBatchNormBackwardTol);
    }
}

TEST_CASE("Batch normalisation updates running statistics in PyTorch's form") {
    SUBCASE("default momentum 0.1, unbiased variance, image input") {
        check_running_statistics("batchnorm 4-D", make_problem(batchnorm(), {3, 4, 5, 5}, Fill::uniform, 711), 0);
    }
    SUBCASE("default momentum 0.1, unbiased variance, flat input") {
        check_running_statistics("batchnorm 2-D", make_problem(batchnorm(), {6, 5}, Fill::uniform, 712), 0);
    }
    SUBCASE("momentum 0.3 from the description") {
        check_running_statistics("batchnorm momentum 0.3", make_problem(batchnorm(0.0f, 0.3f), {5, 3}, Fill::uniform, 713),
                                 0);
    }
}

TEST_CASE("Batch normalisation in inference mode uses the given running statistics") {
    Rng rng(721);
    auto with_statistics = [&](int channels) {
        LayerOptions o = inference();
        o.running_mean = uniform_floats(static_cast<std::size_t>(channels), rng, -0.5f, 0.5f);
        o.running_var = uniform_floats(static_cast<std::size_t>(channels), rng, 0.5f, 2.0f);
        return o;
    };
    SUBCASE("image input, plain") {
        check_against_reference("batchnorm inference 4-D", make_problem(batchnorm(), {2, 4, 5, 5}, Fill::uniform, 722),
                                with_statistics(4), kElementwiseTol, kElementwiseTol);
    }
    SUBCASE("image input, blocked") {
        LayerOptions o = with_statistics(3);
        o.blocked_input = true;
        check_against_reference("batchnorm inference 4-D blocked",
                                make_problem(batchnorm(), {2, 3, 4, 4}, Fill::uniform, 723), o, kElementwiseTol,
                                kElementwiseTol);
    }
    SUBCASE("flat input") {
        check_against_reference("batchnorm inference 2-D", make_problem(batchnorm(), {3, 6}, Fill::uniform, 724),
                                with_statistics(6), kElementwiseTol, kElementwiseTol);
    }
    SUBCASE("no statistics given means mean 0 and variance 1") {
        check_against_reference("batchnorm inference default statistics",
                                make_problem(batchnorm(), {3, 6}, Fill::uniform, 725), inference(), kElementwiseTol,
                                kElementwiseTol);
    }
}

TEST_CASE("Batch normalisation with a domain split normalises each part with its own statistics") {
    SUBCASE("image input, equal parts") {
        const Problem p = make_problem(batchnorm(), {4, 3, 4, 4}, Fill::uniform, 731);
        FOR_BOTH_LAYOUTS(blocked);
        check_against_reference(layout_label("batchnorm split 4-D", blocked), p, split_training(2, blocked),
                                kElementwiseTol, kBatchNormBackwardTol);
    }
    SUBCASE("flat input, unequal parts") {
        const Problem p = make_problem(batchnorm(), {7, 4}, Fill::uniform, 732);
        check_against_reference("batchnorm split 2-D", p, split_training(3), kElementwiseTol, kBatchNormBackwardTol);
    }
}

TEST_CASE("Batch normalisation with a domain split equals each part run on its own") {
    // Independent of the reference: the split layer on [source; target] must
    // give each half what the unsplit layer gives it alone, and the sum of the
    // halves' parameter gradients.
    const Problem p = make_problem(batchnorm(), {4, 3, 3, 3}, Fill::uniform, 741);
    const std::size_t half = p.src.size() / 2;
    const LayerRun both = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, split_training(2));
    std::vector<float> dst, diff_src;
    std::vector<double> diff_gamma(3, 0.0), diff_beta(3, 0.0);
    for (int part = 0; part < 2; ++part) {
        const auto begin = static_cast<std::ptrdiff_t>(half) * part;
        const auto end = begin + static_cast<std::ptrdiff_t>(half);
        const std::vector<float> src(p.src.begin() + begin, p.src.begin() + end);
        const std::vector<float> dd(p.diff_dst.begin() + begin, p.diff_dst.begin() + end);
        const LayerRun alone = run_layer(p.layer, {2, 3, 3, 3}, src, p.params, dd, training());
        dst.insert(dst.end(), alone.dst.begin(), alone.dst.end());
        diff_src.insert(diff_src.end(), alone.diff_src.begin(), alone.diff_src.end());
        REQUIRE(alone.diff_params.size() == 2);
        for (std::size_t c = 0; c < 3; ++c) {
            diff_gamma[c] += static_cast<double>(alone.diff_params[0][c]);
            diff_beta[c] += static_cast<double>(alone.diff_params[1][c]);
        }
    }
    check_close("batchnorm split vs parts forward", both.dst, to_double(dst), kElementwiseTol.atol,
                kElementwiseTol.rtol);
    check_close("batchnorm split vs parts diff_src", both.diff_src, to_double(diff_src), kBatchNormBackwardTol.atol,
                kBatchNormBackwardTol.rtol);
    REQUIRE(both.diff_params.size() == 2);
    check_close("batchnorm split vs parts diff_gamma", both.diff_params[0], diff_gamma, kBatchNormBackwardTol.atol,
                kBatchNormBackwardTol.rtol);
    check_close("batchnorm split vs parts diff_beta", both.diff_params[1], diff_beta, kBatchNormBackwardTol.atol,
                kBatchNormBackwardTol.rtol);
}

TEST_CASE("Batch normalisation with a domain split keeps running statistics per domain") {
    SUBCASE("image input") {
        check_running_statistics("batchnorm split 4-D", make_problem(batchnorm(), {4, 3, 4, 4}, Fill::uniform, 751), 2);
    }
    SUBCASE("flat input, unequal parts") {
        check_running_statistics("batchnorm split 2-D", make_problem(batchnorm(), {7, 4}, Fill::uniform, 752), 3);
    }
}

TEST_CASE("Batch normalisation gradients agree with finite differences of the library's forward pass") {
    SUBCASE("image input, blocked") {
        check_library_gradients("batchnorm 4-D blocked", make_problem(batchnorm(), {2, 3, 3, 3}, Fill::uniform, 761),
                                training(true));
    }
    SUBCASE("flat input") {
        check_library_gradients("batchnorm 2-D", make_problem(batchnorm(), {6, 4}, Fill::uniform, 762), training());
    }
    SUBCASE("domain split") {
        check_library_gradients("batchnorm split", make_problem(batchnorm(), {4, 2, 3, 3}, Fill::uniform, 763),
                                split_training(2));
    }
}

TEST_CASE("The batch-normalisation reference's gradients agree with its own finite differences") {
    SUBCASE("image input") {
        check_reference_gradients("batchnorm 4-D", make_problem(batchnorm(), {2, 3, 3, 3}, Fill::uniform, 771));
    }
    SUBCASE("domain split, flat input") {
        ref::LayerMode mode;
        mode.domain_split = 3;
        check_reference_gradients("batchnorm split 2-D", make_problem(batchnorm(), {7, 3}, Fill::uniform, 772), mode);
    }
}

// ---------------------------------------------------------------------------
// Gradient reversal layer
// ---------------------------------------------------------------------------

TEST_CASE("The gradient reversal layer's forward pass is the identity") {
    Rng rng(801);
    const std::vector<int> dims{3, 5};
    const std::vector<float> src = uniform_floats(15, rng), diff_dst = uniform_floats(15, rng);
    CHECK(dann::testing::run_grl(dims, src, diff_dst, 0.7f).dst == src);
    const std::vector<int> image_dims{2, 3, 2, 2};
    const std::vector<float> image = uniform_floats(24, rng), image_diff = uniform_floats(24, rng);
    CHECK(dann::testing::run_grl(image_dims, image, image_diff, 1.0f).dst == image);
}

TEST_CASE("The gradient reversal layer multiplies the gradient by exactly -lambda") {
    Rng rng(802);
    const std::vector<int> dims{4, 6};
    const std::vector<float> src = uniform_floats(24, rng), diff_dst = uniform_floats(24, rng, -3.0f, 3.0f);
    SUBCASE("lambda a power of two: exact") {
        for (float lambda : {0.5f, 1.0f, 2.0f}) {
            CAPTURE(lambda);
            std::vector<float> want(diff_dst.size());
            for (std::size_t i = 0; i < want.size(); ++i) want[i] = -lambda * diff_dst[i];
            CHECK(dann::testing::run_grl(dims, src, diff_dst, lambda).diff_src == want);
        }
    }
    SUBCASE("other lambda: within float rounding") {
        for (float lambda : {0.3f, 1.7f, 6.0f}) {
            CAPTURE(lambda);
            check_close("grl diff_src", dann::testing::run_grl(dims, src, diff_dst, lambda).diff_src,
                        ref::grl_backward(to_double(diff_dst), static_cast<double>(lambda)), 0.0, 1e-6);
        }
    }
}

TEST_CASE("The gradient reversal layer with lambda 0 passes no gradient") {
    Rng rng(803);
    const std::vector<float> src = uniform_floats(12, rng), diff_dst = uniform_floats(12, rng);
    const dann::testing::GrlRun run = dann::testing::run_grl({3, 4}, src, diff_dst, 0.0f);
    CHECK(run.diff_src == std::vector<float>(12, 0.0f));
    CHECK(run.dst == src);
}

// ---------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------

namespace {

// Loss values ~1 in float: rounding ~1e-7, so 1e-5 absolute / relative.
constexpr Tolerance kLossTol{1e-5, 1e-5};

// The loss and its gradient from the library, against the reference and
// against central differences of the library's own loss value.
void check_softmax_cross_entropy(const std::string &label, const std::vector<float> &logits, int n, int k,
                                 const std::vector<int32_t> &labels, bool finite_differences) {
    const dann::testing::LossRun run = dann::testing::run_softmax_cross_entropy(logits, n, k, labels);
    const ref::LossResult want = ref::softmax_cross_entropy(to_double(logits), n, k, labels);
    check_close(label + " loss", std::vector<float>{run.loss}, std::vector<double>{want.loss}, kLossTol.atol,
                kLossTol.rtol);
    check_close(label + " grad", run.grad, want.grad, kLossTol.atol, kLossTol.rtol);
    if (!finite_differences) return;
    std::vector<float> x = logits;
    std::vector<double> numeric(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
        numeric[i] = central_difference_float(x, i, kLibraryFdStep, [&] {
            return static_cast<double>(dann::testing::run_softmax_cross_entropy(x, n, k, labels).loss);
        });
    check_close(label + " grad vs FD", run.grad, numeric, 1e-3, 1e-2);
}

void check_logistic(const std::string &label, const std::vector<float> &logits, const std::vector<float> &targets,
                    bool finite_differences) {
    const dann::testing::LossRun run = dann::testing::run_logistic_loss(logits, targets);
    const ref::LossResult want = ref::logistic_loss(to_double(logits), to_double(targets));
    check_close(label + " loss", std::vector<float>{run.loss}, std::vector<double>{want.loss}, kLossTol.atol,
                kLossTol.rtol);
    check_close(label + " grad", run.grad, want.grad, kLossTol.atol, kLossTol.rtol);
    if (!finite_differences) return;
    std::vector<float> x = logits;
    std::vector<double> numeric(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
        numeric[i] = central_difference_float(x, i, kLibraryFdStep, [&] {
            return static_cast<double>(dann::testing::run_logistic_loss(x, targets).loss);
        });
    check_close(label + " grad vs FD", run.grad, numeric, 1e-3, 1e-2);
}

} // namespace

TEST_CASE("Softmax cross-entropy matches the reference mean loss and (softmax - onehot) / N gradient") {
    Rng rng(901);
    const std::vector<float> logits = uniform_floats(4 * 5, rng, -3.0f, 3.0f);
    check_softmax_cross_entropy("softmax ce", logits, 4, 5, {0, 3, 4, 1}, true);
}

TEST_CASE("Softmax cross-entropy with two classes and one sample matches the reference") {
    check_softmax_cross_entropy("softmax ce k2 n1", {0.25f, -1.5f}, 1, 2, {1}, true);
}

TEST_CASE("Softmax cross-entropy stays finite and exact at logits of +-80 and +-1000") {
    for (float big : {80.0f, 1000.0f}) {
        CAPTURE(big);
        // Confidently right, confidently wrong, and a near tie at the top.
        const std::vector<float> logits{big,  -big, -big, -big, //
                                        big,  -big, big,  big,  //
                                        big,  0.0f, -big, big - 1.0f};
        check_softmax_cross_entropy("softmax ce large logits", logits, 3, 4, {0, 1, 3}, false);
    }
}

TEST_CASE("The softmax cross-entropy reference's gradient agrees with its own finite differences") {
    Rng rng(902);
    std::vector<double> x = to_double(uniform_floats(3 * 4, rng, -3.0f, 3.0f));
    const std::vector<int32_t> labels{2, 0, 3};
    const ref::LossResult analytic = ref::softmax_cross_entropy(x, 3, 4, labels);
    std::vector<double> numeric(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
        numeric[i] = central_difference_double(x, i, kReferenceFdStep,
                                               [&] { return ref::softmax_cross_entropy(x, 3, 4, labels).loss; });
    check_close("softmax ce reference grad vs FD", analytic.grad, numeric, kReferenceFdTol.atol, kReferenceFdTol.rtol);
}

TEST_CASE("Logistic loss matches the reference mean BCE-with-logits and (sigmoid - t) / N gradient") {
    Rng rng(903);
    const std::vector<float> logits = uniform_floats(8, rng, -4.0f, 4.0f);
    check_logistic("logistic", logits, {0, 0, 0, 0, 1, 1, 1, 1}, true);
}

TEST_CASE("Logistic loss stays finite and exact at logits of +-80 and +-1000") {
    for (float big : {80.0f, 1000.0f}) {
        CAPTURE(big);
        // Right and wrong with full confidence, for either target.
        check_logistic("logistic large logits", {big, -big, big, -big, 0.0f}, {1, 0, 0, 1, 1}, false);
    }
}

TEST_CASE("The logistic loss reference's gradient agrees with its own finite differences") {
    Rng rng(904);
    std::vector<double> x = to_double(uniform_floats(6, rng, -4.0f, 4.0f));
    const std::vector<double> t{1, 0, 1, 0, 0, 1};
    const ref::LossResult analytic = ref::logistic_loss(x, t);
    std::vector<double> numeric(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
        numeric[i] = central_difference_double(x, i, kReferenceFdStep, [&] { return ref::logistic_loss(x, t).loss; });
    check_close("logistic reference grad vs FD", analytic.grad, numeric, kReferenceFdTol.atol, kReferenceFdTol.rtol);
}

// ---------------------------------------------------------------------------
// The paper networks' layer shapes (slow under emulation)
// ---------------------------------------------------------------------------

TEST_SUITE("heavy") {

TEST_CASE("Convolution matches the scalar reference at the MNIST network's first-layer shape") {
    const Problem p = make_problem(conv(32, 5, 5, 1, 1, 0, 0), {2, 3, 28, 28}, Fill::uniform, 1001);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("heavy conv 3->32 k5 28x28", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Convolution matches the scalar reference at the SVHN network's second-layer shape") {
    // 64 * 25 = 1600 products per output: the float error grows to ~1e-5.
    const Problem p = make_problem(conv(64, 5, 5, 1, 1, 2, 2), {2, 64, 8, 8}, Fill::uniform, 1002);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("heavy conv 64->64 k5 p2 8x8", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Max pooling matches the scalar reference at the SVHN network's pooling shape") {
    const Problem p = make_problem(maxpool(3, 3, 2, 2, 1, 1), {2, 64, 16, 16}, Fill::distinct, 1003);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("heavy maxpool k3 s2 p1 64x16x16", blocked), p, training(blocked), kExact,
                            kElementwiseTol);
}

TEST_CASE("Dense matches the scalar reference on the MNIST network's feature shape") {
    const Problem p = make_problem(dense(100), {4, 48, 4, 4}, Fill::uniform, 1004);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("heavy dense 768->100", blocked), p, training(blocked), kLinearTol,
                            kLinearTol);
}

TEST_CASE("Batch normalisation with a domain split matches the scalar reference on 32 channels") {
    const Problem p = make_problem(batchnorm(), {8, 32, 6, 6}, Fill::uniform, 1005);
    FOR_BOTH_LAYOUTS(blocked);
    check_against_reference(layout_label("heavy batchnorm split 32 channels", blocked), p, split_training(4, blocked),
                            kElementwiseTol, kBatchNormBackwardTol);
}

TEST_CASE("Convolution gradients on 16 and more channels agree with finite differences of the library") {
    check_library_gradients("heavy conv 16->20 k3 p1 blocked",
                            make_problem(conv(20, 3, 3, 1, 1, 1, 1), {2, 16, 6, 6}, Fill::uniform, 1006),
                            training(true));
}

} // TEST_SUITE("heavy")
