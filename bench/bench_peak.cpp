// What the CPU at hand can do at most, measured rather than taken from a data
// sheet, so that the other programs' FLOP/s can be read against this machine:
//
//   BM_Clock/threads:T             a chain of dependent integer adds (one per
//                                  cycle on every x86-64 and Arm core): the
//                                  counter Hz is the core clock while it runs
//   BM_FmaF32_<isa>/threads:T      independent fp32 FMA chains, enough to fill
//                                  every FMA pipe: FLOP/s (an FMA is 2 FLOPs)
//                                  and FLOP/cycle (FLOP/s over the Hz of
//                                  BM_Clock at the same thread count)
//   BM_DotBf16_avx512bf16/...      VDPBF16PS chains (AVX512-BF16): 2 FLOPs per
//                                  bf16 pair, 64 per 512-bit instruction
//
// <isa> is avx512 (512-bit FMAs), avx2 (256-bit FMAs) or neon (128-bit FMLA,
// AArch64); a case whose instructions the CPU lacks is skipped with a message.
// T threads each run their own chains (OpenMP), so T × one core's figure is
// what the cores can sustain together at the clock they keep then.
//
//   ./build/bench/dann_bench_peak
//   DANN_BENCH_THREADS=1,2,4,8,16 ./build/bench/dann_bench_peak
//
// A CPU with two 512-bit FMA pipes (most AVX-512 Xeons) shows 64 FLOP/cycle
// for avx512; one that runs a 512-bit FMA as two 256-bit halves (AMD Zen 4)
// shows 32, the same as its avx2.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "bench_main.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace {

constexpr long kIters = 1L << 22; // per thread per call: a few ms at 3 GHz

// One core's clock, by the thread count it was measured at (BM_Clock runs
// first; the FLOP/cycle counters divide by it).
std::mutex g_clock_mutex;
std::map<int, double> g_clock_hz;

double clock_at(int threads) {
    std::lock_guard<std::mutex> lock(g_clock_mutex);
    const auto it = g_clock_hz.find(threads);
    return it == g_clock_hz.end() ? 0.0 : it->second;
}

// 16 dependent adds per iteration; the loop's own increment and branch run
// beside them, so an iteration takes 16 cycles.
uint64_t add_chain(long iters) {
    uint64_t x = 0;
    for (long i = 0; i < iters; ++i) {
#if defined(__x86_64__)
        asm volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                     : "+r"(x));
#elif defined(__aarch64__)
        asm volatile("add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                     "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                     "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                     "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1"
                     : "+r"(x));
#else
        x += 16;
        benchmark::DoNotOptimize(x);
#endif
    }
    return x;
}

#if defined(__x86_64__)
// 16 independent chains: with a 4-cycle FMA latency, enough for two pipes.
#define DANN_PEAK_CHAINS(OP)                                                                                   \
    OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11) OP(12) OP(13) OP(14) OP(15)

__attribute__((target("avx512f"))) float sum16(__m512 s) {
    alignas(64) float out[16];
    _mm512_store_ps(out, s);
    float t = 0;
    for (float v : out) t += v;
    return t;
}

__attribute__((target("avx512f"))) float fma_avx512(long iters) {
    const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(k) __m512 a##k = _mm512_set1_ps(1.0f + static_cast<float>(k));
    DANN_PEAK_CHAINS(DECL)
#undef DECL
    for (long i = 0; i < iters; ++i) {
#define STEP(k) a##k = _mm512_fmadd_ps(a##k, b, c);
        DANN_PEAK_CHAINS(STEP)
#undef STEP
        asm volatile("" ::: "memory");
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(k) s = _mm512_add_ps(s, a##k);
    DANN_PEAK_CHAINS(SUM)
#undef SUM
    return sum16(s);
}

// Without AVX-512 there are 16 vector registers: 12 chains and the two
// constants fit (16 chains would spill).
#define DANN_PEAK_CHAINS12(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11)
__attribute__((target("avx2,fma"))) float fma_avx2(long iters) {
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define DECL(k) __m256 a##k = _mm256_set1_ps(1.0f + static_cast<float>(k));
    DANN_PEAK_CHAINS12(DECL)
#undef DECL
    for (long i = 0; i < iters; ++i) {
#define STEP(k) a##k = _mm256_fmadd_ps(a##k, b, c);
        DANN_PEAK_CHAINS12(STEP)
#undef STEP
        asm volatile("" ::: "memory");
    }
    __m256 s = _mm256_setzero_ps();
#define SUM(k) s = _mm256_add_ps(s, a##k);
    DANN_PEAK_CHAINS12(SUM)
#undef SUM
    alignas(32) float out[8];
    _mm256_store_ps(out, s);
    float t = 0;
    for (float v : out) t += v;
    return t;
}

__attribute__((target("avx512f,avx512bf16"))) float dot_bf16(long iters) {
    const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3f80)); // bf16 1.0
#define DECL(k) __m512 a##k = _mm512_set1_ps(static_cast<float>(k));
    DANN_PEAK_CHAINS(DECL)
#undef DECL
    for (long i = 0; i < iters; ++i) {
#define STEP(k) a##k = _mm512_dpbf16_ps(a##k, b, b);
        DANN_PEAK_CHAINS(STEP)
#undef STEP
        asm volatile("" ::: "memory");
    }
    __m512 s = _mm512_setzero_ps();
#define SUM(k) s = _mm512_add_ps(s, a##k);
    DANN_PEAK_CHAINS(SUM)
#undef SUM
    return sum16(s);
}
#undef DANN_PEAK_CHAINS
#undef DANN_PEAK_CHAINS12
#endif

#if defined(__aarch64__)
float fma_neon(long iters) {
    const float32x4_t b = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-7f);
    float32x4_t a[16]; // 16 chains and 2 constants in Arm's 32 vector registers
    for (int k = 0; k < 16; ++k) a[k] = vdupq_n_f32(1.0f + static_cast<float>(k));
    for (long i = 0; i < iters; ++i) {
        for (int k = 0; k < 16; ++k) a[k] = vfmaq_f32(c, a[k], b);
        asm volatile("" ::: "memory");
    }
    float32x4_t s = vdupq_n_f32(0.0f);
    for (int k = 0; k < 16; ++k) s = vaddq_f32(s, a[k]);
    return vaddvq_f32(s);
}
#endif

// Runs fn(kIters) on `threads` OpenMP threads at once; returns the seconds of
// the slowest.
template <typename Fn> double timed_parallel(int threads, Fn fn) {
    double worst = 0.0;
#pragma omp parallel num_threads(threads) reduction(max : worst)
    {
#pragma omp barrier
        const auto t0 = std::chrono::steady_clock::now();
        benchmark::DoNotOptimize(fn(kIters));
        worst = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    return worst;
}

void BM_Clock(benchmark::State &state, int threads) {
    double cycles = 0.0, seconds = 0.0;
    for (auto _ : state) {
        const double s = timed_parallel(threads, add_chain);
        state.SetIterationTime(s);
        seconds += s;
        cycles += 16.0 * static_cast<double>(kIters);
    }
    const double hz = cycles / seconds;
    {
        std::lock_guard<std::mutex> lock(g_clock_mutex);
        g_clock_hz[threads] = hz;
    }
    state.counters["Hz"] = benchmark::Counter(hz, benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
}

// flop_per_iter: FLOPs one thread does per loop iteration.
template <typename Fn>
void run_peak(benchmark::State &state, int threads, const char *missing, Fn fn, double flop_per_iter) {
    if (missing != nullptr) {
        state.SkipWithError(missing);
        return;
    }
    double flops = 0.0, seconds = 0.0;
    for (auto _ : state) {
        const double s = timed_parallel(threads, fn);
        state.SetIterationTime(s);
        seconds += s;
        flops += flop_per_iter * static_cast<double>(kIters) * threads;
    }
    const double rate = flops / seconds;
    state.counters["FLOP/s"] = benchmark::Counter(rate, benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
    const double hz = clock_at(threads);
    if (hz > 0.0) state.counters["FLOP/cycle"] = rate / (hz * threads);
}

#if defined(__x86_64__)
void BM_FmaF32_avx512(benchmark::State &state, int threads) {
    run_peak(state, threads, __builtin_cpu_supports("avx512f") ? nullptr : "this CPU has no AVX-512F", fma_avx512,
             16 * 16 * 2);
}
void BM_FmaF32_avx2(benchmark::State &state, int threads) {
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    run_peak(state, threads, ok ? nullptr : "this CPU has no AVX2 with FMA", fma_avx2, 12 * 8 * 2);
}
void BM_DotBf16_avx512bf16(benchmark::State &state, int threads) {
    const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
    run_peak(state, threads, ok ? nullptr : "this CPU has no AVX512-BF16", dot_bf16, 16 * 32 * 2);
}
#endif
#if defined(__aarch64__)
void BM_FmaF32_neon(benchmark::State &state, int threads) { run_peak(state, threads, nullptr, fma_neon, 16 * 4 * 2); }
#endif

void register_all() {
    using Fn = void (*)(benchmark::State &, int);
    std::vector<std::pair<std::string, Fn>> cases = {{"BM_Clock", BM_Clock}};
#if defined(__x86_64__)
    cases.emplace_back("BM_FmaF32_avx512", BM_FmaF32_avx512);
    cases.emplace_back("BM_FmaF32_avx2", BM_FmaF32_avx2);
    cases.emplace_back("BM_DotBf16_avx512bf16", BM_DotBf16_avx512bf16);
#endif
#if defined(__aarch64__)
    cases.emplace_back("BM_FmaF32_neon", BM_FmaF32_neon);
#endif
    for (const int64_t t : dann_bench::thread_counts())
        for (const auto &c : cases)
            benchmark::RegisterBenchmark((c.first + "/threads:" + std::to_string(t)).c_str(), c.second,
                                         static_cast<int>(t))
                ->UseManualTime()
                ->Unit(benchmark::kMillisecond);
}

} // namespace

int main(int argc, char **argv) { return dann_bench::run(argc, argv, register_all); }
