// Training options beyond plain SGD: Adam, the target-entropy term, AdaBN,
// feature extraction and the paper's schedules, each against an independent
// computation.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "dann.h"
#include "layer_test_util.hpp"

namespace {

constexpr int kD = 3, kNs = 4, kNt = 5;

struct Data {
    std::vector<float> xs, xt;
    std::vector<int32_t> labels{0, 1, 1, 0};
    Data() {
        layer_test::Rng rng(17);
        xs = layer_test::uniform_floats(kNs * kD, rng);
        xt = layer_test::uniform_floats(kNt * kD, rng, 0.0f, 3.0f);
    }
    dann_batch src() const { return dann_batch_f32_nchw(xs.data(), kNs, kD, 1, 1); }
    dann_batch tgt() const { return dann_batch_f32_nchw(xt.data(), kNt, kD, 1, 1); }
};

std::vector<float> get(const dann_model *m, const char *name) {
    size_t i = 0;
    REQUIRE(dann_model_param_find(m, name, &i) == DANN_OK);
    dann_param_info info;
    dann_model_param_info(m, i, &info);
    std::vector<float> v(info.numel);
    dann_model_param_get(m, i, v.data(), v.size());
    return v;
}

void set(dann_model *m, const char *name, const std::vector<float> &v) {
    size_t i = 0;
    REQUIRE(dann_model_param_find(m, name, &i) == DANN_OK);
    REQUIRE(dann_model_param_set(m, i, v.data(), v.size()) == DANN_OK);
}

// One step from a fresh MLP (seed 3) with the given parameters; returns the
// model (caller destroys) and the step's result.
dann_model *one_step(const dann_train_params &tp, float lambda, float lr, dann_step_result *r) {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_mlp(kD, 6, 3, 3, &m) == DANN_OK);
    dann_trainer *t = nullptr;
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    Data d;
    dann_batch s = d.src(), g = d.tgt();
    std::vector<int32_t> labels{0, 1, 2, 0};
    REQUIRE(dann_trainer_step(t, &s, labels.data(), &g, lambda, lr, r) == DANN_OK);
    dann_trainer_destroy(t);
    return m;
}

} // namespace

TEST_CASE("Adam's first step moves every weight by lr * g / (|g| + eps), PyTorch's bias-corrected form") {
    dann_train_params sgd = dann_train_params_default();
    sgd.momentum = 0.0f;
    dann_step_result r;
    dann_model *m0 = nullptr;
    REQUIRE(dann_model_create_mlp(kD, 6, 3, 3, &m0) == DANN_OK);
    dann_model *ms = one_step(sgd, 0.5f, 1.0f, &r); // w1 = w0 - g
    dann_train_params adam = dann_train_params_default();
    adam.optimizer = DANN_OPTIMIZER_ADAM;
    adam.adam_eps = 1e-3f; // large enough to matter in the check
    const float lr = 0.01f;
    dann_model *ma = one_step(adam, 0.5f, lr, &r);
    for (const char *name : {"features.0.weight", "label_head.0.bias", "domain_head.0.weight"}) {
        const auto w0 = get(m0, name), ws = get(ms, name), wa = get(ma, name);
        for (size_t k = 0; k < w0.size(); ++k) {
            const double g = double(w0[k]) - double(ws[k]);
            const double expect = double(w0[k]) - double(lr) * g / (std::fabs(g) + 1e-3);
            CHECK_MESSAGE(double(wa[k]) == doctest::Approx(expect).epsilon(1e-4), name << "[" << k << "]");
        }
    }
    dann_model_destroy(m0);
    dann_model_destroy(ms);
    dann_model_destroy(ma);
}

TEST_CASE("The target-entropy term reports the mean entropy of the target predictions and adds "
          "its weighted gradient") {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_mlp(kD, 6, 3, 3, &m) == DANN_OK);
    Data d;
    // Reference entropy from the predicted probabilities.
    dann_context *ctx = nullptr;
    REQUIRE(dann_context_create(m, &ctx) == DANN_OK);
    dann_batch g = d.tgt();
    std::vector<float> probs(kNt * 3);
    REQUIRE(dann_predict(ctx, &g, probs.data(), probs.size(), nullptr, 0) == DANN_OK);
    double h = 0.0;
    for (float p : probs) h -= double(p) * std::log(double(p));
    h /= kNt;
    dann_context_destroy(ctx);

    const float w = 0.7f;
    dann_train_params tp = dann_train_params_default();
    tp.momentum = 0.0f;
    tp.entropy_weight = w;
    dann_trainer *t = nullptr;
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    dann_batch s = d.src();
    std::vector<int32_t> labels{0, 1, 2, 0};
    // Objective of the label head = label loss + w * entropy, measured with lr 0.
    auto objective = [&]() {
        dann_step_result r;
        REQUIRE(dann_trainer_step(t, &s, labels.data(), &g, 0.0f, 0.0f, &r) == DANN_OK);
        return double(r.label_loss) + double(w) * double(r.target_entropy);
    };
    dann_step_result r0;
    REQUIRE(dann_trainer_step(t, &s, labels.data(), &g, 0.0f, 0.0f, &r0) == DANN_OK);
    CHECK(double(r0.target_entropy) == doctest::Approx(h).epsilon(1e-5));

    // Gradient of label_head.0.weight from one lr-1 step, against central
    // differences of the objective.
    const auto w0 = get(m, "label_head.0.weight");
    std::vector<std::vector<float>> all(dann_model_param_count(m));
    for (size_t i = 0; i < all.size(); ++i) {
        dann_param_info info;
        dann_model_param_info(m, i, &info);
        all[i].resize(info.numel);
        dann_model_param_get(m, i, all[i].data(), info.numel);
    }
    dann_step_result r1;
    REQUIRE(dann_trainer_step(t, &s, labels.data(), &g, 0.0f, 1.0f, &r1) == DANN_OK);
    const auto w1 = get(m, "label_head.0.weight");
    for (size_t i = 0; i < all.size(); ++i)
        REQUIRE(dann_model_param_set(m, i, all[i].data(), all[i].size()) == DANN_OK);
    const float eps = 1e-2f;
    for (size_t k : {size_t(0), size_t(5), size_t(11), size_t(17)}) {
        auto p = w0;
        p[k] = w0[k] + eps;
        set(m, "label_head.0.weight", p);
        const double up = objective();
        p[k] = w0[k] - eps;
        set(m, "label_head.0.weight", p);
        const double down = objective();
        set(m, "label_head.0.weight", w0);
        const double fd = (up - down) / (2.0 * double(eps));
        CHECK((double(w0[k]) - double(w1[k])) == doctest::Approx(fd).epsilon(1e-2).scale(1e-3));
    }
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}

TEST_CASE("AdaBN replaces the target running statistics with the target data's statistics and "
          "keeps the source ones") {
    const dann_layer_desc f[] = {dann_layer_batchnorm(), dann_layer_dense(4), dann_layer_relu()};
    const dann_layer_desc l[] = {dann_layer_dense(2)};
    const dann_layer_desc dh[] = {dann_layer_dense(1)};
    dann_model_desc desc{};
    desc.in_channels = kD;
    desc.in_height = desc.in_width = 1;
    desc.features = f;
    desc.n_features = 3;
    desc.label_head = l;
    desc.n_label_head = 1;
    desc.domain_head = dh;
    desc.n_domain_head = 1;
    desc.domain_batchnorm = 1;
    dann_model *m = nullptr;
    REQUIRE(dann_model_create(&desc, 1, &m) == DANN_OK);
    dann_train_params tp = dann_train_params_default();
    dann_trainer *t = nullptr;
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    Data d;
    const auto src_mean = get(m, "features.0.running_mean");
    dann_batch g = d.tgt();
    REQUIRE(dann_trainer_adapt_batchnorm(t, &g, kNt) == DANN_OK); // one batch: exact statistics
    const auto mean = get(m, "features.0.running_mean_target");
    const auto var = get(m, "features.0.running_var_target");
    for (int c = 0; c < kD; ++c) {
        double mu = 0.0, v = 0.0;
        for (int i = 0; i < kNt; ++i) mu += double(d.xt[size_t(i * kD + c)]);
        mu /= kNt;
        for (int i = 0; i < kNt; ++i) v += std::pow(double(d.xt[size_t(i * kD + c)]) - mu, 2.0);
        v /= (kNt - 1); // unbiased, as PyTorch keeps it
        CHECK(double(mean[size_t(c)]) == doctest::Approx(mu).epsilon(1e-5));
        CHECK(double(var[size_t(c)]) == doctest::Approx(v).epsilon(1e-4));
    }
    CHECK(get(m, "features.0.running_mean") == src_mean);
    // Batches of 2 (and a final 1, skipped): the average of the batch statistics.
    REQUIRE(dann_trainer_adapt_batchnorm(t, &g, 2) == DANN_OK);
    const auto mean2 = get(m, "features.0.running_mean_target");
    double mu0 = (double(d.xt[0]) + double(d.xt[kD]) + double(d.xt[2 * kD]) + double(d.xt[3 * kD])) / 4.0;
    CHECK(double(mean2[0]) == doctest::Approx(mu0).epsilon(1e-5));
    CHECK(dann_trainer_adapt_batchnorm(t, &g, 0) == DANN_ERR_INVALID_ARGUMENT);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}

TEST_CASE("dann_features returns the feature extractor's output") {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_mlp(kD, 6, 3, 3, &m) == DANN_OK);
    Data d;
    const auto w = get(m, "features.0.weight"), b = get(m, "features.0.bias");
    dann_context *ctx = nullptr;
    REQUIRE(dann_context_create(m, &ctx) == DANN_OK);
    dann_batch s = d.src();
    std::vector<float> feat(kNs * 6);
    REQUIRE(dann_features(ctx, &s, feat.data(), feat.size()) == DANN_OK);
    for (int i = 0; i < kNs; ++i)
        for (int j = 0; j < 6; ++j) {
            double z = double(b[size_t(j)]);
            for (int k = 0; k < kD; ++k) z += double(w[size_t(j * kD + k)]) * double(d.xs[size_t(i * kD + k)]);
            CHECK(double(feat[size_t(i * 6 + j)]) == doctest::Approx(1.0 / (1.0 + std::exp(-z))).epsilon(1e-5));
        }
    CHECK(dann_features(ctx, &s, feat.data(), feat.size() - 1) == DANN_ERR_SHAPE);
    CHECK(dann_features(ctx, &s, nullptr, feat.size()) == DANN_ERR_INVALID_ARGUMENT);
    dann_context_destroy(ctx);
    dann_model_destroy(m);
}

TEST_CASE("The paper's schedules follow their closed forms") {
    for (float p : {0.0f, 0.1f, 0.5f, 0.9f, 1.0f}) {
        CHECK(double(dann_schedule_lr(p, 0.01f, 10.0f, 0.75f)) ==
              doctest::Approx(0.01 / std::pow(1.0 + 10.0 * double(p), 0.75)).epsilon(1e-6));
        CHECK(double(dann_schedule_lambda(p, 10.0f)) ==
              doctest::Approx(2.0 / (1.0 + std::exp(-10.0 * double(p))) - 1.0).epsilon(1e-6).scale(1e-6));
    }
    CHECK(dann_schedule_lambda(0.0f, 10.0f) == 0.0f);
    CHECK(dann_schedule_lr(0.0f, 0.01f, 10.0f, 0.75f) == 0.01f);
}

TEST_CASE("Invalid optimizer settings are rejected when the trainer is created") {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_mlp(kD, 6, 3, 3, &m) == DANN_OK);
    dann_trainer *t = nullptr;
    dann_train_params tp = dann_train_params_default();
    tp.optimizer = DANN_OPTIMIZER_ADAM;
    tp.adam_beta2 = 1.0f;
    CHECK(dann_trainer_create(m, &tp, &t) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(t == nullptr);
    tp = dann_train_params_default();
    tp.entropy_weight = -1.0f;
    CHECK(dann_trainer_create(m, &tp, &t) == DANN_ERR_INVALID_ARGUMENT);
    int bad = 7;
    std::memcpy(&tp.optimizer, &bad, sizeof bad);
    tp.entropy_weight = 0.0f;
    CHECK(dann_trainer_create(m, &tp, &t) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("optimizer") != std::string::npos);
    dann_model_destroy(m);
}

TEST_CASE("An unknown precision is rejected, and bf16 where the CPU lacks it is DANN_ERR_UNSUPPORTED") {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_mlp(kD, 6, 3, 3, &m) == DANN_OK);
    dann_trainer *t = nullptr;
    dann_train_params tp = dann_train_params_default();
    CHECK(tp.precision == DANN_PRECISION_F32);
    CHECK(dann_precision_supported(DANN_PRECISION_F32) == 1);
    // 3 is no enumerator but lies within the enum's range (values 0 to 3),
    // so that passing it by value is defined behaviour.
    int bad = 3;
    std::memcpy(&tp.precision, &bad, sizeof bad);
    CHECK(dann_precision_supported(tp.precision) == 0);
    CHECK(dann_trainer_create(m, &tp, &t) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("precision") != std::string::npos);
    CHECK(t == nullptr);
    tp.precision = DANN_PRECISION_BF16;
    if (dann_precision_supported(DANN_PRECISION_BF16)) {
        CHECK(dann_trainer_create(m, &tp, &t) == DANN_OK);
        dann_trainer_destroy(t);
    } else {
        CHECK(dann_trainer_create(m, &tp, &t) == DANN_ERR_UNSUPPORTED);
        CHECK(std::string(dann_last_error()).find("bf16") != std::string::npos);
        CHECK(t == nullptr);
    }
    dann_model_destroy(m);
}

namespace {

using Params = std::vector<std::vector<float>>;

Params params_of(const dann_model *m) {
    Params out;
    for (size_t i = 0; i < dann_model_param_count(m); ++i) {
        dann_param_info info;
        REQUIRE(dann_model_param_info(m, i, &info) == DANN_OK);
        std::vector<float> v(info.numel);
        REQUIRE(dann_model_param_get(m, i, v.data(), v.size()) == DANN_OK);
        out.push_back(std::move(v));
    }
    return out;
}

// x rounded to the nearest bf16 (ties away from zero; no NaN here).
float round_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    u = (u + 0x8000u) & 0xffff0000u;
    std::memcpy(&x, &u, sizeof u);
    return x;
}

// One DANN step on the paper's MNIST network (seed 7) at `precision`, the
// images optionally rounded to bf16 first; returns the parameters after it.
Params mnist_step(dann_precision precision, bool round_inputs, dann_step_result *r) {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_preset(DANN_PRESET_MNIST, 7, &m) == DANN_OK);
    dann_train_params tp = dann_train_params_default();
    tp.precision = precision;
    dann_trainer *t = nullptr;
    REQUIRE_MESSAGE(dann_trainer_create(m, &tp, &t) == DANN_OK, dann_last_error());
    const size_t n = 16, per = 3 * 28 * 28;
    layer_test::Rng rng(41);
    std::vector<float> xs = layer_test::uniform_floats(n * per, rng);
    std::vector<float> xt = layer_test::uniform_floats(n * per, rng, -0.5f, 1.5f);
    if (round_inputs) {
        for (float &x : xs) x = round_bf16(x);
        for (float &x : xt) x = round_bf16(x);
    }
    std::vector<int32_t> labels(n);
    for (size_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % 10);
    const dann_batch s = dann_batch_f32_nchw(xs.data(), n, 3, 28, 28);
    const dann_batch g = dann_batch_f32_nchw(xt.data(), n, 3, 28, 28);
    REQUIRE_MESSAGE(dann_trainer_step(t, &s, labels.data(), &g, 0.5f, 0.05f, r) == DANN_OK,
                    dann_last_error());
    Params out = params_of(m);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
    return out;
}

// || update(a) - update(b) || / || update(b) || over all parameters, where
// update(x) = x - w0.
double update_deviation(const Params &w0, const Params &a, const Params &b) {
    double diff = 0.0, norm = 0.0;
    for (size_t p = 0; p < w0.size(); ++p)
        for (size_t i = 0; i < w0[p].size(); ++i) {
            const double ua = double(a[p][i]) - double(w0[p][i]);
            const double ub = double(b[p][i]) - double(w0[p][i]);
            diff += (ua - ub) * (ua - ub);
            norm += ub * ub;
        }
    return std::sqrt(diff / norm);
}

} // namespace

TEST_CASE("A bf16 step follows the f32 step on the MNIST network as closely as rounding the "
          "images to bf16 does, deterministically") {
    if (!dann_precision_supported(DANN_PRECISION_BF16)) {
        MESSAGE("bf16 is not supported on this CPU: skipped");
        return;
    }
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_preset(DANN_PRESET_MNIST, 7, &m) == DANN_OK);
    const Params w0 = params_of(m);
    dann_model_destroy(m);
    dann_step_result r32{}, r32r{}, r16{}, r16b{};
    const Params w32 = mnist_step(DANN_PRECISION_F32, false, &r32);
    const Params w32r = mnist_step(DANN_PRECISION_F32, true, &r32r);
    const Params w16 = mnist_step(DANN_PRECISION_BF16, false, &r16);
    const Params w16b = mnist_step(DANN_PRECISION_BF16, false, &r16b);
    CHECK(w16 == w16b); // deterministic
    CHECK(r16.label_loss == r16b.label_loss);
    CHECK(w16 != w32);  // the bf16 products really ran
    // Losses: bf16 keeps 8 significant bits.
    CHECK(double(r16.label_loss) == doctest::Approx(double(r32.label_loss)).epsilon(0.01));
    CHECK(double(r16.domain_loss) == doctest::Approx(double(r32.domain_loss)).epsilon(0.01));
    // The update is sensitive to tiny input changes (max-pool windows and
    // ReLUs with near-equal values switch), so its bf16 deviation is judged
    // against that of the f32 step on bf16-rounded images.
    const double dev_bf16 = update_deviation(w0, w16, w32);
    const double dev_rounded = update_deviation(w0, w32r, w32);
    MESSAGE("update deviation from f32: bf16 step " << dev_bf16 << ", f32 step on bf16-rounded "
            "images " << dev_rounded);
    CHECK(dev_rounded > 0.0);
    CHECK(dev_bf16 < 3.0 * dev_rounded);
}
