// End-to-end benchmarks of the paper's MNIST network: one DANN training step
// (64 source + 64 target), predictions at batch 1 and 256 (f32 and int8), and
// one adapter round (dann_adapter_run with one DANN step per round, then its
// guard). The thread count is part of each name; FLOP/s counts multiply-adds
// as 2 FLOPs.
//
//   ./build/bench/dann_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   DANN_BENCH_THREADS=1,2,4,8,16 ./build/bench/dann_bench      (other thread counts)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "dann.h"

namespace {

constexpr int kC = 3, kH = 28, kW = 28;

// FLOPs of the MNIST network (PAPER.md shapes) for n images through the
// features, ns through the label head and nd through the domain head.
// backward = 2 x forward for every layer but the first convolution, which
// needs no input gradient.
double mnist_flops(double n, double ns, double nd, bool train) {
    const double conv1 = 2.0 * n * 32 * 24 * 24 * 3 * 25;
    const double conv2 = 2.0 * n * 48 * 8 * 8 * 32 * 25;
    const double label = 2.0 * ns * (768.0 * 100 + 100.0 * 100 + 100.0 * 10);
    const double domain = 2.0 * nd * (768.0 * 100 + 100.0);
    if (!train) return conv1 + conv2 + label + domain;
    return conv1 * 2 + (conv2 + label + domain) * 3;
}

struct Data {
    std::vector<float> source, target;
    std::vector<int32_t> labels;
    explicit Data(size_t n) : source(n * kC * kH * kW), target(n * kC * kH * kW), labels(n) {
        uint32_t s = 12345;
        auto next = [&] { s = s * 1664525u + 1013904223u; return static_cast<float>(s >> 8) / 16777216.0f; };
        for (auto &v : source) v = next() - 0.5f;
        for (auto &v : target) v = next() - 0.3f;
        for (size_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % 10);
    }
};

dann_model *make_model(int threads, benchmark::State &state) {
    dann_model *m = nullptr;
    if (dann_model_create_preset(DANN_PRESET_MNIST, 7, &m) != DANN_OK ||
        dann_model_set_threads(m, threads) != DANN_OK) {
        state.SkipWithError(dann_last_error());
        return nullptr;
    }
    return m;
}

void dann_step(benchmark::State &state, dann_precision precision) {
    const int threads = static_cast<int>(state.range(0));
    const size_t n = 64;
    Data data(n);
    if (!dann_precision_supported(precision)) {
        state.SkipWithError("precision not supported on this CPU");
        return;
    }
    dann_model *m = make_model(threads, state);
    if (!m) return;
    dann_trainer *t = nullptr;
    dann_train_params tp = dann_train_params_default();
    tp.precision = precision;
    if (dann_trainer_create(m, &tp, &t) != DANN_OK) {
        state.SkipWithError(dann_last_error());
        dann_model_destroy(m);
        return;
    }
    dann_batch src = dann_batch_f32_nchw(data.source.data(), n, kC, kH, kW);
    dann_batch tgt = dann_batch_f32_nchw(data.target.data(), n, kC, kH, kW);
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
    state.counters["FLOP/s"] = benchmark::Counter(mnist_flops(128, 64, 128, true),
                                                  benchmark::Counter::kIsIterationInvariantRate);
    state.counters["img/s"] = benchmark::Counter(128, benchmark::Counter::kIsIterationInvariantRate);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}

void BM_DannStep_MNIST_64x64(benchmark::State &state) { dann_step(state, DANN_PRECISION_F32); }
// bf16 products, f32 master weights (DANN_PRECISION_BF16); skipped on CPUs
// without AVX512-BF16 or AMX. The FLOP/s counter counts the same operations.
void BM_DannStepBf16_MNIST_64x64(benchmark::State &state) {
    dann_step(state, DANN_PRECISION_BF16);
}

void predict(benchmark::State &state, dann_precision precision) {
    const int threads = static_cast<int>(state.range(0));
    const size_t n = static_cast<size_t>(state.range(1));
    Data data(n);
    if (!dann_precision_supported(precision)) {
        state.SkipWithError("precision not supported on this CPU");
        return;
    }
    dann_model *m = make_model(threads, state);
    if (!m) return;
    dann_context *ctx = nullptr;
    dann_context_create(m, &ctx);
    std::vector<float> probs(n * 10);
    dann_batch b = dann_batch_f32_nchw(data.source.data(), n, kC, kH, kW);
    if (precision == DANN_PRECISION_INT8) {
        // Calibrated on 256 samples of the same distribution, not timed.
        Data calibration(256);
        dann_batch cb = dann_batch_f32_nchw(calibration.target.data(), 256, kC, kH, kW);
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
    state.counters["FLOP/s"] = benchmark::Counter(mnist_flops(nn, nn, 0, false),
                                                  benchmark::Counter::kIsIterationInvariantRate);
    state.counters["img/s"] = benchmark::Counter(nn, benchmark::Counter::kIsIterationInvariantRate);
    dann_context_destroy(ctx);
    dann_model_destroy(m);
}

void BM_Predict_MNIST(benchmark::State &state) { predict(state, DANN_PRECISION_F32); }
// dann_context_quantize: u8/s8 activations, s8 weights (AVX512-VNNI, AVX-VNNI
// or AMX; skipped elsewhere). The FLOP/s counter counts the same operations.
void BM_PredictInt8_MNIST(benchmark::State &state) { predict(state, DANN_PRECISION_INT8); }

// One adapter round with steps_per_round = 1: a DANN step (64 replay + 64 ring
// samples, the adapter's default Adam), then the guard: the committed model on
// the 256 newest ring samples (with the domain head, for the drift score), the
// working model on the 256 replay samples and on the same ring samples, then a
// snapshot. FLOP/s counts the step and the guard's 768 forward passes.
void BM_AdapterRound_MNIST(benchmark::State &state) {
    const int threads = static_cast<int>(state.range(0));
    constexpr size_t kReplay = 256, kRing = 512, kGuard = 256, kBatch = 64;
    std::vector<uint8_t> replay(kReplay * kH * kW * kC), ring(kRing * kH * kW * kC);
    uint32_t s = 99;
    for (auto &v : replay) v = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
    for (auto &v : ring) v = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
    std::vector<int32_t> labels(kReplay);
    for (size_t i = 0; i < kReplay; ++i) labels[i] = static_cast<int32_t>(i % 10);
    dann_model *m = make_model(threads, state);
    if (!m) return;
    dann_batch rb = dann_batch_u8_hwc(replay.data(), kReplay, kH, kW, kC);
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
    dann_batch tb = dann_batch_u8_hwc(ring.data(), kRing, kH, kW, kC);
    if (dann_adapter_push(a, &tb) != DANN_OK || dann_adapter_run(a, 1) != DANN_OK)
        state.SkipWithError(dann_last_error());
    for (auto _ : state) {
        if (dann_adapter_run(a, 1) != DANN_OK) {
            state.SkipWithError(dann_last_error());
            break;
        }
    }
    const double guard = 3.0 * kGuard;
    const double flops = mnist_flops(2.0 * kBatch, kBatch, 2.0 * kBatch, true) +
                         mnist_flops(guard, guard, kGuard, false);
    state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
    dann_adapter_destroy(a);
    dann_model_destroy(m);
}

// Thread counts: DANN_BENCH_THREADS (e.g. "1,2,4,8,16"), default "1,2".
std::vector<int64_t> thread_counts() {
    std::vector<int64_t> counts;
    const char *env = std::getenv("DANN_BENCH_THREADS");
    const char *p = env && *env ? env : "1,2";
    while (*p) {
        char *end = nullptr;
        const long v = std::strtol(p, &end, 10);
        if (end == p) break;
        if (v > 0 && v <= 1024) counts.push_back(v);
        p = *end == ',' ? end + 1 : end;
        if (*end != ',') break;
    }
    if (counts.empty()) counts = {1, 2};
    return counts;
}

void by_threads(benchmark::internal::Benchmark *b) {
    b->ArgName("threads");
    for (const int64_t t : thread_counts()) b->Arg(t);
}

void by_threads_and_batch(benchmark::internal::Benchmark *b) {
    b->ArgNames({"threads", "batch"});
    for (const int64_t batch : {1, 256})
        for (const int64_t t : thread_counts()) b->Args({t, batch});
}

} // namespace

BENCHMARK(BM_AdapterRound_MNIST)->Apply(by_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DannStep_MNIST_64x64)->Apply(by_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DannStepBf16_MNIST_64x64)->Apply(by_threads)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Predict_MNIST)->Apply(by_threads_and_batch)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_PredictInt8_MNIST)->Apply(by_threads_and_batch)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
