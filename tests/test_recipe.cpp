// The training recipes of the tool (tools/dann/recipe.hpp, docs/recipes.md):
// the paper's schedules, bitwise determinism and resuming, target labels never
// read, and a short two-moons run that adapts.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "../tools/dann/recipe.hpp"
#include "data/moons.hpp"
#include "test_size.hpp"

using dann::tool::Dataset;
using dann::tool::Hooks;
using dann::tool::LogRow;
using dann::tool::Mode;
using dann::tool::RecipeConfig;
using dann::tool::RecipeKind;

namespace {

using ModelPtr = std::unique_ptr<dann_model, void (*)(dann_model *)>;

ModelPtr run(const RecipeConfig &config, const Dataset &source, const Dataset *target,
             const Hooks &hooks = Hooks{}) {
    return ModelPtr(dann::tool::train(config, source, target, hooks), dann_model_destroy);
}

// Every parameter (running statistics included), in order.
std::vector<std::vector<float>> parameters(const dann_model *model) {
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < dann_model_param_count(model); ++i) {
        dann_param_info info;
        REQUIRE(dann_model_param_info(model, i, &info) == DANN_OK);
        out.emplace_back(info.numel);
        REQUIRE(dann_model_param_get(model, i, out.back().data(), info.numel) == DANN_OK);
    }
    return out;
}

// Bitwise: a NaN equals itself, +0 differs from -0.
bool bitwise_equal(const dann_model *a, const dann_model *b) {
    const auto pa = parameters(a), pb = parameters(b);
    if (pa.size() != pb.size()) return false;
    for (size_t i = 0; i < pa.size(); ++i) {
        if (pa[i].size() != pb[i].size()) return false;
        if (std::memcmp(pa[i].data(), pb[i].data(), pa[i].size() * sizeof(float)) != 0)
            return false;
    }
    return true;
}

Dataset points(const std::vector<float> &xy, const std::vector<uint8_t> &labels) {
    Dataset d;
    d.format = DANN_INPUT_F32_NCHW;
    d.height = d.width = 1;
    d.channels = 2;
    d.n = xy.size() / 2;
    d.f32 = xy;
    d.labels.assign(labels.begin(), labels.end());
    return d;
}

// The target set comes unlabelled, and labelled for the oracle.
struct Moons {
    Dataset source, target, test, target_labelled;
};

Moons moons(uint64_t seed) {
    const dann::data::Moons m = dann::data::make_moons(35.0, 300, 0.05, seed, 1000);
    return {points(m.source_x, m.source_y), points(m.target_x, {}), points(m.test_x, m.test_y),
            points(m.target_x, m.target_y)};
}

// Small images: a grayscale source and a colour target whose classes are the
// brightness of a square, so that a few steps learn something.
Dataset images(size_t n, int channels, uint64_t seed) {
    Dataset d;
    d.height = d.width = 28;
    d.channels = channels;
    d.n = n;
    d.u8.resize(n * d.sample_size());
    d.labels.resize(n);
    uint64_t state = seed;
    const auto next = [&state] {
        state += 0x9E3779B97F4A7C15ull;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    for (size_t i = 0; i < n; ++i) {
        const int label = int(next() % 3);
        d.labels[i] = label;
        for (int y = 0; y < 28; ++y)
            for (int x = 0; x < 28; ++x)
                for (int c = 0; c < channels; ++c) {
                    const bool inside = y >= 8 && y < 20 && x >= 8 && x < 20;
                    const int base = inside ? 60 + 80 * label : 0;
                    d.u8[((i * 28 + size_t(y)) * 28 + size_t(x)) * size_t(channels) + size_t(c)] =
                        uint8_t(base + int(next() % 40) + (channels == 3 ? 40 * c : 0));
                }
    }
    return d;
}

// Images per domain for the image-network runs, and their batch (per domain):
// few at the tiny size, which qemu runs hundreds of times slower than the host.
constexpr size_t kImages = dann_test::by_size<size_t>(16, 64);

RecipeConfig image_config(RecipeKind recipe) {
    RecipeConfig c;
    c.arch = "mnist";
    c.recipe = recipe;
    c.steps = 12;
    c.batch = dann_test::by_size(2, 4);
    c.seed = 5;
    c.threads = 1;
    c.deterministic = true;
    return c;
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string &name)
        : path((std::filesystem::temp_directory_path() /
                ("dann-test-recipe-" + std::to_string(::getpid()) + "-" + name))
                   .string()) {}
    ~TempFile() {
        const auto dir = std::filesystem::path(path).parent_path();
        const std::string stem = std::filesystem::path(path).filename().string();
        std::error_code ec;
        for (const auto &e : std::filesystem::directory_iterator(dir, ec))
            if (e.path().filename().string().rfind(stem, 0) == 0)
                std::filesystem::remove(e.path(), ec);
    }
};

double accuracy(const dann_model *model, const Dataset &test) {
    return dann::tool::evaluate(model, test, DANN_DOMAIN_TARGET, 1);
}

} // namespace

TEST_SUITE("recipe") {

TEST_CASE("the learning-rate schedule is mu0 / (1 + alpha p)^beta") {
    for (const double p : {0.0, 0.1, 0.25, 0.5, 0.75, 1.0}) {
        const double want = 0.01 / std::pow(1.0 + 10.0 * p, 0.75);
        CHECK(double(dann_schedule_lr(float(p), 0.01f, 10.0f, 0.75f)) ==
              doctest::Approx(want).epsilon(1e-6));
    }
    CHECK(double(dann_schedule_lr(1.0f, 0.01f, 10.0f, 0.75f)) ==
          doctest::Approx(0.01 / std::pow(11.0, 0.75)).epsilon(1e-6));
}

TEST_CASE("the adaptation factor is 2 / (1 + exp(-gamma p)) - 1") {
    for (const double p : {0.0, 0.05, 0.1, 0.3, 0.5, 1.0}) {
        const double want = 2.0 / (1.0 + std::exp(-10.0 * p)) - 1.0;
        CHECK(double(dann_schedule_lambda(float(p), 10.0f)) == doctest::Approx(want).epsilon(1e-6));
    }
    CHECK(dann_schedule_lambda(0.0f, 10.0f) == 0.0f);
}

TEST_CASE("the paper recipe logs the paper's learning rate and lambda at every step") {
    const Moons m = moons(3);
    RecipeConfig c;
    c.arch = "mlp:15";
    c.recipe = RecipeKind::paper;
    c.steps = 50;
    c.threads = 1;
    std::vector<LogRow> rows;
    Hooks hooks;
    hooks.log_every = 1;
    hooks.log = [&](const LogRow &r) { rows.push_back(r); };
    run(c, m.source, &m.target, hooks);
    REQUIRE(rows.size() == 50);
    for (const LogRow &r : rows) {
        const double p = double(r.step - 1) / 50.0; // row k describes step k - 1 (0-based)
        CHECK(r.p == doctest::Approx(p));
        CHECK(r.lr == doctest::Approx(0.01 / std::pow(1.0 + 10.0 * p, 0.75)).epsilon(1e-6));
        CHECK(r.lambda == doctest::Approx(2.0 / (1.0 + std::exp(-10.0 * p)) - 1.0).epsilon(1e-6));
    }
}

TEST_CASE("the paper recipe trains the paper's MNIST network") {
    const Dataset src = images(32, 1, 1), tgt = images(32, 3, 2);
    RecipeConfig c = image_config(RecipeKind::paper);
    c.steps = 2;
    const ModelPtr m = run(c, src, &tgt);
    dann_model *preset = nullptr;
    REQUIRE(dann_model_create_preset(DANN_PRESET_MNIST, 1, &preset) == DANN_OK);
    const ModelPtr p(preset, dann_model_destroy);
    REQUIRE(dann_model_param_count(m.get()) == dann_model_param_count(p.get()));
    for (size_t i = 0; i < dann_model_param_count(p.get()); ++i) {
        dann_param_info a, b;
        REQUIRE(dann_model_param_info(m.get(), i, &a) == DANN_OK);
        REQUIRE(dann_model_param_info(p.get(), i, &b) == DANN_OK);
        CHECK(std::string(a.name) == b.name);
        CHECK(a.numel == b.numel);
    }
}

TEST_CASE("two moons runs with the same seed give bitwise-identical weights") {
    const Moons m = moons(4);
    for (const RecipeKind recipe : {RecipeKind::paper, RecipeKind::best}) {
        RecipeConfig c;
        c.arch = "mlp:15";
        c.recipe = recipe;
        c.steps = 200;
        c.threads = 1;
        c.deterministic = true;
        c.candidates = 2;
        c.self_train_rounds = 2;
        const ModelPtr a = run(c, m.source, &m.target), b = run(c, m.source, &m.target);
        CHECK(bitwise_equal(a.get(), b.get()));
        c.seed = 2;
        const ModelPtr other = run(c, m.source, &m.target);
        CHECK_FALSE(bitwise_equal(a.get(), other.get()));
    }
}

TEST_CASE("convolutional runs with the same seed give bitwise-identical weights") {
    const Dataset src = images(kImages, 1, 1), tgt = images(kImages, 3, 2);
    for (const RecipeKind recipe : {RecipeKind::paper, RecipeKind::best}) {
        const RecipeConfig c = image_config(recipe);
        const ModelPtr a = run(c, src, &tgt), b = run(c, src, &tgt);
        CHECK(bitwise_equal(a.get(), b.get()));
    }
}

TEST_CASE("a run resumed from a mid-way checkpoint ends bitwise where an uninterrupted one does") {
    const Dataset src = images(kImages, 1, 1), tgt = images(kImages, 3, 2);
    // The best recipe changes trainers (the entropy ramp, at steps 1, 2 and 4
    // of 12) and keeps a weight average beside each checkpoint: both must
    // survive the interruption (checkpoints at 5 and 10, cut off at 8).
    for (const RecipeKind recipe : {RecipeKind::paper, RecipeKind::best}) {
        CAPTURE(int(recipe));
        const RecipeConfig c = image_config(recipe);
        const ModelPtr whole = run(c, src, &tgt);

        TempFile ckpt("resume.ckpt");
        RecipeConfig first = c;
        first.checkpoint_path = ckpt.path;
        first.checkpoint_every = 5;
        Hooks cut;
        cut.progress = [](int64_t step, int64_t) {
            if (step == 8) throw std::runtime_error("cut off");
        };
        CHECK_THROWS_WITH(run(first, src, &tgt, cut), "cut off");
        REQUIRE(std::filesystem::exists(ckpt.path));

        RecipeConfig second = first;
        second.resume_path = ckpt.path;
        int64_t first_step = -1;
        Hooks watch;
        watch.progress = [&](int64_t step, int64_t) {
            if (first_step < 0) first_step = step;
        };
        const ModelPtr resumed = run(second, src, &tgt, watch);
        CHECK(first_step == 6); // steps 1-5 came from the checkpoint
        CHECK(bitwise_equal(whole.get(), resumed.get()));
    }
}

TEST_CASE("DANN never reads the target labels") {
    const Moons m = moons(5);
    Dataset labelled = m.target;
    labelled.labels.assign(labelled.n, 1); // wrong for half the points
    RecipeConfig c;
    c.arch = "mlp:15";
    c.steps = 200;
    c.threads = 1;
    c.candidates = 2;
    c.self_train_rounds = 2;
    const ModelPtr a = run(c, m.source, &m.target), b = run(c, m.source, &labelled);
    CHECK(bitwise_equal(a.get(), b.get()));
}

TEST_CASE("the target oracle trains on the target's labels") {
    const Moons m = moons(6);
    RecipeConfig c;
    c.arch = "mlp:15";
    c.mode = Mode::target_oracle;
    c.steps = 1500;
    c.threads = 1;
    const ModelPtr oracle = run(c, m.source, &m.target_labelled);
    CHECK(accuracy(oracle.get(), m.test) > 0.95);
}

TEST_CASE("DANN adapts to the rotated two moons where source-only training does not") {
    // The default recipe with fewer candidates. Full size: 3 candidates of
    // 6000 steps and 20 self-training rounds (about a second on the host);
    // tiny: 2 of 3000 steps and 5 rounds, a seventh of the work. Source-only
    // training reaches 0.77 to 0.82 on the rotated target. Rounding changes
    // the trajectory (each oneDNN ISA trains another one): of 140 short runs
    // (seeds 1-60 with AVX-512 kernels, 1-40 with AVX2 and with SSE4.1) all
    // but one reached 0.82 and 0.04 above source-only, hence the tiny size's
    // bounds; seed 11 reaches 0.86 to 0.90 on those three.
    const Moons m = moons(11);
    RecipeConfig c;
    c.arch = "mlp:15";
    c.steps = dann_test::by_size<int64_t>(3000, dann::tool::default_steps(c.arch, c.recipe));
    c.threads = 1;
    c.candidates = dann_test::by_size(2, 3);
    c.self_train_rounds = dann_test::by_size(5, -1);
    const double min_gain = dann_test::by_size(0.03, 0.08), min_accuracy = dann_test::by_size(0.8, 0.9);
    RecipeConfig s = c;
    s.mode = Mode::source_only;
    const ModelPtr adapting = run(c, m.source, &m.target);
    const ModelPtr source_only = run(s, m.source, nullptr);
    const double adapted = accuracy(adapting.get(), m.test);
    const double baseline = accuracy(source_only.get(), m.test);
    MESSAGE("rotated target: source only " << baseline << ", DANN " << adapted);
    CHECK(adapted > baseline + min_gain);
    CHECK(adapted > min_accuracy);
}

TEST_CASE("a checkpoint beyond the run's length is refused") {
    const Dataset src = images(32, 1, 1), tgt = images(32, 3, 2);
    TempFile ckpt("long.ckpt");
    RecipeConfig c = image_config(RecipeKind::paper);
    c.steps = 4;
    c.checkpoint_path = ckpt.path;
    run(c, src, &tgt);
    RecipeConfig shorter = c;
    shorter.steps = 2;
    shorter.resume_path = ckpt.path;
    CHECK_THROWS_AS(run(shorter, src, &tgt), std::runtime_error);
}

TEST_CASE("unknown architectures and missing target data are refused with a message") {
    const Moons m = moons(1);
    RecipeConfig c;
    c.arch = "resnet";
    CHECK_THROWS_WITH_AS(run(c, m.source, &m.target), doctest::Contains("unknown architecture"),
                         std::runtime_error);
    c.arch = "mlp:15";
    CHECK_THROWS_WITH_AS(run(c, m.source, nullptr), doctest::Contains("target"),
                         std::runtime_error);
}

} // TEST_SUITE("recipe")

TEST_SUITE("heavy") {

TEST_CASE("the default recipe reaches 0.95 on the rotated two moons") {
    const Moons m = moons(12);
    RecipeConfig c;
    c.arch = "mlp:15";
    c.steps = dann::tool::default_steps(c.arch, c.recipe);
    c.threads = 1;
    const ModelPtr model = run(c, m.source, &m.target);
    CHECK(accuracy(model.get(), m.test) > 0.95);
}

} // TEST_SUITE("heavy")
