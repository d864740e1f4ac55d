#include "layers/quantize.hpp"

#include <algorithm>
#include <cmath>

namespace dann::quant {

Activation activation(float lo, float hi) {
    Activation a;
    if (lo >= 0.0f) {
        a.type = dnn::u8;
        a.scale = hi > 0.0f ? 255.0f / hi : 1.0f;
    } else {
        a.type = dnn::s8;
        const float m = std::max(-lo, hi);
        a.scale = 127.0f / m;
    }
    return a;
}

void widen(const float *x, size_t count, float &lo, float &hi) {
    float l = lo, h = hi;
    bool nan = false;
    for (size_t i = 0; i < count; ++i) {
        l = std::min(l, x[i]);
        h = std::max(h, x[i]);
        nan |= std::isnan(x[i]);
    }
    // A NaN compares false both ways and would vanish: keep it visible.
    lo = nan ? NAN : l;
    hi = nan ? NAN : h;
}

void quantize_weights(const float *w, const float *bias, int64_t oc, int64_t k, float src_scale,
                      float dst_scale, int8_t *q_w, float *bias_q, float *scales) {
    for (int64_t o = 0; o < oc; ++o) {
        const float *row = w + o * k;
        float m = 0.0f;
        for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(row[i]));
        const float s = m > 0.0f ? 127.0f / m : 1.0f;
        int8_t *q = q_w + o * k;
        for (int64_t i = 0; i < k; ++i)
            q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(row[i] * s), -127.0f, 127.0f));
        bias_q[o] = bias[o] * src_scale * s;
        scales[o] = dst_scale / (src_scale * s);
    }
}

} // namespace dann::quant
