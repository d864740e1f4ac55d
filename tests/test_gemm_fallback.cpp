// The BLAS path of the convolution and fully connected layers (core/gemm.hpp,
// layers/gemm_affine.hpp), which runs where oneDNN has only reference kernels,
// forced on here (gemm::set_override) so that every machine tests it:
// - forward, diff_src, weight and bias gradients against the oneDNN path and
//   against the scalar references in tests/reference/, for strides, padding,
//   rectangular and 1x1 kernels, the paper MNIST network's 5x5 convolutions,
//   plain and blocked (nChw16c) inputs;
// - several threads sharing the samples of a batch give the same gradients;
// - whole-network DANN training steps and predictions agree between the paths;
// - DANN_GEMM is read when a plan is built, and a bad value is a clear status.
// In a build without a BLAS the forced mode falls back to oneDNN: the
// comparisons still hold, and the checks that the BLAS ran are skipped.
//
// Tolerances: both paths sum the same float products in different orders, so
// they differ by rounding only (a few 1e-6 here); 1e-4 + 1e-4 * |want|, as in
// test_layers.cpp, is far below the O(0.1) error of an indexing mistake.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/gemm.hpp"
#include "dann.h"
#include "layer_test_util.hpp"
#include "layers/harness.hpp"
#include "network/plan.hpp"
#include "reference/layer.hpp"

namespace {

using dann::gemm::Mode;
using dann::testing::LayerOptions;
using dann::testing::LayerRun;
using dann::testing::run_layer;
using namespace layer_test;

constexpr double kTol = 1e-4;

// Sets the process-wide mode for one scope.
class ForcedMode {
public:
    explicit ForcedMode(Mode m) { dann::gemm::set_override(m); }
    ~ForcedMode() { dann::gemm::clear_override(); }
    ForcedMode(const ForcedMode &) = delete;
    ForcedMode &operator=(const ForcedMode &) = delete;
};

dann_layer_desc conv(int units, int kh, int kw, int sh, int sw, int ph, int pw) {
    dann_layer_desc d{};
    d.kind = DANN_LAYER_CONV2D;
    d.units = units;
    d.kernel_h = kh;
    d.kernel_w = kw;
    d.stride_h = sh;
    d.stride_w = sw;
    d.pad_h = ph;
    d.pad_w = pw;
    return d;
}

dann_layer_desc dense(int units) {
    dann_layer_desc d{};
    d.kind = DANN_LAYER_DENSE;
    d.units = units;
    return d;
}

struct Problem {
    dann_layer_desc layer;
    std::vector<int> src_dims;
    std::vector<float> src, diff_dst;
    std::vector<std::vector<float>> params;
};

Problem make_problem(const dann_layer_desc &layer, const std::vector<int> &src_dims, uint64_t seed) {
    Rng rng(seed);
    Problem p{layer, src_dims, uniform_floats(count_of(src_dims), rng), {}, {}};
    for (std::size_t n : ref::layer_param_sizes(layer, src_dims)) p.params.push_back(uniform_floats(n, rng));
    p.diff_dst = uniform_floats(count_of(ref::layer_output_dims(layer, src_dims)), rng);
    return p;
}

// Runs the layer on one path; checks that the BLAS ran exactly when asked
// for (and the build has one).
LayerRun run_on(Mode m, const Problem &p, const LayerOptions &options) {
    ForcedMode forced(m);
    const uint64_t before = dann::gemm::calls();
    LayerRun r = run_layer(p.layer, p.src_dims, p.src, p.params, p.diff_dst, options);
    const bool ran_blas = dann::gemm::calls() != before;
    CHECK(ran_blas == (m == Mode::blas && dann::gemm::available()));
    return r;
}

void compare(const std::string &label, const std::vector<float> &got, const std::vector<float> &want) {
    check_close(label, got, to_double(want), kTol, kTol);
}

// The forced BLAS path against the oneDNN path and the scalar reference.
void check_paths(const std::string &label, const Problem &p, bool training, bool blocked = false) {
    LayerOptions options;
    options.training = training;
    options.blocked_input = blocked;
    const LayerRun blas = run_on(Mode::blas, p, options);
    const LayerRun onednn = run_on(Mode::onednn, p, options);
    const std::vector<double> src = to_double(p.src);
    const std::vector<std::vector<double>> params = to_double(p.params);
    const ref::LayerMode mode{};
    CHECK(blas.dst_dims == ref::layer_output_dims(p.layer, p.src_dims));
    compare(label + " forward blas vs oneDNN", blas.dst, onednn.dst);
    check_close(label + " forward blas vs reference", blas.dst,
                ref::layer_forward(p.layer, p.src_dims, src, params, mode), kTol, kTol);
    if (!training) return;
    const ref::LayerGrads want = ref::layer_backward(p.layer, p.src_dims, src, params, to_double(p.diff_dst), mode);
    compare(label + " diff_src blas vs oneDNN", blas.diff_src, onednn.diff_src);
    check_close(label + " diff_src blas vs reference", blas.diff_src, want.diff_src, kTol, kTol);
    REQUIRE(blas.diff_params.size() == 2);
    REQUIRE(onednn.diff_params.size() == 2);
    const char *names[] = {" diff_weights", " diff_bias"};
    for (std::size_t i = 0; i < 2; ++i) {
        compare(label + names[i] + " blas vs oneDNN", blas.diff_params[i], onednn.diff_params[i]);
        check_close(label + names[i] + " blas vs reference", blas.diff_params[i], want.diff_params[i], kTol, kTol);
    }
}

} // namespace

TEST_CASE("The BLAS path is chosen for reference implementations only, unless forced") {
    CHECK(dann::gemm::is_reference("gemm:ref"));
    CHECK(dann::gemm::is_reference("ref:any"));
    CHECK(dann::gemm::is_reference("ref_int8:any"));
    CHECK_FALSE(dann::gemm::is_reference("gemm:jit"));
    CHECK_FALSE(dann::gemm::is_reference("brgemm:avx512_core"));
    CHECK_FALSE(dann::gemm::is_reference("jit:sve_512"));
    CHECK_FALSE(dann::gemm::is_reference("acl:any"));
    {
        ForcedMode forced(Mode::onednn);
        CHECK(dann::gemm::mode() == Mode::onednn);
    }
    ForcedMode forced(Mode::blas);
    CHECK(dann::gemm::mode() == Mode::blas);
    if (dann::gemm::available()) CHECK(dann::gemm::blas_name() != "none");
}

TEST_CASE("Convolution on the BLAS path matches oneDNN and the reference for the MNIST network's 5x5 kernels") {
    SUBCASE("first layer, one input channel") {
        check_paths("conv 5x5 1->4", make_problem(conv(4, 5, 5, 1, 1, 0, 0), {2, 1, 12, 12}, 901), true);
    }
    SUBCASE("second layer, several input channels") {
        check_paths("conv 5x5 3->5", make_problem(conv(5, 5, 5, 1, 1, 0, 0), {2, 3, 8, 8}, 902), true);
    }
    SUBCASE("padding 2 keeps the extent") {
        check_paths("conv 5x5 pad 2", make_problem(conv(3, 5, 5, 1, 1, 2, 2), {2, 2, 6, 6}, 903), true);
    }
}

TEST_CASE("Convolution on the BLAS path matches oneDNN and the reference with stride and padding") {
    SUBCASE("kernel 3, stride 2, padding 1") {
        check_paths("conv 3x3 s2 p1", make_problem(conv(4, 3, 3, 2, 2, 1, 1), {2, 3, 7, 7}, 904), true);
    }
    SUBCASE("kernel 3, stride 2, no padding, even input") {
        check_paths("conv 3x3 s2 even", make_problem(conv(3, 3, 3, 2, 2, 0, 0), {1, 2, 8, 8}, 905), true);
    }
    SUBCASE("rectangular 2x3 kernel, stride 1x2, padding 0x1") {
        check_paths("conv 2x3 s1x2 p0x1", make_problem(conv(3, 2, 3, 1, 2, 0, 1), {2, 2, 5, 7}, 906), true);
    }
    SUBCASE("1x1 kernel, the source is its own column matrix") {
        check_paths("conv 1x1", make_problem(conv(3, 1, 1, 1, 1, 0, 0), {2, 4, 3, 5}, 907), true);
    }
    SUBCASE("1x1 kernel with stride 2") {
        check_paths("conv 1x1 s2", make_problem(conv(3, 1, 1, 2, 2, 0, 0), {2, 4, 5, 5}, 908), true);
    }
}

TEST_CASE("Convolution on the BLAS path reorders a blocked input and runs in inference mode") {
    const Problem p = make_problem(conv(4, 3, 3, 1, 1, 1, 1), {2, 17, 4, 4}, 909);
    SUBCASE("training, blocked nChw16c input") { check_paths("conv blocked", p, true, true); }
    SUBCASE("inference") { check_paths("conv inference", p, false); }
}

TEST_CASE("Dense on the BLAS path matches oneDNN and the reference") {
    SUBCASE("flat input") { check_paths("dense flat", make_problem(dense(4), {3, 7}, 911), true); }
    SUBCASE("image input flattened in CHW order") {
        check_paths("dense 4-D", make_problem(dense(6), {2, 3, 4, 5}, 912), true);
    }
    SUBCASE("blocked image input with more than 16 channels") {
        check_paths("dense 4-D blocked", make_problem(dense(5), {2, 17, 2, 3}, 913), true, true);
    }
    SUBCASE("inference") { check_paths("dense inference", make_problem(dense(3), {4, 9}, 914), false); }
}

TEST_CASE("The BLAS path gives the same gradients when several threads share the batch") {
    const Problem p = make_problem(conv(4, 3, 3, 1, 1, 1, 1), {5, 2, 6, 6}, 921);
    LayerOptions options;
    const LayerRun one = run_on(Mode::blas, p, options);
    LayerRun three;
    {
        dann::ThreadScope threads(3);
        three = run_on(Mode::blas, p, options);
    }
    compare("threads forward", three.dst, one.dst);
    compare("threads diff_src", three.diff_src, one.diff_src);
    compare("threads diff_weights", three.diff_params[0], one.diff_params[0]);
    compare("threads diff_bias", three.diff_params[1], one.diff_params[1]);
}

namespace {

// A small version of the paper's MNIST network: two 5x5 convolutions with
// ReLU and max pooling, dense heads.
constexpr int kC = 1, kH = 16, kW = 16, kNs = 3, kNt = 2, kClasses = 3;

struct Net {
    dann_model *model = nullptr;
    dann_trainer *trainer = nullptr;
    dann_context *ctx = nullptr;
    Net() {
        const dann_layer_desc features[] = {dann_layer_conv2d(4, 5, 1, 0), dann_layer_relu(),
                                            dann_layer_maxpool2d(2, 2, 0), dann_layer_conv2d(6, 5, 1, 2),
                                            dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0),
                                            dann_layer_flatten()};
        const dann_layer_desc label[] = {dann_layer_dense(8), dann_layer_relu(), dann_layer_dense(kClasses)};
        const dann_layer_desc domain[] = {dann_layer_dense(5), dann_layer_relu(), dann_layer_dense(1)};
        dann_model_desc d{};
        d.in_channels = kC;
        d.in_height = kH;
        d.in_width = kW;
        d.features = features;
        d.n_features = 7;
        d.label_head = label;
        d.n_label_head = 3;
        d.domain_head = domain;
        d.n_domain_head = 3;
        REQUIRE(dann_model_create(&d, 23, &model) == DANN_OK);
        dann_train_params tp = dann_train_params_default();
        REQUIRE(dann_trainer_create(model, &tp, &trainer) == DANN_OK);
        REQUIRE(dann_context_create(model, &ctx) == DANN_OK);
    }
    ~Net() {
        dann_context_destroy(ctx);
        dann_trainer_destroy(trainer);
        dann_model_destroy(model);
    }
    Net(const Net &) = delete;
    Net &operator=(const Net &) = delete;
};

struct Outcome {
    std::vector<float> losses, probs, domain;
    std::vector<std::vector<float>> params;
};

// Two DANN training steps, then a prediction, all on one path.
Outcome train_and_predict(Mode m) {
    ForcedMode forced(m);
    Net net;
    Rng rng(77);
    const std::vector<float> xs = uniform_floats(kNs * kC * kH * kW, rng);
    const std::vector<float> xt = uniform_floats(kNt * kC * kH * kW, rng, -0.5f, 1.5f);
    const std::vector<int32_t> labels{0, 2, 1};
    const dann_batch s = dann_batch_f32_nchw(xs.data(), kNs, kC, kH, kW);
    const dann_batch t = dann_batch_f32_nchw(xt.data(), kNt, kC, kH, kW);
    Outcome out;
    const uint64_t before = dann::gemm::calls();
    for (int step = 0; step < 2; ++step) {
        dann_step_result r;
        REQUIRE(dann_trainer_step(net.trainer, &s, labels.data(), &t, 0.5f, 0.2f, &r) == DANN_OK);
        out.losses.push_back(r.label_loss);
        out.losses.push_back(r.domain_loss);
    }
    out.probs.resize(kNt * kClasses);
    out.domain.resize(kNt);
    REQUIRE(dann_predict(net.ctx, &t, out.probs.data(), out.probs.size(), out.domain.data(), out.domain.size()) ==
            DANN_OK);
    CHECK((dann::gemm::calls() != before) == (m == Mode::blas && dann::gemm::available()));
    for (size_t i = 0; i < dann_model_param_count(net.model); ++i) {
        dann_param_info info;
        REQUIRE(dann_model_param_info(net.model, i, &info) == DANN_OK);
        std::vector<float> v(info.numel);
        REQUIRE(dann_model_param_get(net.model, i, v.data(), v.size()) == DANN_OK);
        out.params.push_back(v);
    }
    return out;
}

} // namespace

TEST_CASE("Whole-network DANN training steps and predictions agree between the BLAS and oneDNN paths") {
    const Outcome blas = train_and_predict(Mode::blas);
    const Outcome onednn = train_and_predict(Mode::onednn);
    compare("network losses", blas.losses, onednn.losses);
    compare("network probabilities", blas.probs, onednn.probs);
    compare("network domain probabilities", blas.domain, onednn.domain);
    REQUIRE(blas.params.size() == onednn.params.size());
    for (std::size_t i = 0; i < blas.params.size(); ++i)
        compare("network parameter " + std::to_string(i) + " after two steps", blas.params[i], onednn.params[i]);
}

TEST_CASE("DANN_GEMM is read when a plan is built, and an unknown value is an invalid argument") {
    const char *saved = std::getenv("DANN_GEMM");
    const std::string saved_value = saved ? saved : "";
    dann::gemm::clear_override();
    Net net;
    Rng rng(3);
    const std::vector<float> x = uniform_floats(2 * kC * kH * kW, rng);
    const dann_batch b = dann_batch_f32_nchw(x.data(), 2, kC, kH, kW);
    std::vector<float> probs(2 * kClasses);

    setenv("DANN_GEMM", "fastest", 1);
    CHECK(dann_predict(net.ctx, &b, probs.data(), probs.size(), nullptr, 0) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("DANN_GEMM=fastest") != std::string::npos);

    setenv("DANN_GEMM", "blas", 1);
    CHECK(dann::gemm::mode() == Mode::blas);
    const uint64_t before = dann::gemm::calls();
    CHECK(dann_predict(net.ctx, &b, probs.data(), probs.size(), nullptr, 0) == DANN_OK);
    CHECK((dann::gemm::calls() != before) == dann::gemm::available());

    setenv("DANN_GEMM", "onednn", 1);
    CHECK(dann::gemm::mode() == Mode::onednn);
    setenv("DANN_GEMM", "auto", 1);
    CHECK(dann::gemm::mode() == Mode::automatic);

    if (saved)
        setenv("DANN_GEMM", saved_value.c_str(), 1);
    else
        unsetenv("DANN_GEMM");
}
