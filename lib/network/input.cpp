#include "network/input.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"

namespace dann {

void check_batch(const Model &m, const dann_batch *b, const char *what) {
    const std::string w(what);
    if (!b) fail(DANN_ERR_INVALID_ARGUMENT, w + " is NULL");
    if (!b->data) fail(DANN_ERR_INVALID_ARGUMENT, w + ": data is NULL");
    if (b->n == 0) fail(DANN_ERR_SHAPE, w + ": batch has no samples (n = 0)");
    if (b->n > (size_t(1) << 24)) fail(DANN_ERR_SHAPE, w + ": batch of " + std::to_string(b->n) + " samples is too large");
    const int format = raw_enum(b->format);
    if (format != DANN_INPUT_F32_NCHW && format != DANN_INPUT_F32_NHWC &&
        format != DANN_INPUT_U8_HWC)
        fail(DANN_ERR_INVALID_ARGUMENT, w + ": unknown input format " + std::to_string(format));
    if (b->height != m.in_h || b->width != m.in_w)
        fail(DANN_ERR_SHAPE, w + ": images are " + std::to_string(b->height) + "x" +
                                 std::to_string(b->width) + ", the model expects " +
                                 std::to_string(m.in_h) + "x" + std::to_string(m.in_w));
    if (b->channels != m.in_c && b->channels != 1)
        fail(DANN_ERR_SHAPE, w + ": " + std::to_string(b->channels) +
                                 " channels, the model expects " + std::to_string(m.in_c) +
                                 " (or 1, replicated)");
}

void load_batch(const Model &m, const dann_batch &b, float *dst, const char *what) {
    const int64_t n = static_cast<int64_t>(b.n);
    const int64_t C = m.in_c, HW = int64_t(m.in_h) * m.in_w, bc = b.channels;
    const float scale = m.input_scale;
    const float *mean = m.input_mean.data();
    int64_t bad_sample = -1;
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < n; ++s) {
        float *out = dst + s * C * HW;
        bool finite = true;
        for (int64_t c = 0; c < C; ++c) {
            const int64_t sc = bc == 1 ? 0 : c; // grayscale: replicate the one channel
            float *o = out + c * HW;
            switch (b.format) {
            case DANN_INPUT_F32_NCHW: {
                const float *in = static_cast<const float *>(b.data) + (s * bc + sc) * HW;
                for (int64_t i = 0; i < HW; ++i) {
                    o[i] = in[i];
                    finite &= std::isfinite(in[i]);
                }
                break;
            }
            case DANN_INPUT_F32_NHWC: {
                const float *in = static_cast<const float *>(b.data) + s * HW * bc + sc;
                for (int64_t i = 0; i < HW; ++i) {
                    o[i] = in[i * bc];
                    finite &= std::isfinite(o[i]);
                }
                break;
            }
            case DANN_INPUT_U8_HWC: {
                const uint8_t *in = static_cast<const uint8_t *>(b.data) + s * HW * bc + sc;
                const float mc = mean[c];
                for (int64_t i = 0; i < HW; ++i) o[i] = static_cast<float>(in[i * bc]) * scale - mc;
                break;
            }
            }
        }
        if (!finite) {
#pragma omp critical(dann_bad_sample)
            if (bad_sample < 0 || s < bad_sample) bad_sample = s;
        }
    }
    if (bad_sample >= 0)
        fail(DANN_ERR_NUMERIC, std::string(what) + ": sample " + std::to_string(bad_sample) +
                                   " contains NaN or Inf");
}

} // namespace dann
