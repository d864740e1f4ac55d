// dann's own f32 -> bf16 conversion, for the reorders that only change the
// data type (dnn::reformat() with the same layout on both sides): oneDNN
// 2.6's reorder does these at a fraction of the memory bandwidth and does
// not scale past one thread (a 128x32x24x24 gradient: 0.29 ms with oneDNN at
// 1 or 2 threads, 0.20 / 0.09 ms here, AMD Zen 4). It uses the same
// instruction as oneDNN's bf16 kernels (VCVTNEPS2BF16: nearest even, NaNs
// quieted, denormal inputs as zero), so the bits are oneDNN's.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dann::convert {

// Whether f32_to_bf16() runs here (x86-64 with AVX512-BF16).
bool f32_to_bf16_available();

// dst[i] = bf16(src[i]) for i < count, on the calling thread's OpenMP
// team (omp_get_max_threads()) or, with serial, on the calling thread.
void f32_to_bf16(const float *src, uint16_t *dst, size_t count, bool serial);

} // namespace dann::convert
