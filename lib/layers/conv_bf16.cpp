#include "layers/conv_bf16.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dann {
namespace {

// The same memory seen with its first two dimensions swapped.
dnnl::memory swapped(dnn::PlanCtx &pc, const dnnl::memory &m) {
    return pc.arena.view(m.get_desc().permute_axes({1, 0, 2, 3}), m.get_data_handle());
}

dnnl::convolution_forward::primitive_desc conv(dnn::PlanCtx &pc, const dnn::md &src,
                                               const dnn::md &weights, const dnn::md &dst,
                                               const dnn::dims &pad) {
    // A primitive_attr copy shares its handle: build a new one.
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(pc.attr.get_scratchpad_mode());
    return dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                        dnnl::algorithm::convolution_direct, src, weights, dst,
                                        {1, 1}, pad, pad),
        attr, pc.dev.eng);
}

dnn::Call *record(dnn::PlanCtx &pc, const dnnl::convolution_forward::primitive_desc &pd,
                  const dnnl::memory &src, const dnnl::memory &weights, const dnnl::memory &dst) {
    return pc.record(dnnl::convolution_forward(pd),
                     {{DNNL_ARG_SRC, &src}, {DNNL_ARG_WEIGHTS, &weights}, {DNNL_ARG_DST, &dst}},
                     &pd);
}

} // namespace

bool ConvBf16Backward::applies(const GemmGeometry &g) {
    return g.conv && g.sh == 1 && g.sw == 1 && g.ph >= 0 && g.pw >= 0 && g.ph < g.kh &&
           g.pw < g.kw && g.c >= 16 && g.oh * g.ow <= kMaxOutputPositions;
}

void ConvBf16Backward::plan(dnn::PlanCtx &pc, const GemmGeometry &g, const dnnl::memory &src,
                            const dnnl::memory &diff_dst, const float *weight,
                            float *grad_weight, float *grad_bias, bool need_diff_src) {
    if (!applies(g) || !weight || !grad_weight || !grad_bias)
        fail(DANN_ERR_INTERNAL, "bf16 convolution backward planned for an unsupported layer");
    g_ = g;
    weight_ = weight;
    grad_bias_ = grad_bias;
    const auto any = dnn::tag::any;
    const int64_t n = g.n, c = g.c, h = g.h, w = g.w, oc = g.oc, oh = g.oh, ow = g.ow;
    const int64_t kh = g.kh, kw = g.kw;
    const dnn::dims dst_dims{n, oc, oh, ow};

    // Data gradient first: its bf16 copy of dY also feeds the weight gradient.
    if (need_diff_src) {
        const auto dpd = conv(pc, dnn::md(dst_dims, dnn::bf16, any),
                              dnn::md({c, oc, kh, kw}, dnn::bf16, any),
                              dnn::md({n, c, h, w}, dnn::f32, any),
                              {kh - 1 - g.ph, kw - 1 - g.pw});
        dy_ = dnn::reformat(pc, diff_dst, dpd.src_desc());
        flipped_ = pc.arena.alloc_f32(static_cast<size_t>(c * oc * kh * kw));
        flipped_bf16_ = dnn::reformat(pc, pc.arena.view(dnn::plain({c, oc, kh, kw}), flipped_),
                                      dpd.weights_desc());
        diff_src_ = pc.arena.make(dpd.dst_desc());
        data_ = record(pc, dpd, dy_.mem, flipped_bf16_.mem, diff_src_);
    }

    const auto wpd = conv(pc, dnn::md({c, n, h, w}, dnn::bf16, any),
                          dnn::md({oc, n, oh, ow}, dnn::bf16, any),
                          dnn::md({c, oc, kh, kw}, dnn::f32, any), {g.ph, g.pw});
    x_t_ = dnn::reformat(pc, swapped(pc, src), wpd.src_desc());
    dy_t_ = dnn::reformat(pc, swapped(pc, need_diff_src ? dy_.mem : diff_dst),
                          wpd.weights_desc());
    dw_t_ = pc.arena.make(wpd.dst_desc());
    weights_ = record(pc, wpd, x_t_.mem, dy_t_.mem, dw_t_);
    grad_t_ = swapped(pc, pc.arena.view(dnn::plain({oc, c, kh, kw}), grad_weight));
    grad_reorder_ = dnn::reorder_into(pc, dw_t_, grad_t_);

    // The bias gradient reads the f32 output gradient where it is, in the
    // layouts the network produces, and an NHWC copy otherwise. Each layout
    // is walked as blocks of lanes (channels) at every output position:
    // NCHW one lane per block, NHWC one block of all channels, nChw16c /
    // nChw8c blocks of 16 / 8 (the last one padded).
    const dnn::md &dd = diff_dst.get_desc();
    const int64_t hw = oh * ow;
    diff_dst_f32_ = diff_dst;
    if (dd == dnn::md(dst_dims, dnn::f32, dnn::tag::nchw)) {
        bias_walk_ = {1, oc, hw, 1, oc * hw};
    } else if (dd == dnn::md(dst_dims, dnn::f32, dnn::tag::nChw16c)) {
        bias_walk_ = {16, (oc + 15) / 16, hw * 16, 16, (oc + 15) / 16 * hw * 16};
    } else if (dd == dnn::md(dst_dims, dnn::f32, dnn::tag::nChw8c)) {
        bias_walk_ = {8, (oc + 7) / 8, hw * 8, 8, (oc + 7) / 8 * hw * 8};
    } else {
        diff_dst_plain_ = dnn::reformat(pc, diff_dst, dnn::md(dst_dims, dnn::f32, dnn::tag::nhwc));
        diff_dst_f32_ = diff_dst_plain_.mem;
        bias_walk_ = {oc, 1, 0, oc, hw * oc};
    }
    const auto lanes = static_cast<size_t>(bias_walk_.lanes * bias_walk_.blocks);
    bias_acc_.assign(lanes, 0.0);
    bias_part_.assign(lanes, 0.0f);
}

void ConvBf16Backward::prepare_weights(dnn::Device &dev) {
    if (!data_) return;
    const int64_t c = g_.c, oc = g_.oc, kh = g_.kh, kw = g_.kw;
    // W'(i, o, y, x) = W(o, i, kh-1-y, kw-1-x)
    for (int64_t o = 0; o < oc; ++o)
        for (int64_t i = 0; i < c; ++i) {
            const float *from = weight_ + (o * c + i) * kh * kw;
            float *to = flipped_ + (i * oc + o) * kh * kw;
            for (int64_t k = 0; k < kh * kw; ++k) to[kh * kw - 1 - k] = from[k];
        }
    dnn::run_if(dev, flipped_bf16_.call);
}

void ConvBf16Backward::bias_gradient() {
    const float *d = dnn::data_f32(diff_dst_f32_);
    const BiasWalk w = bias_walk_;
    const int64_t positions = g_.oh * g_.ow;
    std::fill(bias_acc_.begin(), bias_acc_.end(), 0.0);
    // Per sample in f32 (the lanes vectorised), across samples in double.
    for (int64_t s = 0; s < g_.n; ++s) {
        std::fill(bias_part_.begin(), bias_part_.end(), 0.0f);
        for (int64_t cb = 0; cb < w.blocks; ++cb) {
            const float *p = d + s * w.sample_stride + cb * w.block_stride;
            float *q = bias_part_.data() + cb * w.lanes;
            for (int64_t i = 0; i < positions; ++i)
#pragma omp simd
                for (int64_t l = 0; l < w.lanes; ++l) q[l] += p[i * w.position_stride + l];
        }
        for (size_t ch = 0; ch < bias_acc_.size(); ++ch)
            bias_acc_[ch] += static_cast<double>(bias_part_[ch]);
    }
    for (int64_t ch = 0; ch < g_.oc; ++ch) grad_bias_[ch] = static_cast<float>(bias_acc_[ch]);
}

void ConvBf16Backward::run(dnn::Device &dev) {
    dnn::run_if(dev, dy_.call);
    dnn::run_if(dev, x_t_.call);
    dnn::run_if(dev, dy_t_.call);
    dnn::run(dev, weights_);
    dnn::run(dev, grad_reorder_);
    dnn::run_if(dev, diff_dst_plain_.call);
    bias_gradient();
    if (data_) dnn::run(dev, data_);
}

} // namespace dann
