// The gradient reversal on a whole network: the feature extractor receives the
// label-loss gradient minus lambda times the domain-loss gradient, while both
// heads train on their own loss with weight 1. Gradients are read through the
// public API as weight changes of one plain SGD step (momentum 0, lr 1) from
// identical starting weights.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "dann.h"
#include "layer_test_util.hpp"

namespace {

constexpr int kC = 2, kH = 7, kW = 7, kNs = 3, kNt = 2;

struct Net {
    dann_model *model = nullptr;
    dann_trainer *trainer = nullptr;
    ~Net() {
        dann_trainer_destroy(trainer);
        dann_model_destroy(model);
    }
};

void make_net(Net &n) {
    const dann_layer_desc features[] = {dann_layer_conv2d(3, 3, 2, 1), dann_layer_relu(),
                                        dann_layer_flatten()};
    const dann_layer_desc label[] = {dann_layer_dense(6), dann_layer_sigmoid(), dann_layer_dense(4)};
    const dann_layer_desc domain[] = {dann_layer_dense(5), dann_layer_relu(), dann_layer_dense(1)};
    dann_model_desc d{};
    d.in_channels = kC;
    d.in_height = kH;
    d.in_width = kW;
    d.features = features;
    d.n_features = 3;
    d.label_head = label;
    d.n_label_head = 3;
    d.domain_head = domain;
    d.n_domain_head = 3;
    REQUIRE(dann_model_create(&d, 11, &n.model) == DANN_OK);
    dann_train_params tp = dann_train_params_default();
    tp.momentum = 0.0f;
    REQUIRE(dann_trainer_create(n.model, &tp, &n.trainer) == DANN_OK);
}

struct Inputs {
    std::vector<float> xs, xt;
    std::vector<int32_t> labels{0, 3, 1};
    Inputs() {
        layer_test::Rng rng(5);
        xs = layer_test::uniform_floats(kNs * kC * kH * kW, rng);
        xt = layer_test::uniform_floats(kNt * kC * kH * kW, rng, -0.5f, 1.5f);
    }
};

std::vector<float> param(const dann_model *m, size_t i) {
    dann_param_info info;
    REQUIRE(dann_model_param_info(m, i, &info) == DANN_OK);
    std::vector<float> v(info.numel);
    REQUIRE(dann_model_param_get(m, i, v.data(), v.size()) == DANN_OK);
    return v;
}

// Gradient of every parameter for one step at `lambda` (target == false: a
// source-only step), from w1 = w0 - 1 * g.
std::vector<std::vector<float>> gradients(float lambda, bool target, dann_step_result *r = nullptr) {
    Net n;
    make_net(n);
    Inputs in;
    const size_t count = dann_model_param_count(n.model);
    std::vector<std::vector<float>> w0(count), g(count);
    for (size_t i = 0; i < count; ++i) w0[i] = param(n.model, i);
    dann_batch s = dann_batch_f32_nchw(in.xs.data(), kNs, kC, kH, kW);
    dann_batch t = dann_batch_f32_nchw(in.xt.data(), kNt, kC, kH, kW);
    dann_step_result res;
    REQUIRE(dann_trainer_step(n.trainer, &s, in.labels.data(), target ? &t : nullptr, lambda, 1.0f,
                              &res) == DANN_OK);
    if (r) *r = res;
    for (size_t i = 0; i < count; ++i) {
        const std::vector<float> w1 = param(n.model, i);
        g[i].resize(w1.size());
        for (size_t k = 0; k < w1.size(); ++k) g[i][k] = w0[i][k] - w1[k];
    }
    return g;
}

bool is_features(const dann_model *m, size_t i) {
    dann_param_info info;
    dann_model_param_info(m, i, &info);
    return std::string(info.name).rfind("features.", 0) == 0;
}

} // namespace

TEST_CASE("On a whole network the features receive the label gradient minus lambda times the "
          "domain gradient, and the heads train with weight 1") {
    const auto g0 = gradients(0.0f, true);
    const auto g1 = gradients(1.0f, true);
    const auto g25 = gradients(2.5f, true);
    const auto g_src = gradients(0.7f, false);
    Net probe;
    make_net(probe);
    double max_feature_change = 0.0;
    for (size_t i = 0; i < g0.size(); ++i) {
        const bool feat = is_features(probe.model, i);
        for (size_t k = 0; k < g0[i].size(); ++k) {
            // The domain gradient reaching the features: h = g(0) - g(1).
            const double h = double(g0[i][k]) - double(g1[i][k]);
            if (feat) {
                max_feature_change = std::max(max_feature_change, std::fabs(h));
                // Linear in lambda: g(2.5) = g(0) - 2.5 h.
                CHECK(double(g25[i][k]) == doctest::Approx(double(g0[i][k]) - 2.5 * h).epsilon(1e-3).scale(1.0));
                // With lambda = 0 only the label loss reaches the features, as in
                // a source-only step.
                CHECK(g0[i][k] == doctest::Approx(g_src[i][k]).epsilon(1e-4).scale(1.0));
            } else {
                // Heads: independent of lambda.
                CHECK(g0[i][k] == doctest::Approx(g1[i][k]).epsilon(1e-5).scale(1.0));
                CHECK(g25[i][k] == doctest::Approx(g1[i][k]).epsilon(1e-5).scale(1.0));
            }
        }
    }
    // The domain loss does reach the features (the test would be vacuous otherwise).
    CHECK(max_feature_change > 1e-4);
}

TEST_CASE("The reversed gradient is minus lambda times the derivative of the domain loss, by "
          "finite differences through the public API") {
    const auto g0 = gradients(0.0f, true);
    const auto g1 = gradients(1.0f, true);
    Net n;
    make_net(n);
    Inputs in;
    dann_batch s = dann_batch_f32_nchw(in.xs.data(), kNs, kC, kH, kW);
    dann_batch t = dann_batch_f32_nchw(in.xt.data(), kNt, kC, kH, kW);
    size_t wi = 0;
    REQUIRE(dann_model_param_find(n.model, "features.0.weight", &wi) == DANN_OK);
    std::vector<float> w = param(n.model, wi);
    // Domain loss at perturbed weights; lr 0 leaves the model unchanged.
    auto domain_loss = [&](size_t k, float delta) {
        std::vector<float> p = w;
        p[k] += delta;
        REQUIRE(dann_model_param_set(n.model, wi, p.data(), p.size()) == DANN_OK);
        dann_step_result r;
        REQUIRE(dann_trainer_step(n.trainer, &s, in.labels.data(), &t, 0.0f, 0.0f, &r) == DANN_OK);
        return double(r.domain_loss);
    };
    const float h = 1e-2f;
    for (size_t k : {size_t(0), size_t(7), size_t(20), w.size() - 1}) {
        const double fd = (domain_loss(k, h) - domain_loss(k, -h)) / (2.0 * double(h));
        const double reversed = double(g0[wi][k]) - double(g1[wi][k]); // = d(domain loss)/dw
        CHECK(reversed == doctest::Approx(fd).epsilon(2e-2).scale(1.0));
    }
}
