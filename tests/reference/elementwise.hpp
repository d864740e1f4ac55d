// Scalar references of the element-wise layers: ReLU, logistic sigmoid,
// inverted dropout with a given mask, flatten, and the gradient reversal layer.
// Test oracle only.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace ref {

inline std::vector<double> relu_forward(const std::vector<double> &src) {
    std::vector<double> dst(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) dst[i] = src[i] > 0.0 ? src[i] : 0.0;
    return dst;
}

inline std::vector<double> relu_backward(const std::vector<double> &src, const std::vector<double> &diff_dst) {
    std::vector<double> diff_src(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) diff_src[i] = src[i] > 0.0 ? diff_dst[i] : 0.0;
    return diff_src;
}

// Written so that neither branch overflows for large |x|.
inline double sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

inline std::vector<double> sigmoid_forward(const std::vector<double> &src) {
    std::vector<double> dst(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) dst[i] = sigmoid(src[i]);
    return dst;
}

inline std::vector<double> sigmoid_backward(const std::vector<double> &src, const std::vector<double> &diff_dst) {
    std::vector<double> diff_src(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) {
        const double s = sigmoid(src[i]);
        diff_src[i] = diff_dst[i] * s * (1.0 - s);
    }
    return diff_src;
}

// Inverted dropout: the mask holds 0 for a dropped unit and 1 / (1 - rate) for a
// kept one, so forward and backward are both a product with the mask.
inline std::vector<double> dropout_apply(const std::vector<double> &x, const std::vector<double> &mask) {
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * mask[i];
    return y;
}

// Flatten and the GRL's forward pass leave the data unchanged (NCHW is already
// C*H*W-major per sample).
inline std::vector<double> identity(const std::vector<double> &x) { return x; }

inline std::vector<double> grl_backward(const std::vector<double> &diff_dst, double lambda) {
    std::vector<double> diff_src(diff_dst.size());
    for (std::size_t i = 0; i < diff_dst.size(); ++i) diff_src[i] = -lambda * diff_dst[i];
    return diff_src;
}

} // namespace ref
