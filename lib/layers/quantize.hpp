// The int8 arithmetic of dann's int8 inference plans (dann_context_quantize),
// shared by the convolution and dense layers. A tensor held as int8 stores
// q = round(x * scale), rounded to nearest (ties to even) and saturated, and
// stands for q / scale.
//
// A convolution or dense layer then computes, for output channel o,
//     sum = sum_i q_src[i] * q_w[o, i]                  (exact, in int32)
//     y   = (sum + bias_q[o]) * scales[o]               (f32; ReLU after)
// with bias_q[o] = bias[o] * s_src * s_w[o] and scales[o] = s_dst / (s_src *
// s_w[o]): y = s_dst * (x . w + bias) up to rounding; s_dst is 1 for an f32
// output and the u8 scale of the output otherwise (y then rounded and
// saturated to u8). Per-channel factors run as a oneDNN binary post-op
// whose operand is filled when the weights are quantized, so that new weights
// need no new primitive.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dnn.hpp"

namespace dann::quant {

// How values in [lo, hi] are held: u8 over [0, hi] (scale 255 / hi) when
// lo >= 0, s8 over [-m, m] (scale 127 / m, m = max(-lo, hi)) otherwise. An
// all-zero range gets scale 1.
struct Activation {
    dnn::dt type = dnn::u8;
    float scale = 1.0f;
};
Activation activation(float lo, float hi);

// Widens [lo, hi] by the `count` values at x.
void widen(const float *x, size_t count, float &lo, float &hi);

// Quantizes weights (oc rows of k values, row-major) per output channel,
// symmetric: s_w[o] = 127 / max_i |w[o, i]| (1 for an all-zero row), q_w =
// round(w * s_w[o]) in [-127, 127]; and writes bias_q and scales as above.
void quantize_weights(const float *w, const float *bias, int64_t oc, int64_t k, float src_scale,
                      float dst_scale, int8_t *q_w, float *bias_q, float *scales);

} // namespace dann::quant
