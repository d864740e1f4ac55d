// Scalar reference of dann's int8 inference arithmetic (dann.h,
// dann_context_quantize), written from its documented rules: per-tensor
// activation scales from a calibrated range, symmetric per-output-channel s8
// weights, exact integer sums, the bias and the scales applied in f32.
// Test oracle only: plain loops over NCHW / OIHW data, sums in int64.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "reference/conv2d.hpp"
#include "reference/dense.hpp"

namespace ref::int8 {

// A tensor quantized per tensor: q = saturate(round_half_even(x * scale)),
// standing for q / scale. Unsigned (u8, [0, 255]) when the calibrated range
// has no negative value, else signed (s8, [-128, 127]).
struct Quantized {
    std::vector<int32_t> q;
    float scale = 1.0f;
    bool is_unsigned = true;
};

// The scale for a calibrated range [lo, hi]: 255 / hi (u8) or 127 / max|.| (s8).
inline Quantized scale_for(float lo, float hi) {
    Quantized t;
    t.is_unsigned = lo >= 0.0f;
    const float m = t.is_unsigned ? hi : std::max(-lo, hi);
    t.scale = m > 0.0f ? (t.is_unsigned ? 255.0f : 127.0f) / m : 1.0f;
    return t;
}

inline int32_t round_saturate(float v, bool is_unsigned) {
    const float r = std::nearbyint(v); // the default rounding: half to even
    const float lo = is_unsigned ? 0.0f : -128.0f, hi = is_unsigned ? 255.0f : 127.0f;
    return static_cast<int32_t>(std::min(hi, std::max(lo, r)));
}

// x quantized with the range [lo, hi] (taken over x itself when the
// calibration batch is the batch).
inline Quantized quantize(const std::vector<float> &x, float lo, float hi) {
    Quantized t = scale_for(lo, hi);
    t.q.resize(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) t.q[i] = round_saturate(x[i] * t.scale, t.is_unsigned);
    return t;
}

inline void range_of(const std::vector<float> &x, float &lo, float &hi) {
    lo = 0.0f;
    hi = 0.0f;
    for (const float v : x) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
}

// Weights (oc rows of k values) per output channel: s_w = 127 / max |w|.
struct Weights {
    std::vector<int32_t> q;
    std::vector<float> scale;
};

inline Weights quantize_weights(const std::vector<float> &w, int oc) {
    const std::size_t k = w.size() / static_cast<std::size_t>(oc);
    Weights out;
    out.q.resize(w.size());
    out.scale.resize(static_cast<std::size_t>(oc));
    for (int o = 0; o < oc; ++o) {
        float m = 0.0f;
        for (std::size_t i = 0; i < k; ++i) m = std::max(m, std::fabs(w[o * k + i]));
        const float s = m > 0.0f ? 127.0f / m : 1.0f;
        out.scale[static_cast<std::size_t>(o)] = s;
        for (std::size_t i = 0; i < k; ++i)
            out.q[o * k + i] = static_cast<int32_t>(std::nearbyint(w[o * k + i] * s));
    }
    return out;
}

// From an exact integer sum of output channel o to the output:
// (sum + bias * s_src * s_w) * (s_dst / (s_src * s_w)), then ReLU and, for a
// u8 output (dst_scale > 0), rounding and saturation; f32 ops in this order.
inline float finish(int64_t sum, float bias, float src_scale, float w_scale, float dst_scale,
                    bool relu) {
    const float bias_q = bias * src_scale * w_scale;
    const float factor = (dst_scale > 0.0f ? dst_scale : 1.0f) / (src_scale * w_scale);
    float v = (static_cast<float>(sum) + bias_q) * factor;
    if (relu) v = std::max(v, 0.0f);
    if (dst_scale > 0.0f) v = static_cast<float>(round_saturate(v, true));
    return v;
}

// Convolution over quantized data (NCHW source, OIHW weights); outputs as
// finish() makes them.
inline std::vector<float> conv2d_forward(const Conv2dShape &s, const Quantized &src,
                                         const Weights &w, const std::vector<float> &bias,
                                         float dst_scale, bool relu) {
    std::vector<int64_t> sum(static_cast<std::size_t>(s.n) * s.oc * s.oh * s.ow, 0);
    conv2d_for_each_tap(s, [&](int n, int o, int oy, int ox, int ci, int iy, int ix, int ky, int kx) {
        sum[conv2d_dst_index(s, n, o, oy, ox)] +=
            int64_t(w.q[conv2d_weight_index(s, o, ci, ky, kx)]) * src.q[conv2d_src_index(s, n, ci, iy, ix)];
    });
    std::vector<float> dst(sum.size());
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.oc; ++o)
            for (int oy = 0; oy < s.oh; ++oy)
                for (int ox = 0; ox < s.ow; ++ox) {
                    const std::size_t i = conv2d_dst_index(s, n, o, oy, ox);
                    dst[i] = finish(sum[i], bias[static_cast<std::size_t>(o)], src.scale,
                                    w.scale[static_cast<std::size_t>(o)], dst_scale, relu);
                }
    return dst;
}

// Fully connected layer over quantized data (per-sample flattened source,
// (out, in) weights).
inline std::vector<float> dense_forward(const DenseShape &s, const Quantized &src,
                                        const Weights &w, const std::vector<float> &bias,
                                        float dst_scale, bool relu) {
    std::vector<float> dst(static_cast<std::size_t>(s.n) * s.out);
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.out; ++o) {
            int64_t sum = 0;
            for (int i = 0; i < s.in; ++i)
                sum += int64_t(w.q[static_cast<std::size_t>(o) * s.in + i]) *
                       src.q[static_cast<std::size_t>(n) * s.in + i];
            dst[static_cast<std::size_t>(n) * s.out + o] =
                finish(sum, bias[static_cast<std::size_t>(o)], src.scale,
                       w.scale[static_cast<std::size_t>(o)], dst_scale, relu);
        }
    return dst;
}

} // namespace ref::int8
