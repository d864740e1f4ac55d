// DANN_CLONES marks a hot loop of dann's own (max pooling and its gradient routing) to be
// compiled three times on x86-64 Linux with GCC: for AVX-512 (x86-64-v4),
// AVX2 + FMA (x86-64-v3) and the baseline the library is built for (SSE2),
// the loader picking the best the CPU runs (GCC's target_clones, an ifunc).
// The library itself stays a baseline x86-64 binary; oneDNN generates its
// own code at run time. Only loops whose result does not depend on the
// vector width (selections, maxima, per-lane sums) carry it, so every clone
// computes the same bits. Elsewhere (other compilers, AArch64, where NEON is
// the baseline) it is empty, and so it is under ThreadSanitizer, whose
// runtime is not yet up when the loader runs the clones' resolvers (a
// crash at start-up). -DDANN_NO_CLONES turns it off.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) && !defined(DANN_NO_CLONES)
#define DANN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DANN_CLONES
#endif
