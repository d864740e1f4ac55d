#include "layers/gemm_affine.hpp"

#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "core/gemm.hpp"

namespace dann {

void GemmAffine::plan(dnn::Arena &arena, const GemmGeometry &g) {
    const bool valid = g.n > 0 && g.c > 0 && g.h > 0 && g.w > 0 && g.oc > 0 && g.oh > 0 &&
                       g.ow > 0 && g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0 && g.ph >= 0 &&
                       g.pw >= 0;
    if (!valid) fail(DANN_ERR_INTERNAL, "BLAS path planned with an invalid geometry");
    g_ = g;
    col_ = partial_ = nullptr;
    slots_ = 1;
    col_floats_ = 0;
    direct_ = false;
    taps_ = g.conv ? g.c * g.kh * g.kw : g.c * g.h * g.w;
    positions_ = g.conv ? g.oh * g.ow : 1;
    // Every matrix extent and leading dimension handed to the BLAS is one of
    // these: checked here, so that no product can fail while running (inside
    // a parallel region).
    for (int64_t extent : {g.n, g.oc, taps_, positions_})
        if (extent > INT_MAX)
            fail(DANN_ERR_UNSUPPORTED, "layer too large for the BLAS path: a matrix extent of " +
                                           std::to_string(extent) + " exceeds 32 bits");
    if (!g.conv) return;
    direct_ = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
    slots_ = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), g.n)));
    col_floats_ = static_cast<size_t>(taps_) * static_cast<size_t>(positions_);
    if (!direct_) col_ = arena.alloc_f32(col_floats_ * static_cast<size_t>(slots_));
}

void GemmAffine::plan_backward(dnn::Arena &arena) {
    if (g_.conv && slots_ > 1 && !partial_)
        partial_ = arena.alloc_f32(static_cast<size_t>(slots_ - 1) * static_cast<size_t>(g_.oc) *
                                   static_cast<size_t>(taps_));
}

int GemmAffine::threads() const {
    return std::max(1, std::min(omp_get_max_threads(), slots_));
}

template <class F>
void GemmAffine::for_each_sample(const F &sample) const {
    const int t = threads();
    if (t == 1) {
        for (int64_t i = 0; i < g_.n; ++i) sample(i, 0);
        return;
    }
#pragma omp parallel for num_threads(t) schedule(static)
    for (int64_t i = 0; i < g_.n; ++i) sample(i, omp_get_thread_num());
}

void GemmAffine::im2col(const float *src_n, float *col) const {
    const int64_t H = g_.h, W = g_.w, OH = g_.oh, OW = g_.ow;
    for (int64_t ci = 0; ci < g_.c; ++ci) {
        const float *plane = src_n + ci * H * W;
        for (int64_t ky = 0; ky < g_.kh; ++ky)
            for (int64_t kx = 0; kx < g_.kw; ++kx) {
                float *row = col + ((ci * g_.kh + ky) * g_.kw + kx) * positions_;
                for (int64_t oy = 0; oy < OH; ++oy) {
                    float *out = row + oy * OW;
                    const int64_t iy = oy * g_.sh - g_.ph + ky;
                    if (iy < 0 || iy >= H) {
                        std::fill(out, out + OW, 0.0f);
                        continue;
                    }
                    const float *line = plane + iy * W;
                    for (int64_t ox = 0; ox < OW; ++ox) {
                        const int64_t ix = ox * g_.sw - g_.pw + kx;
                        out[ox] = ix >= 0 && ix < W ? line[ix] : 0.0f;
                    }
                }
            }
    }
}

void GemmAffine::col2im(const float *col, float *diff_src_n) const {
    const int64_t H = g_.h, W = g_.w, OH = g_.oh, OW = g_.ow;
    std::fill(diff_src_n, diff_src_n + g_.c * H * W, 0.0f);
    for (int64_t ci = 0; ci < g_.c; ++ci) {
        float *plane = diff_src_n + ci * H * W;
        for (int64_t ky = 0; ky < g_.kh; ++ky)
            for (int64_t kx = 0; kx < g_.kw; ++kx) {
                const float *row = col + ((ci * g_.kh + ky) * g_.kw + kx) * positions_;
                for (int64_t oy = 0; oy < OH; ++oy) {
                    const int64_t iy = oy * g_.sh - g_.ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    const float *in = row + oy * OW;
                    float *line = plane + iy * W;
                    for (int64_t ox = 0; ox < OW; ++ox) {
                        const int64_t ix = ox * g_.sw - g_.pw + kx;
                        if (ix >= 0 && ix < W) line[ix] += in[ox];
                    }
                }
            }
    }
}

void GemmAffine::forward(const float *src, const float *weight, const float *bias,
                         float *dst) const {
    const int64_t oc = g_.oc, P = positions_, K = taps_;
    if (!g_.conv) {
        gemm::sgemm(false, true, g_.n, oc, K, 1.0f, src, K, weight, K, 0.0f, dst, oc);
        for (int64_t i = 0; i < g_.n; ++i)
            for (int64_t o = 0; o < oc; ++o) dst[i * oc + o] += bias[o];
        return;
    }
    const int64_t src_per = g_.c * g_.h * g_.w, dst_per = oc * P;
    auto sample = [&](int64_t i, int slot) {
        const float *c = src + i * src_per;
        if (!direct_) {
            im2col(src + i * src_per, col(slot));
            c = col(slot);
        }
        float *d = dst + i * dst_per;
        gemm::sgemm(false, false, oc, P, K, 1.0f, weight, K, c, P, 0.0f, d, P);
        for (int64_t o = 0; o < oc; ++o) {
            float *row = d + o * P;
            const float b = bias[o];
            for (int64_t p = 0; p < P; ++p) row[p] += b;
        }
    };
    for_each_sample(sample);
}

void GemmAffine::backward_data(const float *diff_dst, const float *weight,
                               float *diff_src) const {
    const int64_t oc = g_.oc, P = positions_, K = taps_;
    if (!g_.conv) {
        gemm::sgemm(false, false, g_.n, K, oc, 1.0f, diff_dst, oc, weight, K, 0.0f, diff_src, K);
        return;
    }
    const int64_t src_per = g_.c * g_.h * g_.w, dst_per = oc * P;
    auto sample = [&](int64_t i, int slot) {
        float *s = diff_src + i * src_per;
        if (direct_) {
            gemm::sgemm(true, false, K, P, oc, 1.0f, weight, K, diff_dst + i * dst_per, P, 0.0f,
                        s, P);
            return;
        }
        gemm::sgemm(true, false, K, P, oc, 1.0f, weight, K, diff_dst + i * dst_per, P, 0.0f,
                    col(slot), P);
        col2im(col(slot), s);
    };
    for_each_sample(sample);
}

void GemmAffine::bias_gradient(const float *diff_dst, float *diff_bias) const {
    const int64_t oc = g_.oc, P = positions_;
    for (int64_t o = 0; o < oc; ++o) {
        double sum = 0.0;
        for (int64_t i = 0; i < g_.n; ++i) {
            const float *row = diff_dst + (i * oc + o) * P;
            for (int64_t p = 0; p < P; ++p) sum += static_cast<double>(row[p]);
        }
        diff_bias[o] = static_cast<float>(sum);
    }
}

void GemmAffine::backward_weights(const float *src, const float *diff_dst, float *diff_weight,
                                  float *diff_bias) const {
    const int64_t oc = g_.oc, P = positions_, K = taps_;
    bias_gradient(diff_dst, diff_bias);
    if (!g_.conv) {
        gemm::sgemm(true, false, oc, K, g_.n, 1.0f, diff_dst, oc, src, K, 0.0f, diff_weight, K);
        return;
    }
    const int64_t src_per = g_.c * g_.h * g_.w, dst_per = oc * P;
    const size_t wei_floats = static_cast<size_t>(oc) * static_cast<size_t>(K);
    // Samples [begin, end) summed into `acc` (overwritten).
    auto samples = [&](int64_t begin, int64_t end, int slot, float *acc) {
        if (begin >= end) {
            std::memset(acc, 0, wei_floats * sizeof(float));
            return;
        }
        for (int64_t i = begin; i < end; ++i) {
            const float *c = src + i * src_per;
            if (!direct_) {
                im2col(c, col(slot));
                c = col(slot);
            }
            gemm::sgemm(false, true, oc, K, P, 1.0f, diff_dst + i * dst_per, P, c, P,
                        i == begin ? 0.0f : 1.0f, acc, K);
        }
    };
    const int t = threads();
    if (t == 1) {
        samples(0, g_.n, 0, diff_weight);
        return;
    }
    int used = 1;
#pragma omp parallel num_threads(t)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        if (tid == 0) used = nt;
        const int64_t begin = g_.n * tid / nt, end = g_.n * (tid + 1) / nt;
        samples(begin, end, tid, tid == 0 ? diff_weight : partial_ + (tid - 1) * wei_floats);
    }
    for (int s = 1; s < used; ++s) {
        const float *part = partial_ + static_cast<size_t>(s - 1) * wei_floats;
        for (size_t j = 0; j < wei_floats; ++j) diff_weight[j] += part[j];
    }
}

} // namespace dann
