// Threads sharing one model: every thread has its own dann_context on the same
// dann_model, and all of them predict at once. Their results must equal a
// single thread's exactly, and nothing may race (this suite also runs under
// ThreadSanitizer: `dann_tests -ts=threads`). Only include/dann.h is used.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dann.h"
#include "api_handles.hpp"

namespace {

using dann_test::Context;
using dann_test::Model;
using dann_test::Trainer;

void require_ok(dann_status st) {
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
}

// A small convolutional net with domain batch-norm: convolution, batch-norm,
// pooling and dense layers, 3x8x8 input, 4 classes.
Model conv_bn_model() {
    const dann_layer_desc features[] = {dann_layer_conv2d(4, 3, 1, 1), dann_layer_batchnorm(),
                                        dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
    const dann_layer_desc label[] = {dann_layer_dense(8), dann_layer_relu(), dann_layer_dense(4)};
    const dann_layer_desc domain[] = {dann_layer_dense(6), dann_layer_relu(), dann_layer_dense(1)};
    dann_model_desc d;
    std::memset(&d, 0, sizeof d);
    d.in_channels = 3;
    d.in_height = 8;
    d.in_width = 8;
    d.features = features;
    d.n_features = 4;
    d.label_head = label;
    d.n_label_head = 3;
    d.domain_head = domain;
    d.n_domain_head = 3;
    d.domain_batchnorm = 1;
    dann_model *m = nullptr;
    require_ok(dann_model_create(&d, 5, &m));
    return Model(m);
}

Model mlp_model() {
    dann_model *m = nullptr;
    require_ok(dann_model_create_mlp(12, 16, 4, 9, &m));
    return Model(m);
}

Context context(const dann_model *m) {
    dann_context *c = nullptr;
    require_ok(dann_context_create(m, &c));
    return Context(c);
}

dann_model_info info(const dann_model *m) {
    dann_model_info i;
    require_ok(dann_model_get_info(m, &i));
    return i;
}

std::vector<float> inputs(size_t count, uint32_t seed) {
    std::vector<float> v(count);
    for (auto &f : v) {
        seed = seed * 1664525u + 1013904223u;
        f = static_cast<float>(seed >> 8) / 16777216.0f - 0.5f;
    }
    return v;
}

// What one call returns: class and domain probabilities, or features.
struct Result {
    dann_status status = DANN_OK;
    std::vector<float> probs, domain;
};

Result predict(dann_context *ctx, const dann_model_info &mi, const std::vector<float> &x, size_t n) {
    Result r;
    r.probs.resize(n * static_cast<size_t>(mi.num_classes));
    r.domain.resize(n);
    const dann_batch b = dann_batch_f32_nchw(x.data(), n, mi.in_channels, mi.in_height, mi.in_width);
    r.status = dann_predict(ctx, &b, r.probs.data(), r.probs.size(), r.domain.data(), r.domain.size());
    return r;
}

Result features(dann_context *ctx, const dann_model_info &mi, const std::vector<float> &x, size_t n) {
    Result r;
    r.probs.resize(n * static_cast<size_t>(mi.feature_size));
    const dann_batch b = dann_batch_f32_nchw(x.data(), n, mi.in_channels, mi.in_height, mi.in_width);
    r.status = dann_features(ctx, &b, r.probs.data(), r.probs.size());
    return r;
}

// Each thread's work: a batch size and its input; the calls alternate between
// batch sizes so that plans are built on several threads at once.
struct Job {
    size_t n;
    std::vector<float> x;
};

// `threads` threads, each with its own context on `m`, run `rounds` rounds of
// every job (prediction, then features); the results must equal a single
// thread's, computed first on a context of its own.
void run_threads(const dann_model *m, int threads, int rounds) {
    const dann_model_info mi = info(m);
    const size_t per_sample = static_cast<size_t>(mi.in_channels) * mi.in_height * mi.in_width;
    std::vector<Job> jobs;
    for (size_t n : {size_t{1}, size_t{3}, size_t{8}})
        jobs.push_back({n, inputs(n * per_sample, static_cast<uint32_t>(100 + n))});

    std::vector<Result> ref_predict, ref_features;
    {
        Context c = context(m);
        for (const Job &j : jobs) {
            ref_predict.push_back(predict(c.get(), mi, j.x, j.n));
            ref_features.push_back(features(c.get(), mi, j.x, j.n));
            INFO(dann_last_error());
            REQUIRE(ref_predict.back().status == DANN_OK);
            REQUIRE(ref_features.back().status == DANN_OK);
        }
    }

    std::vector<Context> contexts;
    for (int t = 0; t < threads; ++t) contexts.push_back(context(m));
    // Filled by the threads, checked afterwards on this thread (doctest's
    // assertions are not meant for other threads).
    std::vector<std::vector<Result>> got_predict(static_cast<size_t>(threads)),
        got_features(static_cast<size_t>(threads));
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            const size_t ti = static_cast<size_t>(t);
            ready.fetch_add(1);
            while (ready.load() < threads) std::this_thread::yield();
            for (int r = 0; r < rounds; ++r)
                for (size_t k = 0; k < jobs.size(); ++k) {
                    // Threads start at different jobs.
                    const Job &j = jobs[(k + ti) % jobs.size()];
                    got_predict[ti].push_back(predict(contexts[ti].get(), mi, j.x, j.n));
                    got_features[ti].push_back(features(contexts[ti].get(), mi, j.x, j.n));
                }
        });
    }
    for (auto &th : pool) th.join();

    for (size_t t = 0; t < static_cast<size_t>(threads); ++t) {
        REQUIRE(got_predict[t].size() == static_cast<size_t>(rounds) * jobs.size());
        for (size_t i = 0; i < got_predict[t].size(); ++i) {
            const size_t k = (i % jobs.size() + t) % jobs.size();
            INFO("thread ", t, ", call ", i, ", batch ", jobs[k].n);
            CHECK(got_predict[t][i].status == DANN_OK);
            CHECK(got_features[t][i].status == DANN_OK);
            CHECK(got_predict[t][i].probs == ref_predict[k].probs);
            CHECK(got_predict[t][i].domain == ref_predict[k].domain);
            CHECK(got_features[t][i].probs == ref_features[k].probs);
        }
    }
}

} // namespace

TEST_SUITE("threads") {

TEST_CASE("four threads predicting with their own contexts on one MLP match a single thread exactly") {
    Model m = mlp_model();
    run_threads(m.get(), 4, 5);
}

TEST_CASE("four threads predicting with their own contexts on one conv net with batch-norm match a single thread exactly") {
    Model m = conv_bn_model();
    run_threads(m.get(), 4, 3);
}

TEST_CASE("three threads predicting with the MNIST preset match a single thread exactly") {
    dann_model *raw = nullptr;
    require_ok(dann_model_create_preset(DANN_PRESET_MNIST, 3, &raw));
    Model m(raw);
    run_threads(m.get(), 3, 2);
}

TEST_CASE("a trainer stepping one model does not disturb predictions on another model") {
    Model served = conv_bn_model(), trained = conv_bn_model();
    const dann_model_info mi = info(served.get());
    const size_t n = 4, per_sample = static_cast<size_t>(mi.in_channels) * mi.in_height * mi.in_width;
    const std::vector<float> x = inputs(n * per_sample, 77);
    Result ref;
    {
        Context c = context(served.get());
        ref = predict(c.get(), mi, x, n);
        REQUIRE(ref.status == DANN_OK);
    }

    dann_trainer *rt = nullptr;
    const dann_train_params tp = dann_train_params_default();
    require_ok(dann_trainer_create(trained.get(), &tp, &rt));
    Trainer trainer(rt);
    const std::vector<float> xs = inputs(n * per_sample, 78), xt = inputs(n * per_sample, 79);
    const int32_t labels[n] = {0, 1, 2, 3};

    constexpr int kSteps = 6, kPredictions = 6, kPredictors = 2;
    std::vector<Context> contexts;
    for (int t = 0; t < kPredictors; ++t) contexts.push_back(context(served.get()));
    std::vector<dann_status> step_status(kSteps, DANN_ERR_INTERNAL);
    std::vector<std::vector<Result>> got(kPredictors);
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    pool.emplace_back([&] {
        ready.fetch_add(1);
        while (ready.load() < kPredictors + 1) std::this_thread::yield();
        const dann_batch s = dann_batch_f32_nchw(xs.data(), n, mi.in_channels, mi.in_height, mi.in_width);
        const dann_batch tg = dann_batch_f32_nchw(xt.data(), n, mi.in_channels, mi.in_height, mi.in_width);
        for (int i = 0; i < kSteps; ++i)
            step_status[static_cast<size_t>(i)] =
                dann_trainer_step(trainer.get(), &s, labels, &tg, 0.1f, 0.01f, nullptr);
    });
    for (int t = 0; t < kPredictors; ++t)
        pool.emplace_back([&, t] {
            ready.fetch_add(1);
            while (ready.load() < kPredictors + 1) std::this_thread::yield();
            for (int i = 0; i < kPredictions; ++i)
                got[static_cast<size_t>(t)].push_back(predict(contexts[static_cast<size_t>(t)].get(), mi, x, n));
        });
    for (auto &th : pool) th.join();

    for (int i = 0; i < kSteps; ++i) CHECK(step_status[static_cast<size_t>(i)] == DANN_OK);
    for (const auto &results : got)
        for (const Result &r : results) {
            CHECK(r.status == DANN_OK);
            CHECK(r.probs == ref.probs);
            CHECK(r.domain == ref.domain);
        }
}

} // TEST_SUITE("threads")
