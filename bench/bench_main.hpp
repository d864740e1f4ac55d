// What the Google Benchmark programs in bench/ share: the thread counts they
// run (DANN_BENCH_THREADS) and their main(), which registers the program's
// cases before handing the command line to Google Benchmark.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace dann_bench {

// Thread counts: DANN_BENCH_THREADS (e.g. "1,2,4,8,16"), default "1,2".
inline std::vector<int64_t> thread_counts() {
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

// The body of each program's main(): register_all() adds its cases.
inline int run(int argc, char **argv, void (*register_all)()) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

} // namespace dann_bench
