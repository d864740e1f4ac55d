#include <algorithm>

#include "layers/factory.hpp"

namespace dann {
namespace {

// Max pooling in PyTorch's floor mode; padded positions never win.
class MaxPool2d final : public Layer {
public:
    explicit MaxPool2d(const dann_layer_desc &d) : desc_(d) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        const auto s = src.get_desc().dims();
        const int64_t kh = desc_.kernel_h, kw = desc_.kernel_w;
        const int64_t sh = desc_.stride_h, sw = desc_.stride_w;
        const int64_t ph = desc_.pad_h, pw = desc_.pad_w;
        const int64_t oh = (s[2] + 2 * ph - kh) / sh + 1;
        const int64_t ow = (s[3] + 2 * pw - kw) / sw + 1;
        // Right padding that yields exactly the floor-mode output size.
        const int64_t prh = std::max<int64_t>(0, (oh - 1) * sh + kh - s[2] - ph);
        const int64_t prw = std::max<int64_t>(0, (ow - 1) * sw + kw - s[3] - pw);
        strides_ = {sh, sw};
        kernel_ = {kh, kw};
        pad_l_ = {ph, pw};
        pad_r_ = {prh, prw};
        src_ = src;
        auto pk = pc.training ? dnnl::prop_kind::forward_training
                              : dnnl::prop_kind::forward_inference;
        dnn::md dst_any({s[0], s[1], oh, ow}, dnn::f32, dnn::tag::any);
        fpd_ = dnnl::pooling_forward::primitive_desc(
            dnnl::pooling_forward::desc(pk, dnnl::algorithm::pooling_max, src.get_desc(),
                                        dst_any, strides_, kernel_, pad_l_, pad_r_),
            pc.attr, pc.dev.eng);
        dst_ = pc.arena.make(fpd_.dst_desc());
        if (pc.training) {
            workspace_ = pc.arena.make(fpd_.workspace_desc());
            fwd_ = pc.record(dnnl::pooling_forward(fpd_),
                             {{DNNL_ARG_SRC, &src_}, {DNNL_ARG_DST, &dst_},
                              {DNNL_ARG_WORKSPACE, &workspace_}},
                             &fpd_);
        } else {
            fwd_ = pc.record(dnnl::pooling_forward(fpd_),
                             {{DNNL_ARG_SRC, &src_}, {DNNL_ARG_DST, &dst_}}, &fpd_);
        }
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!need_diff_src) return;
        bpd_ = dnnl::pooling_backward::primitive_desc(
            dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, src_.get_desc(),
                                         fpd_.dst_desc(), strides_, kernel_, pad_l_, pad_r_),
            pc.attr, pc.dev.eng, fpd_);
        diff_dst_ = dnn::reformat(pc, diff_dst, bpd_.diff_dst_desc());
        diff_src_ = pc.arena.make(bpd_.diff_src_desc());
        bwd_ = pc.record(dnnl::pooling_backward(bpd_),
                         {{DNNL_ARG_DIFF_DST, &diff_dst_.mem},
                          {DNNL_ARG_WORKSPACE, &workspace_},
                          {DNNL_ARG_DIFF_SRC, &diff_src_}},
                         &bpd_);
    }

    void forward(dnn::Device &dev, const RunState &) override { dnn::run(dev, fwd_); }

    void backward(dnn::Device &dev, const RunState &) override {
        if (!bwd_) return;
        dnn::run_if(dev, diff_dst_.call);
        dnn::run(dev, bwd_);
    }

private:
    dann_layer_desc desc_;
    dnn::dims strides_, kernel_, pad_l_, pad_r_;
    dnnl::memory src_, workspace_;
    dnnl::pooling_forward::primitive_desc fpd_;
    dnnl::pooling_backward::primitive_desc bpd_;
    dnn::Reformat diff_dst_;
    dnn::Call *fwd_ = nullptr, *bwd_ = nullptr;
};

} // namespace

std::unique_ptr<Layer> make_maxpool2d(const dann_layer_desc &desc) {
    return std::make_unique<MaxPool2d>(desc);
}

} // namespace dann
