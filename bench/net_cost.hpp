// Shapes and work of a dann network, computed from its public description
// (dann_model_desc): what the benchmarks count in their FLOP/s counters.
// Multiply-adds of convolution and dense layers only (bias, pooling and
// activations ignored); one multiply-add is 2 FLOPs.
#pragma once

#include <cstdint>
#include <string>

#include "dann.h"

namespace dann_bench {

// An activation: (c, h, w), or a flat vector of c features.
struct Shape {
    int64_t c = 0, h = 1, w = 1;
    bool flat = false;
    int64_t elems() const { return c * h * w; }
};

// The description's defaults made explicit (the rules of dann_layer_desc).
inline dann_layer_desc explicit_desc(dann_layer_desc d) {
    if (d.kind == DANN_LAYER_CONV2D || d.kind == DANN_LAYER_MAXPOOL2D) {
        const bool conv = d.kind == DANN_LAYER_CONV2D;
        if (d.kernel_w == 0) {
            d.kernel_w = d.kernel_h;
            if (d.stride_w == 0) d.stride_w = d.stride_h;
            if (d.pad_w == 0) d.pad_w = d.pad_h;
        }
        if (d.stride_h == 0) d.stride_h = conv ? 1 : d.kernel_h;
        if (d.stride_w == 0) d.stride_w = conv ? 1 : d.kernel_w;
    }
    return d;
}

inline Shape next_shape(const Shape &in, const dann_layer_desc &layer) {
    const dann_layer_desc d = explicit_desc(layer);
    switch (d.kind) {
    case DANN_LAYER_CONV2D:
    case DANN_LAYER_MAXPOOL2D:
        return {d.kind == DANN_LAYER_CONV2D ? d.units : in.c,
                (in.h + 2 * d.pad_h - d.kernel_h) / d.stride_h + 1,
                (in.w + 2 * d.pad_w - d.kernel_w) / d.stride_w + 1, false};
    case DANN_LAYER_DENSE: return {d.units, 1, 1, true};
    case DANN_LAYER_FLATTEN: return {in.elems(), 1, 1, true};
    default: return in;
    }
}

// Multiply-adds of one sample through the layer.
inline double layer_macs(const Shape &in, const dann_layer_desc &layer) {
    const dann_layer_desc d = explicit_desc(layer);
    const Shape out = next_shape(in, d);
    if (d.kind == DANN_LAYER_CONV2D)
        return static_cast<double>(out.elems()) * static_cast<double>(in.c) * d.kernel_h * d.kernel_w;
    if (d.kind == DANN_LAYER_DENSE) return static_cast<double>(in.elems()) * d.units;
    return 0.0;
}

// Trainable scalars of the layer.
inline double layer_weights(const Shape &in, const dann_layer_desc &layer) {
    const dann_layer_desc d = explicit_desc(layer);
    if (d.kind == DANN_LAYER_CONV2D)
        return (static_cast<double>(in.c) * d.kernel_h * d.kernel_w + 1.0) * d.units;
    if (d.kind == DANN_LAYER_DENSE) return (static_cast<double>(in.elems()) + 1.0) * d.units;
    if (d.kind == DANN_LAYER_BATCHNORM) return 2.0 * static_cast<double>(in.c);
    return 0.0;
}

struct NetCost {
    double features = 0, label = 0, domain = 0; // multiply-adds per sample
    double first_conv = 0; // of the first layer when it is a convolution
    double weights = 0;    // trainable scalars
    Shape feature;         // the features' output, before flattening
};

inline NetCost net_cost(const dann_model_desc &m) {
    NetCost c;
    Shape s{m.in_channels, m.in_height, m.in_width, false};
    for (size_t i = 0; i < m.n_features; ++i) {
        const double macs = layer_macs(s, m.features[i]);
        if (i == 0 && m.features[i].kind == DANN_LAYER_CONV2D) c.first_conv = macs;
        c.features += macs;
        c.weights += layer_weights(s, m.features[i]);
        s = next_shape(s, m.features[i]);
    }
    c.feature = s;
    const Shape flat{s.elems(), 1, 1, true};
    struct Head {
        const dann_layer_desc *layers;
        size_t n;
        double *macs;
    };
    for (const Head &h : {Head{m.label_head, m.n_label_head, &c.label},
                          Head{m.domain_head, m.n_domain_head, &c.domain}}) {
        Shape x = flat;
        for (size_t i = 0; i < h.n; ++i) {
            *h.macs += layer_macs(x, h.layers[i]);
            c.weights += layer_weights(x, h.layers[i]);
            x = next_shape(x, h.layers[i]);
        }
    }
    return c;
}

// FLOPs of n samples through the features, ns through the label head and nd
// through the domain head. Training adds the backward pass: twice the forward
// work for every layer but the first convolution, which computes no input
// gradient (its weight gradient only).
inline double net_flops(const NetCost &c, double n, double ns, double nd, bool train) {
    const double fwd = 2.0 * (n * c.features + ns * c.label + nd * c.domain);
    return train ? 3.0 * fwd - 2.0 * n * c.first_conv : fwd;
}

} // namespace dann_bench
