// Scalar reference of a 2-D convolution (PyTorch semantics: cross-correlation,
// zero padding, output extent floor((in + 2 pad - kernel) / stride) + 1).
// Test oracle only: plain loops over NCHW / OIHW data, double accumulation.
#pragma once

#include <cstddef>
#include <vector>

namespace ref {

struct Window {
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w;
};

inline int out_extent(int in, int kernel, int stride, int pad) {
    return (in + 2 * pad - kernel) / stride + 1;
}

struct Conv2dShape {
    int n, c, h, w; // source
    int oc, oh, ow; // destination channels and extent
    Window win;
};

inline Conv2dShape conv2d_shape(const std::vector<int> &src_dims, int out_channels,
                                const Window &win) {
    Conv2dShape s{};
    s.n = src_dims[0];
    s.c = src_dims[1];
    s.h = src_dims[2];
    s.w = src_dims[3];
    s.oc = out_channels;
    s.oh = out_extent(s.h, win.kernel_h, win.stride_h, win.pad_h);
    s.ow = out_extent(s.w, win.kernel_w, win.stride_w, win.pad_w);
    s.win = win;
    return s;
}

namespace detail {
inline std::size_t nchw(int n, int c, int h, int w, int C, int H, int W) {
    return ((static_cast<std::size_t>(n) * C + c) * H + h) * W + w;
}
} // namespace detail

// Calls f(n, o, oy, ox, ci, iy, ix, ky, kx) for every (output, tap) pair that
// reads a real (not padded) source element. All three passes share it, so the
// index arithmetic is written once.
template <typename F>
void conv2d_for_each_tap(const Conv2dShape &s, F &&f) {
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.oc; ++o)
            for (int oy = 0; oy < s.oh; ++oy)
                for (int ox = 0; ox < s.ow; ++ox)
                    for (int ci = 0; ci < s.c; ++ci)
                        for (int ky = 0; ky < s.win.kernel_h; ++ky) {
                            const int iy = oy * s.win.stride_h - s.win.pad_h + ky;
                            if (iy < 0 || iy >= s.h) continue;
                            for (int kx = 0; kx < s.win.kernel_w; ++kx) {
                                const int ix = ox * s.win.stride_w - s.win.pad_w + kx;
                                if (ix < 0 || ix >= s.w) continue;
                                f(n, o, oy, ox, ci, iy, ix, ky, kx);
                            }
                        }
}

inline std::size_t conv2d_dst_index(const Conv2dShape &s, int n, int o, int oy, int ox) {
    return detail::nchw(n, o, oy, ox, s.oc, s.oh, s.ow);
}
inline std::size_t conv2d_src_index(const Conv2dShape &s, int n, int c, int y, int x) {
    return detail::nchw(n, c, y, x, s.c, s.h, s.w);
}
inline std::size_t conv2d_weight_index(const Conv2dShape &s, int o, int c, int ky, int kx) {
    return detail::nchw(o, c, ky, kx, s.c, s.win.kernel_h, s.win.kernel_w);
}

inline std::vector<double> conv2d_forward(const Conv2dShape &s, const std::vector<double> &src,
                                          const std::vector<double> &weight,
                                          const std::vector<double> &bias) {
    std::vector<double> dst(static_cast<std::size_t>(s.n) * s.oc * s.oh * s.ow, 0.0);
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.oc; ++o)
            for (int oy = 0; oy < s.oh; ++oy)
                for (int ox = 0; ox < s.ow; ++ox)
                    dst[conv2d_dst_index(s, n, o, oy, ox)] = bias[static_cast<std::size_t>(o)];
    conv2d_for_each_tap(s, [&](int n, int o, int oy, int ox, int ci, int iy, int ix, int ky, int kx) {
        dst[conv2d_dst_index(s, n, o, oy, ox)] +=
            weight[conv2d_weight_index(s, o, ci, ky, kx)] * src[conv2d_src_index(s, n, ci, iy, ix)];
    });
    return dst;
}

inline std::vector<double> conv2d_backward_data(const Conv2dShape &s,
                                                const std::vector<double> &weight,
                                                const std::vector<double> &diff_dst) {
    std::vector<double> diff_src(static_cast<std::size_t>(s.n) * s.c * s.h * s.w, 0.0);
    conv2d_for_each_tap(s, [&](int n, int o, int oy, int ox, int ci, int iy, int ix, int ky, int kx) {
        diff_src[conv2d_src_index(s, n, ci, iy, ix)] +=
            weight[conv2d_weight_index(s, o, ci, ky, kx)] * diff_dst[conv2d_dst_index(s, n, o, oy, ox)];
    });
    return diff_src;
}

inline void conv2d_backward_weights(const Conv2dShape &s, const std::vector<double> &src,
                                    const std::vector<double> &diff_dst,
                                    std::vector<double> &diff_weight, std::vector<double> &diff_bias) {
    diff_weight.assign(static_cast<std::size_t>(s.oc) * s.c * s.win.kernel_h * s.win.kernel_w, 0.0);
    diff_bias.assign(static_cast<std::size_t>(s.oc), 0.0);
    conv2d_for_each_tap(s, [&](int n, int o, int oy, int ox, int ci, int iy, int ix, int ky, int kx) {
        diff_weight[conv2d_weight_index(s, o, ci, ky, kx)] +=
            src[conv2d_src_index(s, n, ci, iy, ix)] * diff_dst[conv2d_dst_index(s, n, o, oy, ox)];
    });
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.oc; ++o)
            for (int oy = 0; oy < s.oh; ++oy)
                for (int ox = 0; ox < s.ow; ++ox)
                    diff_bias[static_cast<std::size_t>(o)] += diff_dst[conv2d_dst_index(s, n, o, oy, ox)];
}

} // namespace ref
