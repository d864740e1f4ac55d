// One entry point over the scalar references: forward and backward of any
// dann_layer_desc on plain NCHW / NC data, in double precision. It reads the
// description's defaults itself (from dann.h's documentation, not from lib/),
// so that a misread default in the library shows up as a mismatch.
// Test oracle only.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <vector>

#include "dann.h"
#include "reference/batchnorm.hpp"
#include "reference/conv2d.hpp"
#include "reference/dense.hpp"
#include "reference/elementwise.hpp"
#include "reference/maxpool2d.hpp"

namespace ref {

struct LayerMode {
    bool training = true;
    int domain_split = 0;                          // BATCHNORM training
    std::vector<double> running_mean, running_var; // BATCHNORM inference; empty = 0 / 1
    std::vector<double> dropout_mask;              // DROPOUT training
};

// "kernel_w/stride_w/pad_w of 0 copy the _h value"; stride 0 means 1 for a
// convolution and the kernel for a pooling.
inline Window resolve_window(const dann_layer_desc &d) {
    Window w{};
    w.kernel_h = d.kernel_h;
    w.kernel_w = d.kernel_w != 0 ? d.kernel_w : d.kernel_h;
    const int default_stride_h = d.kind == DANN_LAYER_MAXPOOL2D ? w.kernel_h : 1;
    const int default_stride_w = d.kind == DANN_LAYER_MAXPOOL2D ? w.kernel_w : 1;
    w.stride_h = d.stride_h != 0 ? d.stride_h : default_stride_h;
    w.stride_w = d.stride_w != 0 ? d.stride_w : (d.stride_h != 0 ? d.stride_h : default_stride_w);
    w.pad_h = d.pad_h;
    w.pad_w = d.pad_w != 0 ? d.pad_w : d.pad_h;
    return w;
}

inline double resolved_eps(const dann_layer_desc &d) {
    return d.eps != 0.0f ? static_cast<double>(d.eps) : 1e-5;
}
inline double resolved_momentum(const dann_layer_desc &d) {
    return d.momentum != 0.0f ? static_cast<double>(d.momentum) : 0.1;
}

inline std::size_t count_of(const std::vector<int> &dims) {
    std::size_t n = 1;
    for (int d : dims) n *= static_cast<std::size_t>(d);
    return n;
}

inline std::vector<int> layer_output_dims(const dann_layer_desc &d, const std::vector<int> &src_dims) {
    switch (d.kind) {
    case DANN_LAYER_CONV2D: {
        const Conv2dShape s = conv2d_shape(src_dims, d.units, resolve_window(d));
        return {s.n, s.oc, s.oh, s.ow};
    }
    case DANN_LAYER_MAXPOOL2D: {
        const Pool2dShape s = pool2d_shape(src_dims, resolve_window(d));
        return {s.n, s.c, s.oh, s.ow};
    }
    case DANN_LAYER_DENSE: return {src_dims[0], d.units};
    case DANN_LAYER_FLATTEN: return {src_dims[0], static_cast<int>(count_of(src_dims) / static_cast<std::size_t>(src_dims[0]))};
    default: return src_dims;
    }
}

// Element counts of the layer's parameters in PyTorch's order.
inline std::vector<std::size_t> layer_param_sizes(const dann_layer_desc &d, const std::vector<int> &src_dims) {
    switch (d.kind) {
    case DANN_LAYER_CONV2D: {
        const Window w = resolve_window(d);
        const std::size_t oc = static_cast<std::size_t>(d.units);
        return {oc * static_cast<std::size_t>(src_dims[1] * w.kernel_h * w.kernel_w), oc};
    }
    case DANN_LAYER_DENSE: {
        const DenseShape s = dense_shape(src_dims, d.units);
        return {static_cast<std::size_t>(s.out) * static_cast<std::size_t>(s.in), static_cast<std::size_t>(s.out)};
    }
    case DANN_LAYER_BATCHNORM: return {static_cast<std::size_t>(src_dims[1]), static_cast<std::size_t>(src_dims[1])};
    default: return {};
    }
}

inline std::vector<double> layer_forward(const dann_layer_desc &d, const std::vector<int> &src_dims,
                                         const std::vector<double> &src,
                                         const std::vector<std::vector<double>> &params,
                                         const LayerMode &mode) {
    switch (d.kind) {
    case DANN_LAYER_CONV2D:
        return conv2d_forward(conv2d_shape(src_dims, d.units, resolve_window(d)), src, params[0], params[1]);
    case DANN_LAYER_MAXPOOL2D: return maxpool2d_forward(pool2d_shape(src_dims, resolve_window(d)), src);
    case DANN_LAYER_DENSE: return dense_forward(dense_shape(src_dims, d.units), src, params[0], params[1]);
    case DANN_LAYER_RELU: return relu_forward(src);
    case DANN_LAYER_SIGMOID: return sigmoid_forward(src);
    case DANN_LAYER_DROPOUT: return mode.training ? dropout_apply(src, mode.dropout_mask) : identity(src);
    case DANN_LAYER_BATCHNORM: {
        const BatchNormShape s = batchnorm_shape(src_dims);
        if (mode.training)
            return batchnorm_forward_training(s, src, params[0], params[1], resolved_eps(d), mode.domain_split);
        const std::size_t c = static_cast<std::size_t>(s.c);
        const std::vector<double> mean = mode.running_mean.empty() ? std::vector<double>(c, 0.0) : mode.running_mean;
        const std::vector<double> var = mode.running_var.empty() ? std::vector<double>(c, 1.0) : mode.running_var;
        return batchnorm_forward_inference(s, src, params[0], params[1], mean, var, resolved_eps(d));
    }
    case DANN_LAYER_FLATTEN: return identity(src);
    }
    throw std::invalid_argument("ref::layer_forward: unknown layer kind");
}

struct LayerGrads {
    std::vector<double> diff_src;
    std::vector<std::vector<double>> diff_params;
};

// Training-mode backward pass (the only one the harness runs).
inline LayerGrads layer_backward(const dann_layer_desc &d, const std::vector<int> &src_dims,
                                 const std::vector<double> &src, const std::vector<std::vector<double>> &params,
                                 const std::vector<double> &diff_dst, const LayerMode &mode) {
    LayerGrads g;
    switch (d.kind) {
    case DANN_LAYER_CONV2D: {
        const Conv2dShape s = conv2d_shape(src_dims, d.units, resolve_window(d));
        g.diff_src = conv2d_backward_data(s, params[0], diff_dst);
        g.diff_params.resize(2);
        conv2d_backward_weights(s, src, diff_dst, g.diff_params[0], g.diff_params[1]);
        return g;
    }
    case DANN_LAYER_MAXPOOL2D:
        g.diff_src = maxpool2d_backward(pool2d_shape(src_dims, resolve_window(d)), src, diff_dst);
        return g;
    case DANN_LAYER_DENSE: {
        const DenseShape s = dense_shape(src_dims, d.units);
        g.diff_src = dense_backward_data(s, params[0], diff_dst);
        g.diff_params.resize(2);
        dense_backward_weights(s, src, diff_dst, g.diff_params[0], g.diff_params[1]);
        return g;
    }
    case DANN_LAYER_RELU: g.diff_src = relu_backward(src, diff_dst); return g;
    case DANN_LAYER_SIGMOID: g.diff_src = sigmoid_backward(src, diff_dst); return g;
    case DANN_LAYER_DROPOUT: g.diff_src = dropout_apply(diff_dst, mode.dropout_mask); return g;
    case DANN_LAYER_BATCHNORM:
        g.diff_params.resize(2);
        batchnorm_backward_training(batchnorm_shape(src_dims), src, params[0], diff_dst, resolved_eps(d),
                                    mode.domain_split, g.diff_src, g.diff_params[0], g.diff_params[1]);
        return g;
    case DANN_LAYER_FLATTEN: g.diff_src = identity(diff_dst); return g;
    }
    throw std::invalid_argument("ref::layer_backward: unknown layer kind");
}

} // namespace ref
