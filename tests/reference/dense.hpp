// Scalar reference of a fully connected layer, PyTorch's nn.Linear on the input
// flattened per sample in C*H*W order: dst = src * weight^T + bias, weight (out, in).
// Test oracle only.
#pragma once

#include <cstddef>
#include <vector>

namespace ref {

struct DenseShape {
    int n;   // samples
    int in;  // features per sample (C*H*W for an image input)
    int out; // units
};

inline DenseShape dense_shape(const std::vector<int> &src_dims, int units) {
    DenseShape s{};
    s.n = src_dims[0];
    s.in = 1;
    for (std::size_t d = 1; d < src_dims.size(); ++d) s.in *= src_dims[d];
    s.out = units;
    return s;
}

inline std::vector<double> dense_forward(const DenseShape &s, const std::vector<double> &src,
                                         const std::vector<double> &weight,
                                         const std::vector<double> &bias) {
    std::vector<double> dst(static_cast<std::size_t>(s.n) * s.out);
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.out; ++o) {
            double acc = bias[static_cast<std::size_t>(o)];
            for (int i = 0; i < s.in; ++i)
                acc += weight[static_cast<std::size_t>(o) * s.in + i] * src[static_cast<std::size_t>(n) * s.in + i];
            dst[static_cast<std::size_t>(n) * s.out + o] = acc;
        }
    return dst;
}

inline std::vector<double> dense_backward_data(const DenseShape &s, const std::vector<double> &weight,
                                               const std::vector<double> &diff_dst) {
    std::vector<double> diff_src(static_cast<std::size_t>(s.n) * s.in, 0.0);
    for (int n = 0; n < s.n; ++n)
        for (int i = 0; i < s.in; ++i) {
            double acc = 0.0;
            for (int o = 0; o < s.out; ++o)
                acc += diff_dst[static_cast<std::size_t>(n) * s.out + o] * weight[static_cast<std::size_t>(o) * s.in + i];
            diff_src[static_cast<std::size_t>(n) * s.in + i] = acc;
        }
    return diff_src;
}

inline void dense_backward_weights(const DenseShape &s, const std::vector<double> &src,
                                   const std::vector<double> &diff_dst,
                                   std::vector<double> &diff_weight, std::vector<double> &diff_bias) {
    diff_weight.assign(static_cast<std::size_t>(s.out) * s.in, 0.0);
    diff_bias.assign(static_cast<std::size_t>(s.out), 0.0);
    for (int n = 0; n < s.n; ++n)
        for (int o = 0; o < s.out; ++o) {
            const double g = diff_dst[static_cast<std::size_t>(n) * s.out + o];
            diff_bias[static_cast<std::size_t>(o)] += g;
            for (int i = 0; i < s.in; ++i)
                diff_weight[static_cast<std::size_t>(o) * s.in + i] += g * src[static_cast<std::size_t>(n) * s.in + i];
        }
}

} // namespace ref
