// End-to-end benchmarks of the paper's three networks (PAPER.md: MNIST, SVHN,
// GTSRB; dann_preset): one DANN training step (64 source + 64 target, f32 and
// bf16), predictions at batch 1 and 256 (f32 and int8), and one adapter round
// (dann_adapter_run with one DANN step per round, then its guard). The network
// and the thread count are part of each name; FLOP/s counts multiply-adds as
// 2 FLOPs (bench/net_cost.hpp).
//
//   ./build/bench/dann_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   ./build/bench/dann_bench --benchmark_filter=MNIST         (one network)
//   DANN_BENCH_THREADS=1,2,4,8,16 ./build/bench/dann_bench      (other thread counts)
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "dann.h"
#include "bench_main.hpp"
#include "net_cost.hpp"

namespace {

// The presets, described here through the public API so that the FLOP
// counters can walk them; make_model() checks that each description matches
// its preset (feature width and trainable scalars).
const dann_layer_desc kMnistFeatures[] = {
    dann_layer_conv2d(32, 5, 1, 0), dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0),
    dann_layer_conv2d(48, 5, 1, 0), dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
const dann_layer_desc kMnistLabel[] = {dann_layer_dense(100), dann_layer_relu(), dann_layer_dense(100),
                                       dann_layer_relu(), dann_layer_dense(10)};
const dann_layer_desc kMnistDomain[] = {dann_layer_dense(100), dann_layer_relu(), dann_layer_dense(1)};

const dann_layer_desc kSvhnFeatures[] = {
    dann_layer_conv2d(64, 5, 1, 2), dann_layer_relu(), dann_layer_maxpool2d(3, 2, 1),
    dann_layer_conv2d(64, 5, 1, 2), dann_layer_relu(), dann_layer_maxpool2d(3, 2, 1),
    dann_layer_conv2d(128, 5, 1, 2), dann_layer_relu()};
const dann_layer_desc kSvhnLabel[] = {dann_layer_dense(3072), dann_layer_relu(), dann_layer_dropout(0.5f),
                                      dann_layer_dense(2048), dann_layer_relu(), dann_layer_dropout(0.5f),
                                      dann_layer_dense(10)};
const dann_layer_desc kSvhnDomain[] = {dann_layer_dense(1024), dann_layer_relu(), dann_layer_dropout(0.5f),
                                       dann_layer_dense(1024), dann_layer_relu(), dann_layer_dropout(0.5f),
                                       dann_layer_dense(1)};

const dann_layer_desc kGtsrbFeatures[] = {
    dann_layer_conv2d(96, 5, 1, 0),  dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0),
    dann_layer_conv2d(144, 3, 1, 0), dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0),
    dann_layer_conv2d(256, 5, 1, 0), dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
const dann_layer_desc kGtsrbLabel[] = {dann_layer_dense(512), dann_layer_relu(), dann_layer_dense(43)};
const dann_layer_desc kGtsrbDomain[] = {dann_layer_dense(1024), dann_layer_relu(), dann_layer_dense(1024),
                                        dann_layer_relu(), dann_layer_dense(1)};

template <size_t F, size_t L, size_t D>
dann_model_desc describe(int c, int h, int w, const dann_layer_desc (&f)[F], const dann_layer_desc (&l)[L],
                         const dann_layer_desc (&d)[D]) {
    dann_model_desc m{};
    m.in_channels = c;
    m.in_height = h;
    m.in_width = w;
    m.features = f;
    m.n_features = F;
    m.label_head = l;
    m.n_label_head = L;
    m.domain_head = d;
    m.n_domain_head = D;
    return m;
}

struct Net {
    const char *name;
    dann_preset preset;
    dann_model_desc desc;
    int classes;
};

const Net kNets[] = {
    {"MNIST", DANN_PRESET_MNIST, describe(3, 28, 28, kMnistFeatures, kMnistLabel, kMnistDomain), 10},
    {"SVHN", DANN_PRESET_SVHN, describe(3, 32, 32, kSvhnFeatures, kSvhnLabel, kSvhnDomain), 10},
    {"GTSRB", DANN_PRESET_GTSRB, describe(3, 40, 40, kGtsrbFeatures, kGtsrbLabel, kGtsrbDomain), 43},
};

// Inputs of one network's shape: n source and n target images in NCHW.
struct Data {
    std::vector<float> source, target;
    std::vector<int32_t> labels;
    Data(const Net &net, size_t n)
        : source(n * image_size(net)), target(n * image_size(net)), labels(n) {
        uint32_t s = 12345;
        auto next = [&] { s = s * 1664525u + 1013904223u; return static_cast<float>(s >> 8) / 16777216.0f; };
        for (auto &v : source) v = next() - 0.5f;
        for (auto &v : target) v = next() - 0.3f;
        for (size_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % static_cast<size_t>(net.classes));
    }
    static size_t image_size(const Net &net) {
        return static_cast<size_t>(net.desc.in_channels) * static_cast<size_t>(net.desc.in_height) *
               static_cast<size_t>(net.desc.in_width);
    }
    dann_batch batch(const Net &net, std::vector<float> &images, size_t n) const {
        return dann_batch_f32_nchw(images.data(), n, net.desc.in_channels, net.desc.in_height,
                                   net.desc.in_width);
    }
};

// The preset, checked against the description the FLOP counters walk.
dann_model *make_model(const Net &net, int threads, benchmark::State &state) {
    dann_model *m = nullptr;
    dann_model_info info{};
    if (dann_model_create_preset(net.preset, 7, &m) != DANN_OK || dann_model_set_threads(m, threads) != DANN_OK ||
        dann_model_get_info(m, &info) != DANN_OK) {
        state.SkipWithError(dann_last_error());
        dann_model_destroy(m);
        return nullptr;
    }
    const dann_bench::NetCost c = dann_bench::net_cost(net.desc);
    if (info.feature_size != c.feature.elems() || static_cast<double>(info.n_weights) != c.weights ||
        info.num_classes != net.classes) {
        state.SkipWithError("the benchmark's description of this network differs from its preset");
        dann_model_destroy(m);
        return nullptr;
    }
    return m;
}

double flops(const Net &net, double n, double ns, double nd, bool train) {
    return dann_bench::net_flops(dann_bench::net_cost(net.desc), n, ns, nd, train);
}

void dann_step(benchmark::State &state, const Net &net, dann_precision precision) {
    const int threads = static_cast<int>(state.range(0));
    const size_t n = 64;
    if (!dann_precision_supported(precision)) {
        state.SkipWithError("precision not supported on this CPU");
        return;
    }
    Data data(net, n);
    dann_model *m = make_model(net, threads, state);
    if (!m) return;
    dann_trainer *t = nullptr;
    dann_train_params tp = dann_train_params_default();
    tp.precision = precision;
    if (dann_trainer_create(m, &tp, &t) != DANN_OK) {
        state.SkipWithError(dann_last_error());
        dann_model_destroy(m);
        return;
    }
    dann_batch src = data.batch(net, data.source, n);
    dann_batch tgt = data.batch(net, data.target, n);
    dann_step_result r;
    // The first step builds the plan; it is not timed.
    if (dann_trainer_step(t, &src, data.labels.data(), &tgt, 0.1f, 1e-4f, &r) != DANN_OK) {
        state.SkipWithError(dann_last_error());
    }
    for (auto _ : state) {
        if (dann_trainer_step(t, &src, data.labels.data(), &tgt, 0.1f, 1e-4f, &r) != DANN_OK) {
            state.SkipWithError(dann_last_error());
            break;
        }
    }
    state.counters["FLOP/s"] = benchmark::Counter(flops(net, 128, 64, 128, true),
                                                  benchmark::Counter::kIsIterationInvariantRate);
    state.counters["img/s"] = benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}

// precision: F32, or INT8 (dann_context_quantize: u8/s8 activations, s8
// weights; AVX512-VNNI, AVX-VNNI or AMX, skipped elsewhere). The FLOP/s
// counter counts the same operations for both.
void predict(benchmark::State &state, const Net &net, dann_precision precision) {
    const int threads = static_cast<int>(state.range(0));
    const size_t n = static_cast<size_t>(state.range(1));
    if (!dann_precision_supported(precision)) {
        state.SkipWithError("precision not supported on this CPU");
        return;
    }
    Data data(net, n);
    dann_model *m = make_model(net, threads, state);
    if (!m) return;
    dann_context *ctx = nullptr;
    if (dann_context_create(m, &ctx) != DANN_OK) {
        state.SkipWithError(dann_last_error());
        dann_model_destroy(m);
        return;
    }
    std::vector<float> probs(n * static_cast<size_t>(net.classes));
    dann_batch b = data.batch(net, data.source, n);
    if (precision == DANN_PRECISION_INT8) {
        // Calibrated on 256 samples of the same distribution, not timed.
        Data calibration(net, 256);
        dann_batch cb = calibration.batch(net, calibration.target, 256);
        if (dann_context_quantize(ctx, &cb) != DANN_OK) state.SkipWithError(dann_last_error());
    }
    if (dann_predict(ctx, &b, probs.data(), probs.size(), nullptr, 0) != DANN_OK)
        state.SkipWithError(dann_last_error());
    for (auto _ : state) {
        if (dann_predict(ctx, &b, probs.data(), probs.size(), nullptr, 0) != DANN_OK) {
            state.SkipWithError(dann_last_error());
            break;
        }
    }
    const double nn = static_cast<double>(n);
    state.counters["FLOP/s"] = benchmark::Counter(flops(net, nn, nn, 0, false),
                                                  benchmark::Counter::kIsIterationInvariantRate);
    state.counters["img/s"] = benchmark::Counter(nn, benchmark::Counter::kIsIterationInvariantRate);
    dann_context_destroy(ctx);
    dann_model_destroy(m);
}

// One adapter round with steps_per_round = 1: a DANN step (64 replay + 64 ring
// samples, the adapter's default Adam), then the guard: the committed model on
// the 256 newest ring samples (with the domain head, for the drift score), the
// working model on the 256 replay samples and on the same ring samples, then a
// snapshot. FLOP/s counts the step and the guard's 768 forward passes.
void adapter_round(benchmark::State &state, const Net &net) {
    const int threads = static_cast<int>(state.range(0));
    constexpr size_t kReplay = 256, kRing = 512, kGuard = 256, kBatch = 64;
    const int c = net.desc.in_channels, h = net.desc.in_height, w = net.desc.in_width;
    const size_t image = Data::image_size(net);
    std::vector<uint8_t> replay(kReplay * image), ring(kRing * image);
    uint32_t s = 99;
    for (auto &v : replay) v = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
    for (auto &v : ring) v = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
    std::vector<int32_t> labels(kReplay);
    for (size_t i = 0; i < kReplay; ++i) labels[i] = static_cast<int32_t>(i % static_cast<size_t>(net.classes));
    dann_model *m = make_model(net, threads, state);
    if (!m) return;
    dann_batch rb = dann_batch_u8_hwc(replay.data(), kReplay, h, w, c);
    dann_adapter_params p = dann_adapter_params_default();
    p.steps_per_round = 1;
    p.source_batch = kBatch;
    p.target_batch = kBatch;
    p.guard_samples = kGuard;
    p.capacity = kRing;
    p.background = 0;
    dann_adapter *a = nullptr;
    if (dann_model_set_replay(m, &rb, labels.data()) != DANN_OK ||
        dann_adapter_create(m, &p, &a) != DANN_OK) {
        state.SkipWithError(dann_last_error());
        dann_model_destroy(m);
        return;
    }
    dann_batch tb = dann_batch_u8_hwc(ring.data(), kRing, h, w, c);
    if (dann_adapter_push(a, &tb) != DANN_OK || dann_adapter_run(a, 1) != DANN_OK)
        state.SkipWithError(dann_last_error());
    for (auto _ : state) {
        if (dann_adapter_run(a, 1) != DANN_OK) {
            state.SkipWithError(dann_last_error());
            break;
        }
    }
    const double guard = 3.0 * kGuard;
    const double f = flops(net, 2.0 * kBatch, kBatch, 2.0 * kBatch, true) + flops(net, guard, guard, kGuard, false);
    state.counters["FLOP/s"] = benchmark::Counter(f, benchmark::Counter::kIsIterationInvariantRate);
    dann_adapter_destroy(a);
    dann_model_destroy(m);
}

void by_threads(benchmark::internal::Benchmark *b) {
    b->ArgName("threads");
    for (const int64_t t : dann_bench::thread_counts()) b->Arg(t);
}

void by_threads_and_batch(benchmark::internal::Benchmark *b) {
    b->ArgNames({"threads", "batch"});
    for (const int64_t batch : {1, 256})
        for (const int64_t t : dann_bench::thread_counts()) b->Args({t, batch});
}

// Names as BM_<what>_<network>[_64x64]/threads:T[/batch:B]. bf16 steps
// (DANN_PRECISION_BF16: bf16 products, f32 master weights) and int8
// predictions are skipped on CPUs without them.
void register_all() {
    for (const Net &net : kNets) {
        const std::string n = net.name;
        const Net *p = &net;
        benchmark::RegisterBenchmark(("BM_AdapterRound_" + n).c_str(),
                                     [p](benchmark::State &st) { adapter_round(st, *p); })
            ->Apply(by_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
        benchmark::RegisterBenchmark(("BM_DannStep_" + n + "_64x64").c_str(),
                                     [p](benchmark::State &st) { dann_step(st, *p, DANN_PRECISION_F32); })
            ->Apply(by_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
        benchmark::RegisterBenchmark(("BM_DannStepBf16_" + n + "_64x64").c_str(),
                                     [p](benchmark::State &st) { dann_step(st, *p, DANN_PRECISION_BF16); })
            ->Apply(by_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
        benchmark::RegisterBenchmark(("BM_Predict_" + n).c_str(),
                                     [p](benchmark::State &st) { predict(st, *p, DANN_PRECISION_F32); })
            ->Apply(by_threads_and_batch)->Unit(benchmark::kMicrosecond)->UseRealTime();
        benchmark::RegisterBenchmark(("BM_PredictInt8_" + n).c_str(),
                                     [p](benchmark::State &st) { predict(st, *p, DANN_PRECISION_INT8); })
            ->Apply(by_threads_and_batch)->Unit(benchmark::kMicrosecond)->UseRealTime();
    }
}

} // namespace

int main(int argc, char **argv) { return dann_bench::run(argc, argv, register_all); }
