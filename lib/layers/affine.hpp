// Convolution and fully connected layers share one shape: weights and bias held
// plain by the model (PyTorch layout), used by the primitives in the layout
// oneDNN prefers (format_tag::any), with gradients written back plain.
// Ops supplies the primitive kinds and descriptors (conv.cpp, dense.cpp).
//
// Where oneDNN would run a reference implementation for the forward
// primitive (gemm::use_blas(), decided once per plan), the layer runs all
// three passes through the BLAS instead (layers/gemm_affine.hpp), on plain
// layouts: the model's weights and gradients are used in place, and the
// source and diff_dst are reordered to plain where they arrive blocked.
//
// Int8 inference plans (PlanCtx::int8) run a calibrated layer in int8
// (layers/quantize.hpp): u8/s8 source, s8 weights quantized per output
// channel by prepare_weights(), f32 output or, under a fused ReLU that an
// int8 reader follows, u8.
#pragma once

#include <cstdint>

#include "core/error.hpp"
#include "core/gemm.hpp"
#include "layers/conv_bf16.hpp"
#include "layers/gemm_affine.hpp"
#include "layers/layer.hpp"
#include "layers/quantize.hpp"

namespace dann {

template <class Ops>
class Affine final : public Layer {
public:
    Affine(const dann_layer_desc &desc, const ParamBinding &params)
        : desc_(desc), p_(params) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        shapes_ = Ops::shapes(desc_, src.get_desc().dims());
        if (pc.int8 && !pc.training && p_.range) {
            plan_int8(pc, src);
            return;
        }
        // An int8 source (from an int8 layer before) is turned back into f32.
        const dnn::dt in_dt = src.get_desc().data_type();
        const float dequantize =
            in_dt == dnn::u8 || in_dt == dnn::s8 ? 1.0f / pc.src_scale : 1.0f;
        const auto any = dnn::tag::any;
        // With pc.bf16 a convolution's forward pass and a dense layer's on at
        // least 16 input features take bf16 operands (source, weights) and
        // write f32. A convolution that ConvBf16Backward serves (unit
        // strides, at least 16 input channels) runs both backward products
        // as forward convolutions in bf16; other layers take a bf16 data
        // gradient and an f32 weight gradient, from bf16 operands where
        // dnn::bf16_weight_gradients() (AVX512-BF16 without AMX) and from f32
        // ones otherwise (on AMX oneDNN 2.6's bf16 backward-weights kernels
        // are slower than f32). The first convolution on RGB thus runs
        // forward in bf16 (on AMX at batch 128: 1.2 ms against 4.0 ms,
        // `dann_bench_layers` conv1 train_fwd[_bf16]); its output gradient
        // arrives in the layout its weight-gradient primitive reads
        // (preferred_diff_dst()). A convolution whose output only a max
        // pooling before another convolution reads writes it in bf16
        // (PlanCtx::bf16_dst).
        const bool bf16 = pc.bf16 && (Ops::kConv || src.get_desc().dims()[1] >= 16);
        const dnn::dt cdt = bf16 ? dnn::bf16 : dnn::f32;
        const dnn::dt wgrad_dt = bf16 && dnn::bf16_weight_gradients() ? dnn::bf16 : dnn::f32;
        src_in_ = src;
        src_any_ = dnn::md(src.get_desc().dims(), cdt, any);
        wei_any_ = dnn::md(shapes_.weights, cdt, any);
        dst_any_ = dnn::md(shapes_.dst, dnn::f32, any);
        src_f32_any_ = dnn::md(src.get_desc().dims(), dnn::f32, any);
        wei_f32_any_ = dnn::md(shapes_.weights, dnn::f32, any);
        diff_dst_any_ = dnn::md(shapes_.dst, cdt, any);
        src_wgrad_any_ = dnn::md(src.get_desc().dims(), wgrad_dt, any);
        diff_dst_wgrad_any_ = dnn::md(shapes_.dst, wgrad_dt, any);
        bias_md_ = dnn::plain({shapes_.weights[0]});
        auto pk = pc.training ? dnnl::prop_kind::forward_training
                              : dnnl::prop_kind::forward_inference;
        // A primitive_attr copy shares its handle: build a new one.
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(pc.attr.get_scratchpad_mode());
        if (pc.fuse_relu && !pc.training) {
            dnnl::post_ops ops;
            ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
            attr.set_post_ops(ops);
        }
        // Under PlanCtx::bf16_dst the forward output is bf16 (the gradients
        // stay f32: dst_any_ describes them).
        const dnn::md fwd_dst_any =
            bf16 && Ops::kConv && pc.bf16_dst ? dnn::md(shapes_.dst, dnn::bf16, any) : dst_any_;
        fpd_ = typename Ops::Fwd::primitive_desc(
            Ops::fwd_desc(pk, src_any_, wei_any_, bias_md_, fwd_dst_any, shapes_), attr,
            pc.dev.eng);
        blas_ = gemm::use_blas(fpd_);
        fused_relu_ = pc.fuse_relu && !pc.training && !blas_;
        if (blas_) {
            src_ = dnn::reformat(pc, src, dnn::plain(src.get_desc().dims()), dequantize);
            dst_ = pc.arena.make(dnn::plain(shapes_.dst));
            gemm_.plan(pc.arena, Ops::geometry(desc_, src.get_desc().dims(), shapes_));
            return;
        }
        src_ = dnn::reformat(pc, src, fpd_.src_desc(), dequantize);
        if constexpr (Ops::kConv)
            bf16_backward_ = cdt == dnn::bf16 &&
                             ConvBf16Backward::applies(
                                 Ops::geometry(desc_, src.get_desc().dims(), shapes_));
        weights_plain_ =
            pc.arena.view(dnn::md(shapes_.weights, dnn::f32, shapes_.weights_tag), p_.weight);
        bias_ = pc.arena.view(bias_md_, p_.bias);
        weights_fwd_ = dnn::reformat(pc, weights_plain_, fpd_.weights_desc());
        dst_ = pc.arena.make(fpd_.dst_desc());
        fwd_ = pc.record(typename Ops::Fwd(fpd_),
                         {{DNNL_ARG_SRC, &src_.mem},
                          {DNNL_ARG_WEIGHTS, &weights_fwd_.mem},
                          {DNNL_ARG_BIAS, &bias_},
                          {DNNL_ARG_DST, &dst_}},
                         &fpd_);
    }

    bool fused_relu() const override { return fused_relu_; }
    bool output_reusable() const override { return true; }

    void observe_range() override {
        if (!p_.range || int8_) return;
        QuantRange &r = *p_.range;
        // Blocked layouts pad with zeros, which widen a range only to 0.
        quant::widen(dnn::data_f32(src_.mem), dnn::physical_floats(src_.mem.get_desc()), r.in_min,
                     r.in_max);
        quant::widen(dnn::data_f32(dst_), dnn::physical_floats(dst_.get_desc()), r.out_min,
                     r.out_max);
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!p_.grad_weight || !p_.grad_bias)
            fail(DANN_ERR_INTERNAL, "backward planned without gradient storage");
        if (blas_) {
            diff_dst_bw_ = dnn::reformat(pc, diff_dst, dnn::plain(shapes_.dst));
            gemm_.plan_backward(pc.arena);
            if (need_diff_src) diff_src_ = pc.arena.make(dnn::plain(src_.mem.get_desc().dims()));
            return;
        }
        if (bf16_backward_) {
            bf16_bwd_.plan(pc, Ops::geometry(desc_, src_in_.get_desc().dims(), shapes_), src_.mem,
                           diff_dst, p_.weight, p_.grad_weight, p_.grad_bias, need_diff_src);
            if (need_diff_src) diff_src_ = bf16_bwd_.diff_src();
            return;
        }
        plan_bwd_weights(pc.dev.eng);
        // The forward pass's copy of the source serves when it has the layout.
        src_bw_ = bwpd_.src_desc() == src_.mem.get_desc()
                      ? dnn::reformat(pc, src_.mem, bwpd_.src_desc())
                      : dnn::reformat(pc, src_in_, bwpd_.src_desc());
        diff_dst_bw_ = dnn::reformat(pc, diff_dst, bwpd_.diff_dst_desc());
        // The gradient arrives in the primitive's layout and is stored plain.
        grad_weights_plain_ = pc.arena.view(weights_plain_.get_desc(), p_.grad_weight);
        if (bwpd_.diff_weights_desc() == weights_plain_.get_desc()) {
            grad_weights_ = grad_weights_plain_;
        } else {
            grad_weights_ = pc.arena.make(bwpd_.diff_weights_desc());
            grad_reorder_ = dnn::reorder_into(pc, grad_weights_, grad_weights_plain_);
        }
        if (!(bwpd_.diff_bias_desc() == bias_md_))
            fail(DANN_ERR_INTERNAL, "unexpected bias gradient layout");
        grad_bias_ = pc.arena.view(bias_md_, p_.grad_bias);
        bwd_weights_ = pc.record(typename Ops::BwdWeights(bwpd_),
                                 {{DNNL_ARG_SRC, &src_bw_.mem},
                                  {DNNL_ARG_DIFF_DST, &diff_dst_bw_.mem},
                                  {DNNL_ARG_DIFF_WEIGHTS, &grad_weights_},
                                  {DNNL_ARG_DIFF_BIAS, &grad_bias_}},
                                 &bwpd_);
        if (!need_diff_src) return;
        bdpd_ = typename Ops::BwdData::primitive_desc(
            Ops::bwd_data_desc(src_f32_any_, wei_any_, diff_dst_any_, shapes_), pc.attr,
            pc.dev.eng, fpd_);
        // The forward weights serve when the layouts agree (prepare_weights
        // refreshes them first).
        weights_bd_ = dnn::reformat(pc, weights_fwd_.mem, bdpd_.weights_desc());
        // From the weights-gradient pass's copy of diff_dst: converted once.
        diff_dst_bd_ = dnn::reformat(pc, diff_dst_bw_.mem, bdpd_.diff_dst_desc());
        diff_src_ = pc.arena.make(bdpd_.diff_src_desc());
        bwd_data_ = pc.record(typename Ops::BwdData(bdpd_),
                              {{DNNL_ARG_DIFF_DST, &diff_dst_bd_.mem},
                               {DNNL_ARG_WEIGHTS, &weights_bd_.mem},
                               {DNNL_ARG_DIFF_SRC, &diff_src_}},
                              &bdpd_);
    }

    // The weight-gradient primitive's layout of the output gradient, for a
    // layer before that writes it (max pooling's own backward pass).
    dnn::md preferred_diff_dst() override {
        if (blas_ || int8_ || bf16_backward_ || !fwd_) return {};
        plan_bwd_weights(fpd_.get_engine());
        // Gradients flow in f32: a bf16 operand is converted on the way in.
        return dnn::with_type(bwpd_.diff_dst_desc(), dnn::f32);
    }

    void prepare_weights(dnn::Device &dev) override {
        if (int8_) {
            const int64_t oc = shapes_.weights[0];
            quant::quantize_weights(p_.weight, p_.bias, oc, weights_q_.get_desc().get_size() / oc,
                                    src_scale_, int8_dst_scale_,
                                    static_cast<int8_t *>(weights_q_.get_data_handle()),
                                    dnn::data_f32(bias_), dnn::data_f32(scales_));
        }
        dnn::run_if(dev, weights_fwd_.call);
        dnn::run_if(dev, weights_bd_.call);
        if (bf16_backward_) bf16_bwd_.prepare_weights(dev);
    }

    void forward(dnn::Device &dev, const RunState &) override {
        dnn::run_if(dev, src_.call);
        if (blas_) {
            gemm_.forward(dnn::data_f32(src_.mem), p_.weight, p_.bias, dnn::data_f32(dst_));
            return;
        }
        dnn::run(dev, fwd_);
    }

    void backward(dnn::Device &dev, const RunState &) override {
        if (blas_) {
            dnn::run_if(dev, diff_dst_bw_.call);
            const float *diff_dst = dnn::data_f32(diff_dst_bw_.mem);
            gemm_.backward_weights(dnn::data_f32(src_.mem), diff_dst, p_.grad_weight,
                                   p_.grad_bias);
            if (diff_src_) gemm_.backward_data(diff_dst, p_.weight, dnn::data_f32(diff_src_));
            return;
        }
        if (bf16_backward_) {
            bf16_bwd_.run(dev);
            return;
        }
        dnn::run_if(dev, src_bw_.call);
        dnn::run_if(dev, diff_dst_bw_.call);
        dnn::run(dev, bwd_weights_);
        dnn::run_if(dev, grad_reorder_);
        if (bwd_data_) {
            dnn::run_if(dev, diff_dst_bd_.call);
            dnn::run(dev, bwd_data_);
        }
    }

private:
    void plan_bwd_weights(const dnnl::engine &eng) {
        if (bwpd_) return;
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        // A fully connected layer's gradient is asked for in the model's plain
        // layout first: oneDNN then runs it as one GEMM (gemm:jit), which also
        // saves the reorder of a blocked gradient (together about 40 % of the
        // layer's backward pass at the paper's shapes, e.g. 118 -> 87 ms for
        // SVHN's 8192 -> 3072 layer at batch 64, 369 -> 206 us for MNIST's
        // 768 -> 100). A reference implementation is not taken.
        if (desc_.kind == DANN_LAYER_DENSE) {
            try {
                typename Ops::BwdWeights::primitive_desc plain(
                    Ops::bwd_weights_desc(src_wgrad_any_, weights_plain_.get_desc(), bias_md_,
                                          diff_dst_wgrad_any_, shapes_),
                    attr, eng, fpd_);
                if (!gemm::is_reference(dnn::impl_name(plain))) {
                    bwpd_ = plain;
                    return;
                }
            } catch (const dnnl::error &) {
                // no implementation takes the plain layout: the blocked one below
            }
        }
        bwpd_ = typename Ops::BwdWeights::primitive_desc(
            Ops::bwd_weights_desc(src_wgrad_any_, wei_f32_any_, bias_md_, diff_dst_wgrad_any_, shapes_),
            attr, eng, fpd_);
    }

    void plan_int8(dnn::PlanCtx &pc, const dnnl::memory &src) {
        const QuantRange &r = *p_.range;
        const dnn::md &in = src.get_desc();
        // An f32 source is quantized on the way in with its calibrated range;
        // an int8 one arrives with its producer's scale.
        dnn::dt src_dt = in.data_type();
        float quantize = 1.0f;
        if (src_dt == dnn::f32) {
            const quant::Activation a = quant::activation(r.in_min, r.in_max);
            src_dt = a.type;
            src_scale_ = quantize = a.scale;
        } else {
            src_scale_ = pc.src_scale;
        }
        const bool u8_dst = pc.fuse_relu && pc.int8_dst && r.out_max > 0.0f;
        int8_dst_scale_ = u8_dst ? quant::activation(0.0f, r.out_max).scale : 1.0f;
        dst_scale_ = u8_dst ? int8_dst_scale_ : 0.0f;

        const auto any = dnn::tag::any;
        bias_md_ = dnn::plain({shapes_.weights[0]});
        dnn::dims per_channel(shapes_.dst.size(), 1);
        per_channel[1] = shapes_.weights[0];
        const dnn::md scales_md = dnn::plain(per_channel);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(pc.attr.get_scratchpad_mode());
        dnnl::post_ops ops;
        ops.append_binary(dnnl::algorithm::binary_mul, scales_md);
        if (pc.fuse_relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        attr.set_post_ops(ops);
        fpd_ = typename Ops::Fwd::primitive_desc(
            Ops::fwd_desc(dnnl::prop_kind::forward_inference, dnn::md(in.dims(), src_dt, any),
                          dnn::md(shapes_.weights, dnn::s8, any), bias_md_,
                          dnn::md(shapes_.dst, u8_dst ? dnn::u8 : dnn::f32, any), shapes_),
            attr, pc.dev.eng);
        src_ = dnn::reformat(pc, src, fpd_.src_desc(), quantize);
        weights_q_ = pc.arena.make(dnn::md(shapes_.weights, dnn::s8, shapes_.weights_tag));
        weights_fwd_ = dnn::reformat(pc, weights_q_, fpd_.weights_desc());
        bias_ = pc.arena.make(bias_md_);
        scales_ = pc.arena.make(scales_md);
        dst_ = pc.arena.make(fpd_.dst_desc());
        fwd_ = pc.record(typename Ops::Fwd(fpd_),
                         {{DNNL_ARG_SRC, &src_.mem},
                          {DNNL_ARG_WEIGHTS, &weights_fwd_.mem},
                          {DNNL_ARG_BIAS, &bias_},
                          {DNNL_ARG_DST, &dst_},
                          {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, &scales_}},
                         &fpd_);
        fused_relu_ = pc.fuse_relu;
        int8_ = true;
    }

    dann_layer_desc desc_;
    ParamBinding p_;
    typename Ops::Shapes shapes_;
    dnn::md src_any_, wei_any_, dst_any_, bias_md_, src_f32_any_, wei_f32_any_, diff_dst_any_;
    // The weight gradient's source and output gradient (plan_bwd_weights()).
    dnn::md src_wgrad_any_, diff_dst_wgrad_any_;
    typename Ops::Fwd::primitive_desc fpd_;
    typename Ops::BwdWeights::primitive_desc bwpd_;
    typename Ops::BwdData::primitive_desc bdpd_;
    dnn::Reformat src_, weights_fwd_, src_bw_, diff_dst_bw_, weights_bd_, diff_dst_bd_;
    dnnl::memory src_in_, weights_plain_, bias_, grad_weights_, grad_weights_plain_, grad_bias_;
    bool blas_ = false;
    bool fused_relu_ = false;
    // Int8: the source's scale, the output's (1 for f32), and the quantized
    // weights (plain), bias and per-channel factors that prepare_weights()
    // writes.
    bool int8_ = false;
    float src_scale_ = 1.0f, int8_dst_scale_ = 1.0f;
    dnnl::memory weights_q_, scales_;
    GemmAffine gemm_;
    // bf16 training convolutions that ConvBf16Backward serves (decided by
    // plan_forward()): the backward pass as forward convolutions.
    bool bf16_backward_ = false;
    ConvBf16Backward bf16_bwd_;
    dnn::Call *fwd_ = nullptr, *bwd_weights_ = nullptr, *bwd_data_ = nullptr,
              *grad_reorder_ = nullptr;
};

} // namespace dann
