// On-device adaptation (dann_adapter_*) and the drift score, through the
// public API: parameter checks, the ring buffer, rounds on a shifted two-moons
// problem, the guard, commit and rollback, snapshots followed by prediction
// contexts (also from several threads while the adapter's thread runs), and
// dann_drift_score against a scalar reference. Public API only, except the
// snapshot version a context ran (c_api/handles.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "c_api/handles.hpp"
#include "data/moons.hpp"
#include "dann.h"
#include "api_handles.hpp"

namespace {

// ---------------------------------------------------------------------------
// Handles and checks

using dann_test::Context;
using dann_test::Model;
using dann_test::Trainer;
using dann_test::Adapter;

void require_ok(dann_status st) {
    INFO(dann_status_string(st), ": ", dann_last_error());
    REQUIRE(st == DANN_OK);
}

std::string lower(std::string s) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// A failed call: the expected status, and a message naming `keyword`.
void expect_error(dann_status st, dann_status want, const char *keyword) {
    const std::string message = dann_last_error();
    INFO("status ", dann_status_string(st), ", message \"", message, "\", wanted keyword ", keyword);
    CHECK(st == want);
    CHECK(lower(message).find(lower(keyword)) != std::string::npos);
}

Context context(const dann_model *m) {
    dann_context *c = nullptr;
    require_ok(dann_context_create(m, &c));
    return Context(c);
}

Context adapter_context(dann_adapter *a) {
    dann_context *c = nullptr;
    require_ok(dann_adapter_context_create(a, &c));
    return Context(c);
}

Adapter adapter(const dann_model *m, const dann_adapter_params &p) {
    dann_adapter *a = nullptr;
    require_ok(dann_adapter_create(m, &p, &a));
    REQUIRE(a != nullptr);
    return Adapter(a);
}

dann_adapter_stats stats(dann_adapter *a) {
    dann_adapter_stats s;
    require_ok(dann_adapter_get_stats(a, &s));
    return s;
}

// Waits (up to a minute) until the adapter has finished n rounds.
bool wait_rounds(dann_adapter *a, uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (stats(a).rounds < n && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return stats(a).rounds >= n;
}

std::vector<float> predict(dann_context *ctx, const dann_batch &b, size_t classes,
                           std::vector<float> *domain = nullptr) {
    std::vector<float> probs(b.n * classes);
    if (domain) domain->assign(b.n, 0.0f);
    require_ok(dann_predict(ctx, &b, probs.data(), probs.size(), domain ? domain->data() : nullptr,
                            domain ? b.n : 0));
    return probs;
}

using Params = std::vector<std::vector<float>>;

Params all_params(const dann_model *m) {
    Params p(dann_model_param_count(m));
    for (size_t i = 0; i < p.size(); ++i) {
        dann_param_info info;
        require_ok(dann_model_param_info(m, i, &info));
        p[i].resize(info.numel);
        require_ok(dann_model_param_get(m, i, p[i].data(), p[i].size()));
    }
    return p;
}

void set_param(dann_model *m, const char *name, std::initializer_list<float> values) {
    size_t i = 0;
    require_ok(dann_model_param_find(m, name, &i));
    const std::vector<float> v(values);
    require_ok(dann_model_param_set(m, i, v.data(), v.size()));
}

// The adapter's published snapshot, as a model of the same architecture.
Model snapshot_of(dann_adapter *a, const dann_model *like) {
    dann_model *m = nullptr;
    require_ok(dann_model_clone(like, &m));
    Model out(m);
    require_ok(dann_adapter_get_model(a, out.get()));
    return out;
}

// ---------------------------------------------------------------------------
// The shifted two-moons problem: 2 inputs -> 15 sigmoid units -> 2 classes;
// the target domain is the source rotated by 35 degrees.

constexpr int kMoonsHidden = 15;

struct Moons {
    dann::data::Moons sets = dann::data::make_moons(35.0, 300, 0.05, 7, 1000);
    std::vector<int32_t> source_labels;
    Moons() {
        for (uint8_t y : sets.source_y) source_labels.push_back(y);
    }
    static dann_batch batch(const std::vector<float> &xy, size_t first = 0, size_t n = 0) {
        const size_t count = n ? n : xy.size() / 2 - first;
        return dann_batch_f32_nchw(xy.data() + 2 * first, count, 2, 1, 1);
    }
};

const Moons &moons() {
    static const Moons m;
    return m;
}

float accuracy(dann_context *ctx, const std::vector<float> &xy, const std::vector<uint8_t> &y) {
    const std::vector<float> p = predict(ctx, Moons::batch(xy), 2);
    size_t correct = 0;
    for (size_t i = 0; i < y.size(); ++i) correct += (p[2 * i + 1] > p[2 * i]) == (y[i] == 1);
    return static_cast<float>(correct) / static_cast<float>(y.size());
}

// Trained on the source only (full-batch SGD), carrying the source set as its
// replay set, one thread.
Model train_moons_model(uint64_t seed, int steps) {
    const Moons &d = moons();
    dann_model *raw = nullptr;
    require_ok(dann_model_create_mlp(2, kMoonsHidden, 2, seed, &raw));
    Model m(raw);
    require_ok(dann_model_set_threads(m.get(), 1));
    dann_trainer *t = nullptr;
    const dann_train_params tp = dann_train_params_default();
    require_ok(dann_trainer_create(m.get(), &tp, &t));
    Trainer trainer(t);
    const dann_batch src = Moons::batch(d.sets.source_x);
    for (int s = 0; s < steps; ++s)
        require_ok(dann_trainer_step(trainer.get(), &src, d.source_labels.data(), nullptr, 0.0f,
                                     0.5f, nullptr));
    require_ok(dann_model_set_replay(m.get(), &src, d.source_labels.data()));
    return m;
}

// A fresh copy of train_moons_model(seed, steps): trained once per setting,
// since most cases start from the same model (training it takes seconds under
// an emulator).
Model moons_model(uint64_t seed = 3, int steps = 600) {
    static std::map<std::pair<uint64_t, int>, Model> trained;
    const std::pair<uint64_t, int> key(seed, steps);
    auto it = trained.find(key);
    if (it == trained.end()) it = trained.emplace(key, train_moons_model(seed, steps)).first;
    dann_model *copy = nullptr;
    require_ok(dann_model_clone(it->second.get(), &copy));
    return Model(copy);
}

dann_adapter_params moons_params() {
    dann_adapter_params p = dann_adapter_params_default();
    p.format = DANN_INPUT_F32_NCHW;
    p.capacity = 512;
    p.steps_per_round = 10;
    p.guard_samples = 64;
    p.lr = 1e-3f;
    p.background = 0;
    return p;
}

void push_target(dann_adapter *a, size_t first = 0, size_t n = 0) {
    const dann_batch b = Moons::batch(moons().sets.target_x, first, n);
    require_ok(dann_adapter_push(a, &b));
}

} // namespace

TEST_SUITE("adapter") {

// ===========================================================================
// Parameters and arguments

TEST_CASE("dann_adapter_params_default gives the documented defaults") {
    const dann_adapter_params p = dann_adapter_params_default();
    CHECK(p.mode == DANN_ADAPT_DANN);
    CHECK(p.train.optimizer == DANN_OPTIMIZER_ADAM);
    CHECK(p.train.momentum == doctest::Approx(0.9));
    CHECK(p.lr == doctest::Approx(1e-4));
    CHECK(p.lambda == doctest::Approx(0.3));
    CHECK(p.source_batch == 32);
    CHECK(p.target_batch == 32);
    CHECK(p.steps_per_round == 20);
    CHECK(p.min_new_samples == 64);
    CHECK(p.capacity == 2048);
    CHECK(p.format == DANN_INPUT_U8_HWC);
    CHECK(p.channels == 0);
    CHECK(p.guard_samples == 256);
    CHECK(p.guard_max_replay_drop == doctest::Approx(0.05));
    CHECK(p.guard_min_class_entropy == doctest::Approx(0.5));
    CHECK(p.memory_budget == 0);
    CHECK(p.background == 1);
}

TEST_CASE("dann_adapter_create rejects each bad parameter, naming it, and sets the out-pointer to NULL") {
    Model m = moons_model(3, 10);
    struct Bad {
        const char *field;
        void (*change)(dann_adapter_params &);
    };
    const Bad cases[] = {
        {"mode", [](dann_adapter_params &p) { std::memset(&p.mode, 0x7f, sizeof p.mode); }},
        {"optimizer", [](dann_adapter_params &p) { std::memset(&p.train.optimizer, 0x7f, sizeof p.train.optimizer); }},
        {"momentum", [](dann_adapter_params &p) { p.train.momentum = 1.5f; }},
        {"lr", [](dann_adapter_params &p) { p.lr = std::numeric_limits<float>::quiet_NaN(); }},
        {"lr", [](dann_adapter_params &p) { p.lr = -1.0f; }},
        {"lambda", [](dann_adapter_params &p) { p.lambda = -0.1f; }},
        {"lambda", [](dann_adapter_params &p) { p.lambda = std::numeric_limits<float>::infinity(); }},
        {"source_batch", [](dann_adapter_params &p) { p.source_batch = 0; }},
        {"target_batch", [](dann_adapter_params &p) { p.target_batch = 0; }},
        {"steps_per_round", [](dann_adapter_params &p) { p.steps_per_round = 0; }},
        {"capacity", [](dann_adapter_params &p) { p.capacity = p.target_batch - 1; }},
        {"format", [](dann_adapter_params &p) { p.format = DANN_INPUT_F32_NHWC; }},
        {"format", [](dann_adapter_params &p) { std::memset(&p.format, 0x7f, sizeof p.format); }},
        {"channels", [](dann_adapter_params &p) { p.channels = 3; }},
        {"channels", [](dann_adapter_params &p) { p.channels = -1; }},
        {"guard_samples", [](dann_adapter_params &p) { p.guard_samples = 0; }},
        {"guard_max_replay_drop", [](dann_adapter_params &p) { p.guard_max_replay_drop = 1.5f; }},
        {"guard_max_replay_drop", [](dann_adapter_params &p) { p.guard_max_replay_drop = std::numeric_limits<float>::quiet_NaN(); }},
        {"guard_min_class_entropy", [](dann_adapter_params &p) { p.guard_min_class_entropy = -0.1f; }},
    };
    for (const Bad &c : cases) {
        dann_adapter_params p = moons_params();
        c.change(p);
        dann_adapter *a = reinterpret_cast<dann_adapter *>(&p);
        const dann_status st = dann_adapter_create(m.get(), &p, &a);
        INFO("field ", c.field);
        expect_error(st, DANN_ERR_INVALID_ARGUMENT, c.field);
        CHECK(a == nullptr);
        if (st == DANN_OK) dann_adapter_destroy(a);
    }
}

TEST_CASE("every adapter function rejects NULL arguments") {
    Model m = moons_model(3, 10);
    const dann_adapter_params p = moons_params();
    dann_adapter *a = reinterpret_cast<dann_adapter *>(&m);
    expect_error(dann_adapter_create(nullptr, &p, &a), DANN_ERR_INVALID_ARGUMENT, "model");
    CHECK(a == nullptr);
    expect_error(dann_adapter_create(m.get(), nullptr, &a), DANN_ERR_INVALID_ARGUMENT, "params");
    expect_error(dann_adapter_create(m.get(), &p, nullptr), DANN_ERR_INVALID_ARGUMENT, "out");

    Adapter ad = adapter(m.get(), p);
    const dann_batch b = Moons::batch(moons().sets.target_x, 0, 4);
    expect_error(dann_adapter_push(nullptr, &b), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_push(ad.get(), nullptr), DANN_ERR_INVALID_ARGUMENT, "batch");
    expect_error(dann_adapter_run(nullptr, 1), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_start(nullptr), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_stop(nullptr), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_commit(nullptr), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_rollback(nullptr), DANN_ERR_INVALID_ARGUMENT, "adapter");
    dann_context *c = reinterpret_cast<dann_context *>(&m);
    expect_error(dann_adapter_context_create(nullptr, &c), DANN_ERR_INVALID_ARGUMENT, "adapter");
    CHECK(c == nullptr);
    expect_error(dann_adapter_context_create(ad.get(), nullptr), DANN_ERR_INVALID_ARGUMENT, "out");
    dann_adapter_stats s;
    expect_error(dann_adapter_get_stats(nullptr, &s), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_get_stats(ad.get(), nullptr), DANN_ERR_INVALID_ARGUMENT, "out");
    expect_error(dann_adapter_get_model(nullptr, m.get()), DANN_ERR_INVALID_ARGUMENT, "adapter");
    expect_error(dann_adapter_get_model(ad.get(), nullptr), DANN_ERR_INVALID_ARGUMENT, "model");
    CHECK(dann_adapter_memory(nullptr) == 0);
    dann_adapter_destroy(nullptr);
}

TEST_CASE("DANN mode without a replay set is refused, naming the replay set") {
    dann_model *raw = nullptr;
    require_ok(dann_model_create_mlp(2, 4, 2, 1, &raw));
    Model m(raw);
    const dann_adapter_params p = moons_params();
    dann_adapter *a = reinterpret_cast<dann_adapter *>(&raw);
    expect_error(dann_adapter_create(m.get(), &p, &a), DANN_ERR_INVALID_ARGUMENT, "replay");
    CHECK(a == nullptr);
}

TEST_CASE("BATCHNORM mode on a model without batch-norm layers is refused, naming the layer kind") {
    Model m = moons_model(3, 10);
    dann_adapter_params p = moons_params();
    p.mode = DANN_ADAPT_BATCHNORM;
    dann_adapter *a = nullptr;
    expect_error(dann_adapter_create(m.get(), &p, &a), DANN_ERR_INVALID_ARGUMENT, "BATCHNORM");
    CHECK(a == nullptr);
}

TEST_CASE("a memory budget below the adapter's needs fails with DANN_ERR_OUT_OF_MEMORY and both figures") {
    Model m = moons_model(3, 10);
    dann_adapter_params p = moons_params();
    Adapter free_run = adapter(m.get(), p);
    const size_t need = dann_adapter_memory(free_run.get());
    REQUIRE(need > 0);

    p.memory_budget = need - 1;
    dann_adapter *a = reinterpret_cast<dann_adapter *>(&p);
    const dann_status st = dann_adapter_create(m.get(), &p, &a);
    expect_error(st, DANN_ERR_OUT_OF_MEMORY, "budget");
    CHECK(a == nullptr);
    const std::string message = dann_last_error();
    CHECK(message.find(std::to_string(need)) != std::string::npos);
    CHECK(message.find(std::to_string(need - 1)) != std::string::npos);

    p.memory_budget = need;
    Adapter fits = adapter(m.get(), p);
    CHECK(dann_adapter_memory(fits.get()) == need);
}

TEST_CASE("dann_adapter_memory is fixed at creation and grows with the ring's capacity") {
    Model m = moons_model(3, 10);
    dann_adapter_params p = moons_params();
    Adapter a = adapter(m.get(), p);
    const size_t before = dann_adapter_memory(a.get());
    push_target(a.get());
    require_ok(dann_adapter_run(a.get(), 3));
    require_ok(dann_adapter_commit(a.get()));
    require_ok(dann_adapter_rollback(a.get()));
    CHECK(dann_adapter_memory(a.get()) == before);

    p.capacity += 1000;
    Adapter bigger = adapter(m.get(), p);
    CHECK(dann_adapter_memory(bigger.get()) >= before + 1000 * 2 * sizeof(float));
}

// ===========================================================================
// Ring buffer

TEST_CASE("push refuses a wrong format, channel count or image size, and NaN, pushing nothing") {
    Model m = moons_model(3, 10);
    Adapter a = adapter(m.get(), moons_params());
    const std::vector<float> &xy = moons().sets.target_x;

    const uint8_t bytes[8] = {};
    const dann_batch u8 = dann_batch_u8_hwc(bytes, 4, 1, 1, 2);
    expect_error(dann_adapter_push(a.get(), &u8), DANN_ERR_INVALID_ARGUMENT, "format");
    const dann_batch nhwc = dann_batch_f32_nhwc(xy.data(), 4, 1, 1, 2);
    expect_error(dann_adapter_push(a.get(), &nhwc), DANN_ERR_INVALID_ARGUMENT, "format");
    const dann_batch gray = dann_batch_f32_nchw(xy.data(), 4, 1, 1, 1);
    expect_error(dann_adapter_push(a.get(), &gray), DANN_ERR_SHAPE, "channels");
    const dann_batch tall = dann_batch_f32_nchw(xy.data(), 2, 2, 2, 1);
    expect_error(dann_adapter_push(a.get(), &tall), DANN_ERR_SHAPE, "2x1");
    const dann_batch empty = dann_batch_f32_nchw(xy.data(), 0, 2, 1, 1);
    expect_error(dann_adapter_push(a.get(), &empty), DANN_ERR_SHAPE, "n = 0");

    std::vector<float> bad(xy.begin(), xy.begin() + 8);
    bad[5] = std::numeric_limits<float>::quiet_NaN();
    const dann_batch nan = dann_batch_f32_nchw(bad.data(), 4, 2, 1, 1);
    expect_error(dann_adapter_push(a.get(), &nan), DANN_ERR_NUMERIC, "sample 2");

    const dann_adapter_stats s = stats(a.get());
    CHECK(s.samples_pushed == 0);
    CHECK(s.samples_buffered == 0);
}

TEST_CASE("the ring keeps the newest capacity samples and counts every push") {
    Model m = moons_model(3, 10);
    dann_adapter_params p = moons_params();
    p.capacity = 100;
    Adapter a = adapter(m.get(), p);
    push_target(a.get(), 0, 60);
    CHECK(stats(a.get()).samples_buffered == 60);
    push_target(a.get(), 60, 60);
    dann_adapter_stats s = stats(a.get());
    CHECK(s.samples_pushed == 120);
    CHECK(s.samples_buffered == 100);
    push_target(a.get(), 0, 250); // more than the capacity in one push
    s = stats(a.get());
    CHECK(s.samples_pushed == 370);
    CHECK(s.samples_buffered == 100);
}

TEST_CASE("run needs target_batch samples in the ring, and start needs a background thread") {
    Model m = moons_model(3, 10);
    dann_adapter_params p = moons_params();
    Adapter a = adapter(m.get(), p);
    expect_error(dann_adapter_run(a.get(), 1), DANN_ERR_SHAPE, "target_batch");
    push_target(a.get(), 0, p.target_batch - 1);
    expect_error(dann_adapter_run(a.get(), 1), DANN_ERR_SHAPE, "target_batch");
    push_target(a.get(), 0, 1);
    require_ok(dann_adapter_run(a.get(), 1));
    require_ok(dann_adapter_run(a.get(), 0));
    expect_error(dann_adapter_start(a.get()), DANN_ERR_INVALID_ARGUMENT, "background");
    require_ok(dann_adapter_stop(a.get()));
}

TEST_CASE("run on the caller's thread is refused while the background thread runs") {
    Model m = moons_model(3, 10);
    dann_adapter_params p = moons_params();
    p.background = 1;
    p.min_new_samples = 1u << 20; // the thread never starts a round here
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    require_ok(dann_adapter_start(a.get()));
    CHECK(stats(a.get()).running == 1);
    expect_error(dann_adapter_run(a.get(), 1), DANN_ERR_INVALID_ARGUMENT, "running");
    require_ok(dann_adapter_stop(a.get()));
    CHECK(stats(a.get()).running == 0);
    require_ok(dann_adapter_run(a.get(), 1));
}

// ===========================================================================
// Adaptation

TEST_CASE("DANN rounds on the rotated moons raise target accuracy and count steps, rounds and snapshots") {
    Model m = moons_model();
    const auto &d = moons().sets;
    Context plain = context(m.get());
    const float before = accuracy(plain.get(), d.test_x, d.test_y);

    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    Context ac = adapter_context(a.get());
    CHECK(accuracy(ac.get(), d.test_x, d.test_y) == before);
    require_ok(dann_adapter_run(a.get(), 20));
    const float after = accuracy(ac.get(), d.test_x, d.test_y);
    INFO("target test accuracy ", before, " -> ", after);
    CHECK(after >= before + 0.05f);

    const dann_adapter_stats s = stats(a.get());
    CHECK(s.rounds == 20);
    CHECK(s.snapshots + s.guard_events == 20);
    CHECK(s.snapshots >= 1);
    CHECK(s.steps == 20 * p.steps_per_round);
    CHECK(s.samples_pushed == d.target_y.size());
    CHECK(s.running == 0);
    CHECK(std::isfinite(s.label_loss));
    CHECK(s.domain_loss > 0.0f);
    CHECK(s.domain_accuracy >= 0.0f);
    CHECK(s.domain_accuracy <= 1.0f);
    CHECK(s.replay_accuracy >= s.reference_replay_accuracy - p.guard_max_replay_drop);
    CHECK(s.class_entropy > 0.5f);
    CHECK(s.drift >= 0.0f);
    CHECK(s.drift <= 1.0f);
}

TEST_CASE("adapting changes only the adapter's copy, never the model it was created from") {
    Model m = moons_model();
    const Params before = all_params(m.get());
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    require_ok(dann_adapter_run(a.get(), 2));
    CHECK(all_params(m.get()) == before);
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) != before);
}

TEST_CASE("an absurd learning rate is caught by the guard and the published weights stay") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.lr = 1e3f;
    p.lambda = 10.0f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    Context ac = adapter_context(a.get());
    const dann_batch probe = Moons::batch(moons().sets.test_x, 0, 200);
    const std::vector<float> published = predict(ac.get(), probe, 2);
    const Params weights = all_params(m.get());

    require_ok(dann_adapter_run(a.get(), 3));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.rounds == 3);
    CHECK(s.guard_events == 3);
    CHECK(s.snapshots == 0);
    INFO("reason ", static_cast<int>(s.last_guard_reason));
    CHECK((s.last_guard_reason == DANN_GUARD_REPLAY_DROP ||
           s.last_guard_reason == DANN_GUARD_NONFINITE));
    CHECK(predict(ac.get(), probe, 2) == published);
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) == weights);
}

TEST_CASE("a non-finite step is a NONFINITE guard event, not an error") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.train.optimizer = DANN_OPTIMIZER_SGD;
    p.train.momentum = 0.0f;
    p.lr = 3e38f; // the first update overflows the weights
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    const Params weights = all_params(m.get());
    require_ok(dann_adapter_run(a.get(), 2));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.guard_events == 2);
    CHECK(s.last_guard_reason == DANN_GUARD_NONFINITE);
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) == weights);
}

// The label loss on a replay set labelled 0 only pushes every prediction
// towards class 0: the entropy of the predicted classes on the target falls.
void set_one_class_replay(dann_model *m) {
    const auto &d = moons().sets;
    std::vector<float> upper;
    for (size_t i = 0; i < d.source_y.size(); ++i)
        if (d.source_y[i] == 0) upper.insert(upper.end(), {d.source_x[2 * i], d.source_x[2 * i + 1]});
    const std::vector<int32_t> zeros(upper.size() / 2, 0);
    const dann_batch rb = dann_batch_f32_nchw(upper.data(), zeros.size(), 2, 1, 1);
    require_ok(dann_model_set_replay(m, &rb, zeros.data()));
}

// Normalised entropy of the classes `m` predicts for target samples [first, first + n).
float target_class_entropy(const dann_model *m, size_t first, size_t n) {
    Context c = context(m);
    const std::vector<float> p = predict(c.get(), Moons::batch(moons().sets.target_x, first, n), 2);
    double ones = 0.0;
    for (size_t i = 0; i < n; ++i) ones += p[2 * i + 1] > p[2 * i] ? 1.0 : 0.0;
    double h = 0.0;
    for (double q : {ones / static_cast<double>(n), 1.0 - ones / static_cast<double>(n)})
        if (q > 0.0) h -= q * std::log(q);
    return static_cast<float>(h / std::log(2.0));
}

TEST_CASE("a collapse of the predicted classes is caught by the guard and rolled back") {
    Model m = moons_model();
    set_one_class_replay(m.get());
    dann_adapter_params p = moons_params();
    p.lr = 5e-2f;
    p.steps_per_round = 50;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    const Params weights = all_params(m.get());
    require_ok(dann_adapter_run(a.get(), 1));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.guard_events == 1);
    CHECK(s.last_guard_reason == DANN_GUARD_CLASS_COLLAPSE);
    CHECK(s.snapshots == 0);
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) == weights);
}

TEST_CASE("guard_min_class_entropy bounds the class entropy against the committed model's on the same samples") {
    Model m = moons_model();
    set_one_class_replay(m.get());
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    p.steps_per_round = 20;
    // The guard looks at the 64 most recent of the 300 target samples.
    const size_t first = 300 - p.guard_samples;
    const float committed = target_class_entropy(m.get(), first, p.guard_samples);
    REQUIRE(committed > 0.9f);

    p.guard_min_class_entropy = 0.5f;
    Adapter lenient = adapter(m.get(), p);
    push_target(lenient.get());
    require_ok(dann_adapter_run(lenient.get(), 1));
    const dann_adapter_stats sl = stats(lenient.get());
    REQUIRE(sl.snapshots == 1);
    // The round lowered the entropy, by less than half.
    Model snap = snapshot_of(lenient.get(), m.get());
    const float adapted = target_class_entropy(snap.get(), first, p.guard_samples);
    CHECK(sl.class_entropy == doctest::Approx(adapted));
    CHECK(adapted < committed);
    CHECK(adapted >= 0.5f * committed);

    // The same round (same samples, same draws) with a ratio of 1: any fall fails.
    p.guard_min_class_entropy = 1.0f;
    Adapter strict = adapter(m.get(), p);
    push_target(strict.get());
    require_ok(dann_adapter_run(strict.get(), 1));
    const dann_adapter_stats ss = stats(strict.get());
    CHECK(ss.guard_events == 1);
    CHECK(ss.last_guard_reason == DANN_GUARD_CLASS_COLLAPSE);
    CHECK(ss.snapshots == 0);
}

TEST_CASE("rollback returns to the weights of creation, then of the last commit, and publishes them") {
    Model m = moons_model();
    const Params original = all_params(m.get());
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    Context ac = adapter_context(a.get());
    const dann_batch probe = Moons::batch(moons().sets.test_x, 0, 100);
    const std::vector<float> original_probs = predict(ac.get(), probe, 2);

    require_ok(dann_adapter_run(a.get(), 2));
    REQUIRE(stats(a.get()).snapshots >= 1);
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) != original);
    const uint64_t snapshots = stats(a.get()).snapshots;
    require_ok(dann_adapter_rollback(a.get()));
    CHECK(stats(a.get()).snapshots == snapshots + 1);
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) == original);
    CHECK(predict(ac.get(), probe, 2) == original_probs);

    require_ok(dann_adapter_run(a.get(), 2));
    require_ok(dann_adapter_commit(a.get()));
    const Params committed = all_params(snapshot_of(a.get(), m.get()).get());
    CHECK(committed != original);
    require_ok(dann_adapter_run(a.get(), 2));
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) != committed);
    require_ok(dann_adapter_rollback(a.get()));
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) == committed);
}

TEST_CASE("commit makes the current snapshot the guard's reference") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    const float initial_reference = stats(a.get()).reference_replay_accuracy;
    CHECK(initial_reference == stats(a.get()).replay_accuracy);
    require_ok(dann_adapter_run(a.get(), 3));
    require_ok(dann_adapter_commit(a.get()));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.reference_replay_accuracy == s.replay_accuracy);
    // The reference is measured on the committed weights: a plain context on
    // the snapshot agrees on the guard's replay samples.
    Model snap = snapshot_of(a.get(), m.get());
    Context c = context(snap.get());
    const auto &d = moons().sets;
    std::vector<float> first(d.source_x.begin(), d.source_x.begin() + 2 * 64);
    std::vector<uint8_t> labels(d.source_y.begin(), d.source_y.begin() + 64);
    CHECK(s.reference_replay_accuracy == doctest::Approx(accuracy(c.get(), first, labels)));
}

TEST_CASE("get_model copies the snapshot with the input normalisation and the replay set, and checks the architecture") {
    Model m = moons_model();
    Adapter a = adapter(m.get(), moons_params());
    dann_model *raw = nullptr;
    require_ok(dann_model_create_mlp(2, kMoonsHidden, 2, 99, &raw));
    Model fresh(raw);
    require_ok(dann_adapter_get_model(a.get(), fresh.get()));
    CHECK(all_params(fresh.get()) == all_params(m.get()));
    dann_replay_info ri, want;
    require_ok(dann_model_replay_info(fresh.get(), &ri));
    require_ok(dann_model_replay_info(m.get(), &want));
    CHECK(ri.n == want.n);
    CHECK(ri.bytes == want.bytes);

    require_ok(dann_model_create_mlp(2, kMoonsHidden + 1, 2, 99, &raw));
    Model other(raw);
    const Params other_before = all_params(other.get());
    expect_error(dann_adapter_get_model(a.get(), other.get()), DANN_ERR_INVALID_ARGUMENT, "architecture");
    CHECK(all_params(other.get()) == other_before);
}

TEST_CASE("an adapter context predicts bit for bit as a plain context on the published weights") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    Context ac = adapter_context(a.get());
    const dann_batch probe = Moons::batch(moons().sets.test_x, 0, 333);
    for (int round = 0; round < 3; ++round) {
        Model snap = snapshot_of(a.get(), m.get());
        Context plain = context(snap.get());
        std::vector<float> dom_a, dom_p;
        CHECK(predict(ac.get(), probe, 2, &dom_a) == predict(plain.get(), probe, 2, &dom_p));
        CHECK(dom_a == dom_p);
        std::vector<float> fa(333 * kMoonsHidden), fp(fa.size());
        require_ok(dann_features(ac.get(), &probe, fa.data(), fa.size()));
        require_ok(dann_features(plain.get(), &probe, fp.data(), fp.size()));
        CHECK(fa == fp);
        require_ok(dann_adapter_run(a.get(), 1));
    }
    CHECK(stats(a.get()).snapshots >= 1);
}

TEST_CASE("an adapter context made after rounds starts from the latest snapshot") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    require_ok(dann_adapter_run(a.get(), 2));
    Context ac = adapter_context(a.get());
    Model snap = snapshot_of(a.get(), m.get());
    Context plain = context(snap.get());
    const dann_batch probe = Moons::batch(moons().sets.test_x, 0, 50);
    CHECK(predict(ac.get(), probe, 2) == predict(plain.get(), probe, 2));
}

// ===========================================================================
// Batch-norm mode and image formats

dann_model_desc tiny_conv_desc(std::vector<dann_layer_desc> &f, std::vector<dann_layer_desc> &l,
                               std::vector<dann_layer_desc> &d, bool batchnorm) {
    f = {dann_layer_conv2d(4, 3, 1, 1)};
    if (batchnorm) f.push_back(dann_layer_batchnorm());
    f.push_back(dann_layer_relu());
    f.push_back(dann_layer_maxpool2d(2, 2, 0));
    l = {dann_layer_dense(8), dann_layer_relu(), dann_layer_dense(3)};
    d = {dann_layer_dense(1)};
    dann_model_desc desc{};
    desc.in_channels = 3;
    desc.in_height = 6;
    desc.in_width = 6;
    desc.features = f.data();
    desc.n_features = f.size();
    desc.label_head = l.data();
    desc.n_label_head = l.size();
    desc.domain_head = d.data();
    desc.n_domain_head = d.size();
    return desc;
}

std::vector<uint8_t> pixels(size_t n, uint64_t seed, int lo = 0, int hi = 255) {
    std::vector<uint8_t> v(n);
    uint64_t s = seed;
    for (uint8_t &x : v) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x = static_cast<uint8_t>(lo + static_cast<int>((s >> 33) % static_cast<uint64_t>(hi - lo + 1)));
    }
    return v;
}

TEST_CASE("BATCHNORM mode re-estimates the statistics from the ring as dann_trainer_adapt_batchnorm does") {
    std::vector<dann_layer_desc> f, l, d;
    dann_model *raw = nullptr;
    const dann_model_desc desc = tiny_conv_desc(f, l, d, true);
    require_ok(dann_model_create(&desc, 5, &raw));
    Model m(raw);
    require_ok(dann_model_set_threads(m.get(), 1));
    dann_adapter_params p = dann_adapter_params_default();
    p.mode = DANN_ADAPT_BATCHNORM; // no replay set needed
    p.target_batch = 16;
    p.capacity = 64;
    p.channels = 1;
    p.guard_samples = 40;
    p.guard_min_class_entropy = 0.0f;
    p.background = 0;
    Adapter a = adapter(m.get(), p);
    // 70 gray samples: the ring keeps the last 64, four batches of 16.
    const std::vector<uint8_t> gray = pixels(70 * 36, 11, 100, 220);
    const dann_batch b = dann_batch_u8_hwc(gray.data(), 70, 6, 6, 1);
    require_ok(dann_adapter_push(a.get(), &b));
    require_ok(dann_adapter_run(a.get(), 1));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.rounds == 1);
    CHECK(s.steps == 0);
    CHECK(s.snapshots == 1);

    dann_model *ref_raw = nullptr;
    require_ok(dann_model_clone(m.get(), &ref_raw));
    Model ref(ref_raw);
    dann_trainer *t = nullptr;
    const dann_train_params tp = dann_train_params_default();
    require_ok(dann_trainer_create(ref.get(), &tp, &t));
    Trainer trainer(t);
    const dann_batch last = dann_batch_u8_hwc(gray.data() + 6 * 36, 64, 6, 6, 1);
    require_ok(dann_trainer_adapt_batchnorm(trainer.get(), &last, 16));

    const Params got = all_params(snapshot_of(a.get(), m.get()).get());
    const Params want = all_params(ref.get());
    const Params old = all_params(m.get());
    size_t rm = 0;
    require_ok(dann_model_param_find(m.get(), "features.1.running_mean", &rm));
    CHECK(got[rm] != old[rm]);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i)
        for (size_t k = 0; k < got[i].size(); ++k) CHECK(got[i][k] == doctest::Approx(want[i][k]).epsilon(1e-5));
}

TEST_CASE("DANN mode runs on a conv net with gray uint8 pushes and a colour uint8 replay set") {
    std::vector<dann_layer_desc> f, l, d;
    dann_model *raw = nullptr;
    const dann_model_desc desc = tiny_conv_desc(f, l, d, false);
    require_ok(dann_model_create(&desc, 5, &raw));
    Model m(raw);
    require_ok(dann_model_set_threads(m.get(), 1));
    const std::vector<uint8_t> replay = pixels(48 * 108, 3);
    std::vector<int32_t> labels(48);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 3);
    const dann_batch rb = dann_batch_u8_hwc(replay.data(), 48, 6, 6, 3);
    require_ok(dann_model_set_replay(m.get(), &rb, labels.data()));
    dann_adapter_params p = dann_adapter_params_default();
    p.source_batch = 8;
    p.target_batch = 8;
    p.steps_per_round = 3;
    p.capacity = 32;
    p.channels = 1;
    p.guard_samples = 20;
    p.guard_max_replay_drop = 1.0f;
    p.guard_min_class_entropy = 0.0f;
    p.lr = 1e-3f;
    p.background = 0;
    Adapter a = adapter(m.get(), p);
    const std::vector<uint8_t> gray = pixels(40 * 36, 9);
    const dann_batch b = dann_batch_u8_hwc(gray.data(), 40, 6, 6, 1);
    require_ok(dann_adapter_push(a.get(), &b));
    require_ok(dann_adapter_run(a.get(), 2));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.steps == 6);
    CHECK(s.snapshots == 2);
    Context ac = adapter_context(a.get());
    Model snap = snapshot_of(a.get(), m.get());
    Context plain = context(snap.get());
    CHECK(predict(ac.get(), b, 3) == predict(plain.get(), b, 3));
}

// ===========================================================================
// Drift score

// 1 input -> 1 sigmoid unit; the domain logit 4 h - 2 grows with the input.
Model monotonic_domain_model() {
    dann_model *raw = nullptr;
    require_ok(dann_model_create_mlp(1, 1, 2, 1, &raw));
    Model m(raw);
    set_param(m.get(), "features.0.weight", {1.0f});
    set_param(m.get(), "features.0.bias", {0.0f});
    set_param(m.get(), "domain_head.0.weight", {4.0f});
    set_param(m.get(), "domain_head.0.bias", {-2.0f});
    return m;
}

float drift(dann_context *c, const std::vector<float> &recent, const std::vector<float> *reference) {
    const dann_batch r = dann_batch_f32_nchw(recent.data(), recent.size(), 1, 1, 1);
    dann_batch f{};
    if (reference) f = dann_batch_f32_nchw(reference->data(), reference->size(), 1, 1, 1);
    float score = -1.0f;
    require_ok(dann_drift_score(c, &r, reference ? &f : nullptr, &score));
    return score;
}

TEST_CASE("the drift score is 2 AUC - 1 of the domain head's outputs, clamped at 0") {
    Model m = monotonic_domain_model();
    Context c = context(m.get());
    const std::vector<float> high = {1.0f, 2.0f, 3.0f}, low = {-1.0f, -2.0f, -3.0f};
    CHECK(drift(c.get(), high, &low) == 1.0f);
    CHECK(drift(c.get(), low, &high) == 0.0f); // AUC 0, clamped
    CHECK(drift(c.get(), high, &high) == 0.0f); // all pairs: 3 ties and 3 + 3 wins and losses
    const std::vector<float> r = {0.0f, 2.0f}, f = {1.0f, -1.0f};
    CHECK(drift(c.get(), r, &f) == 0.5f); // 3 of 4 pairs: AUC 0.75
    const std::vector<float> ties = {0.5f, 0.5f, 3.0f}, ref = {0.5f};
    CHECK(drift(c.get(), ties, &ref) == doctest::Approx(2.0 * (2.0 / 3.0) - 1.0)); // (0.5 + 0.5 + 1) / 3
}

TEST_CASE("the drift score matches a scalar AUC over every pair on random inputs") {
    dann_model *raw = nullptr;
    require_ok(dann_model_create_mlp(2, 6, 3, 17, &raw));
    Model m(raw);
    Context c = context(m.get());
    std::vector<float> recent(2 * 57), reference(2 * 41);
    uint64_t s = 5;
    for (auto *v : {&recent, &reference})
        for (float &x : *v) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x = static_cast<float>((s >> 40) % 1000) / 250.0f - (v == &recent ? 1.0f : 2.0f);
        }
    const dann_batch rb = dann_batch_f32_nchw(recent.data(), 57, 2, 1, 1);
    const dann_batch fb = dann_batch_f32_nchw(reference.data(), 41, 2, 1, 1);
    std::vector<float> pr, pf;
    predict(c.get(), rb, 3, &pr);
    predict(c.get(), fb, 3, &pf);
    double wins = 0.0;
    for (float a : pr)
        for (float b : pf) wins += a > b ? 1.0 : a == b ? 0.5 : 0.0;
    const double auc = wins / (57.0 * 41.0);
    const double want = std::clamp(2.0 * auc - 1.0, 0.0, 1.0);
    float score = -1.0f;
    require_ok(dann_drift_score(c.get(), &rb, &fb, &score));
    CHECK(score == doctest::Approx(want).epsilon(1e-6));

    require_ok(dann_drift_score(c.get(), &rb, nullptr, &score));
    double mean = 0.0;
    for (float a : pr) mean += static_cast<double>(a);
    CHECK(score == doctest::Approx(mean / 57.0).epsilon(1e-5));
}

TEST_CASE("without a reference the drift score is the mean P(target)") {
    Model m = monotonic_domain_model();
    set_param(m.get(), "domain_head.0.weight", {0.0f});
    set_param(m.get(), "domain_head.0.bias", {std::log(0.2f / 0.8f)});
    Context c = context(m.get());
    CHECK(drift(c.get(), {-3.0f, 0.0f, 7.0f}, nullptr) == doctest::Approx(0.2));
}

TEST_CASE("dann_drift_score rejects NULL arguments and batches of the wrong shape") {
    Model m = monotonic_domain_model();
    Context c = context(m.get());
    const float x[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    const dann_batch ok = dann_batch_f32_nchw(x, 4, 1, 1, 1);
    const dann_batch wide = dann_batch_f32_nchw(x, 2, 1, 1, 2);
    const dann_batch empty = dann_batch_f32_nchw(x, 0, 1, 1, 1);
    float score = 0.0f;
    expect_error(dann_drift_score(nullptr, &ok, &ok, &score), DANN_ERR_INVALID_ARGUMENT, "ctx");
    expect_error(dann_drift_score(c.get(), nullptr, &ok, &score), DANN_ERR_INVALID_ARGUMENT, "recent");
    expect_error(dann_drift_score(c.get(), &ok, &ok, nullptr), DANN_ERR_INVALID_ARGUMENT, "score");
    expect_error(dann_drift_score(c.get(), &wide, &ok, &score), DANN_ERR_SHAPE, "recent");
    expect_error(dann_drift_score(c.get(), &ok, &wide, &score), DANN_ERR_SHAPE, "reference");
    expect_error(dann_drift_score(c.get(), &empty, nullptr, &score), DANN_ERR_SHAPE, "recent");
    std::vector<float> nan(x, x + 4);
    nan[1] = std::numeric_limits<float>::quiet_NaN();
    const dann_batch bad = dann_batch_f32_nchw(nan.data(), 4, 1, 1, 1);
    expect_error(dann_drift_score(c.get(), &ok, &bad, &score), DANN_ERR_NUMERIC, "sample 1");
}

TEST_CASE("the adapter's drift uses the last commit's domain head on recent samples against the replay set") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.guard_samples = 300;
    Adapter a = adapter(m.get(), p);
    push_target(a.get(), 0, 300);
    require_ok(dann_adapter_run(a.get(), 1));
    // The committed model is the original one: dann_drift_score on it.
    Context c = context(m.get());
    const dann_batch recent = Moons::batch(moons().sets.target_x, 0, 300);
    const dann_batch reference = Moons::batch(moons().sets.source_x, 0, 300);
    float want = -1.0f;
    require_ok(dann_drift_score(c.get(), &recent, &reference, &want));
    CHECK(stats(a.get()).drift == doctest::Approx(want).epsilon(1e-6));
}

} // TEST_SUITE("adapter")

TEST_SUITE("threads") {

TEST_CASE("three threads predicting through adapter contexts while the adapter's thread adapts each see whole published snapshots") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    p.background = 1;
    p.min_new_samples = 40;
    Adapter a = adapter(m.get(), p);
    const dann_batch probe = Moons::batch(moons().sets.test_x, 0, 64);

    // What each reader saw: every result that differs from its previous one,
    // and the snapshot versions its context ran.
    struct Seen {
        std::vector<std::vector<float>> results;
        uint64_t calls = 0, last_version = 0;
        bool versions_increase = true, rows_sum_to_one = true;
        dann_status status = DANN_OK;
        std::string error;
    };
    constexpr int kReaders = 3;
    std::vector<Seen> seen(kReaders);
    std::vector<Context> contexts;
    for (int r = 0; r < kReaders; ++r) {
        contexts.push_back(adapter_context(a.get()));
        // Plans built here, before the threads: oneDNN's primitive cache then
        // serves no creation racing on other threads (its own locking is not
        // visible to ThreadSanitizer).
        predict(contexts.back().get(), probe, 2);
    }
    std::atomic<bool> done{false};
    std::vector<std::thread> readers;
    for (int r = 0; r < kReaders; ++r)
        readers.emplace_back([&, r] {
            Seen &s = seen[static_cast<size_t>(r)];
            dann_context *ctx = contexts[static_cast<size_t>(r)].get();
            std::vector<float> probs(probe.n * 2);
            while (!done.load()) {
                s.status = dann_predict(ctx, &probe, probs.data(), probs.size(), nullptr, 0);
                if (s.status != DANN_OK) {
                    s.error = dann_last_error();
                    return;
                }
                ++s.calls;
                const uint64_t v = ctx->impl->snapshot_version();
                s.versions_increase = s.versions_increase && v >= s.last_version;
                s.last_version = v;
                for (size_t i = 0; i < probe.n; ++i) {
                    const float sum = probs[2 * i] + probs[2 * i + 1];
                    if (!(std::fabs(sum - 1.0f) < 1e-5f)) s.rows_sum_to_one = false;
                }
                if (s.results.empty() || s.results.back() != probs) s.results.push_back(probs);
            }
        });

    // Rounds one at a time: push min_new_samples samples, wait for the round,
    // and keep the snapshot it left.
    std::vector<Model> snapshots;
    snapshots.push_back(snapshot_of(a.get(), m.get()));
    require_ok(dann_adapter_start(a.get()));
    constexpr int kRounds = 6;
    bool rounds_finished = true;
    for (int k = 0; k < kRounds && rounds_finished; ++k) {
        push_target(a.get(), static_cast<size_t>(k) * p.min_new_samples, p.min_new_samples);
        rounds_finished = wait_rounds(a.get(), static_cast<uint64_t>(k + 1));
        snapshots.push_back(snapshot_of(a.get(), m.get()));
        // Let the readers see this snapshot for a while.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    done.store(true);
    for (std::thread &t : readers) t.join();
    REQUIRE(rounds_finished);
    require_ok(dann_adapter_stop(a.get()));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.rounds == kRounds);
    CHECK(s.running == 0);
    CHECK(s.snapshots >= 1);

    // Every result a reader saw is the prediction of one published snapshot.
    std::vector<std::vector<float>> expected;
    for (const Model &snap : snapshots) {
        Context c = context(snap.get());
        expected.push_back(predict(c.get(), probe, 2));
    }
    for (int r = 0; r < kReaders; ++r) {
        const Seen &rs = seen[static_cast<size_t>(r)];
        INFO("reader ", r, ": ", rs.calls, " calls, ", rs.results.size(), " distinct results, error ", rs.error);
        CHECK(rs.status == DANN_OK);
        CHECK(rs.calls > 0);
        CHECK(rs.versions_increase);
        CHECK(rs.rows_sum_to_one);
        CHECK(rs.last_version <= 1 + s.snapshots);
        for (const std::vector<float> &result : rs.results)
            CHECK(std::find(expected.begin(), expected.end(), result) != expected.end());
    }
}

// Rounds here start when samples arrive, not back to back: a waiting commit
// or rollback gets its turn when the round in progress ends.
TEST_CASE("commit and rollback while the adapter's thread runs take effect between its rounds") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.lr = 1e-2f;
    p.background = 1;
    p.min_new_samples = 40;
    Adapter a = adapter(m.get(), p);
    const Params created = all_params(m.get());
    require_ok(dann_adapter_start(a.get()));
    push_target(a.get(), 0, 80);
    REQUIRE(wait_rounds(a.get(), 1));
    const dann_adapter_stats first = stats(a.get());
    require_ok(dann_adapter_commit(a.get())); // the thread waits for samples
    const Params committed = all_params(snapshot_of(a.get(), m.get()).get());
    CHECK((committed != created) == (first.snapshots == 1));
    push_target(a.get(), 80, 40);               // a round starts
    require_ok(dann_adapter_rollback(a.get())); // before or after it, never within
    REQUIRE(wait_rounds(a.get(), 2));
    push_target(a.get(), 120, 40);
    REQUIRE(wait_rounds(a.get(), 3));
    require_ok(dann_adapter_stop(a.get()));
    const dann_adapter_stats s = stats(a.get());
    CHECK(s.rounds == 3);
    CHECK(s.running == 0);
    require_ok(dann_adapter_rollback(a.get()));
    CHECK(all_params(snapshot_of(a.get(), m.get()).get()) == committed);
}

TEST_CASE("commit and rollback are not starved by back-to-back rounds") {
    // With min_new_samples = 0 the thread starts a round as soon as the last
    // one ends; a waiting commit or rollback goes before the next one, so at
    // most the round in progress and one more (counted as the call begins)
    // pass while it waits.
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.background = 1;
    p.min_new_samples = 0;
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    require_ok(dann_adapter_start(a.get()));
    REQUIRE(wait_rounds(a.get(), 2));
    for (int i = 0; i < 4; ++i) {
        const uint64_t before = stats(a.get()).rounds;
        require_ok(i % 2 ? dann_adapter_rollback(a.get()) : dann_adapter_commit(a.get()));
        CHECK(stats(a.get()).rounds - before <= 2);
    }
    require_ok(dann_adapter_stop(a.get()));
}

TEST_CASE("destroying an adapter whose thread is running waits for the round and joins it") {
    Model m = moons_model();
    dann_adapter_params p = moons_params();
    p.background = 1;
    p.min_new_samples = 0; // rounds back to back
    Adapter a = adapter(m.get(), p);
    push_target(a.get());
    require_ok(dann_adapter_start(a.get()));
    CHECK(wait_rounds(a.get(), 3));
    push_target(a.get(), 0, 10);
    a.reset();
    CHECK(true);
}

} // TEST_SUITE("threads")
