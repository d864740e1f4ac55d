// Scalar reference of 2-D max pooling (PyTorch semantics: padded cells never
// win, output extent floor((in + 2 pad - kernel) / stride) + 1, the gradient
// goes to the first maximum of each window in row-major order).
// Test oracle only.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

#include "reference/conv2d.hpp"

namespace ref {

struct Pool2dShape {
    int n, c, h, w;
    int oh, ow;
    Window win;
};

inline Pool2dShape pool2d_shape(const std::vector<int> &src_dims, const Window &win) {
    Pool2dShape s{};
    s.n = src_dims[0];
    s.c = src_dims[1];
    s.h = src_dims[2];
    s.w = src_dims[3];
    s.oh = out_extent(s.h, win.kernel_h, win.stride_h, win.pad_h);
    s.ow = out_extent(s.w, win.kernel_w, win.stride_w, win.pad_w);
    s.win = win;
    return s;
}

// For every output element, the flat NCHW index of the source element it takes.
inline std::vector<std::size_t> maxpool2d_argmax(const Pool2dShape &s, const std::vector<double> &src) {
    std::vector<std::size_t> argmax(static_cast<std::size_t>(s.n) * s.c * s.oh * s.ow, 0);
    std::size_t out = 0;
    for (int n = 0; n < s.n; ++n)
        for (int c = 0; c < s.c; ++c)
            for (int oy = 0; oy < s.oh; ++oy)
                for (int ox = 0; ox < s.ow; ++ox, ++out) {
                    double best = -std::numeric_limits<double>::infinity();
                    std::size_t best_index = 0;
                    bool found = false;
                    for (int ky = 0; ky < s.win.kernel_h; ++ky) {
                        const int iy = oy * s.win.stride_h - s.win.pad_h + ky;
                        if (iy < 0 || iy >= s.h) continue;
                        for (int kx = 0; kx < s.win.kernel_w; ++kx) {
                            const int ix = ox * s.win.stride_w - s.win.pad_w + kx;
                            if (ix < 0 || ix >= s.w) continue;
                            const std::size_t i = detail::nchw(n, c, iy, ix, s.c, s.h, s.w);
                            if (!found || src[i] > best) {
                                best = src[i];
                                best_index = i;
                                found = true;
                            }
                        }
                    }
                    argmax[out] = best_index;
                }
    return argmax;
}

inline std::vector<double> maxpool2d_forward(const Pool2dShape &s, const std::vector<double> &src) {
    const std::vector<std::size_t> argmax = maxpool2d_argmax(s, src);
    std::vector<double> dst(argmax.size());
    for (std::size_t i = 0; i < argmax.size(); ++i) dst[i] = src[argmax[i]];
    return dst;
}

inline std::vector<double> maxpool2d_backward(const Pool2dShape &s, const std::vector<double> &src,
                                              const std::vector<double> &diff_dst) {
    const std::vector<std::size_t> argmax = maxpool2d_argmax(s, src);
    std::vector<double> diff_src(src.size(), 0.0);
    for (std::size_t i = 0; i < argmax.size(); ++i) diff_src[argmax[i]] += diff_dst[i];
    return diff_src;
}

} // namespace ref
