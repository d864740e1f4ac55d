#include "core/convert.hpp"

#include "core/error.hpp"

#include <omp.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dann::convert {

#if defined(__x86_64__)
namespace {

// One block of 16 values per iteration, the tail masked: the same
// instruction for every value, whatever the split between threads.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void convert_range(const float *src, uint16_t *dst,
                                                                 size_t begin, size_t end) {
    size_t i = begin;
    for (; i + 16 <= end; i += 16) {
        const __m256bh b = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i), reinterpret_cast<const __m256i &>(b));
    }
    if (i < end) {
        const __mmask16 m = static_cast<__mmask16>((1u << (end - i)) - 1u);
        const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, reinterpret_cast<const __m256i &>(b));
    }
}

} // namespace

bool f32_to_bf16_available() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void f32_to_bf16(const float *src, uint16_t *dst, size_t count,
                                                               bool serial) {
    const int team = serial ? 1 : omp_get_max_threads();
    if (team <= 1) {
        convert_range(src, dst, 0, count);
        return;
    }
    // Chunks of whole cache lines (16 floats) per thread.
    const size_t blocks = (count + 15) / 16;
#pragma omp parallel num_threads(team)
    {
        const size_t t = static_cast<size_t>(omp_get_thread_num());
        const size_t n = static_cast<size_t>(omp_get_num_threads());
        const size_t b0 = blocks * t / n, b1 = blocks * (t + 1) / n;
        const size_t begin = b0 * 16, end = b1 * 16 < count ? b1 * 16 : count;
        if (begin < end) convert_range(src, dst, begin, end);
    }
}
#else
bool f32_to_bf16_available() { return false; }

void f32_to_bf16(const float *, uint16_t *, size_t, bool) {
    fail(DANN_ERR_INTERNAL, "f32_to_bf16() called where f32_to_bf16_available() is false");
}
#endif

} // namespace dann::convert
