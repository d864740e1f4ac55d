#include "layers/factory.hpp"

namespace dann {
namespace {

// ReLU and sigmoid, in the layout of their input. When the input is a plan
// buffer that nothing else reads again (PlanCtx::src_reusable), the output is
// written over it and the backward pass works from the output (ReLU's and the
// logistic's derivatives are functions of their output).
class Eltwise final : public Layer {
public:
    explicit Eltwise(dnnl::algorithm alg, dnnl::algorithm alg_from_dst)
        : alg_(alg), alg_from_dst_(alg_from_dst) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        src_ = src;
        in_place_ = pc.src_reusable;
        const dnnl::algorithm alg = in_place_ ? alg_from_dst_ : alg_;
        auto pk = pc.training ? dnnl::prop_kind::forward_training
                              : dnnl::prop_kind::forward_inference;
        fpd_ = dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(pk, alg, src.get_desc(), 0.0f, 0.0f), pc.attr,
            pc.dev.eng);
        dst_ = in_place_ && fpd_.dst_desc() == src.get_desc()
                   ? pc.arena.view(fpd_.dst_desc(), src.get_data_handle())
                   : pc.arena.make(fpd_.dst_desc());
        fwd_ = pc.record(dnnl::eltwise_forward(fpd_), {{DNNL_ARG_SRC, &src_}, {DNNL_ARG_DST, &dst_}},
                         &fpd_);
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!need_diff_src) return;
        const dnnl::algorithm alg = in_place_ ? alg_from_dst_ : alg_;
        const dnnl::memory &data = in_place_ ? dst_ : src_;
        bpd_ = dnnl::eltwise_backward::primitive_desc(
            dnnl::eltwise_backward::desc(alg, data.get_desc(), data.get_desc(), 0.0f, 0.0f),
            pc.attr, pc.dev.eng, fpd_);
        diff_dst_ = dnn::reformat(pc, diff_dst, bpd_.diff_dst_desc());
        diff_src_ = pc.arena.make(bpd_.diff_src_desc());
        bwd_ = pc.record(dnnl::eltwise_backward(bpd_),
                         {{in_place_ ? DNNL_ARG_DST : DNNL_ARG_SRC, &data},
                          {DNNL_ARG_DIFF_DST, &diff_dst_.mem},
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
    dnnl::algorithm alg_, alg_from_dst_;
    bool in_place_ = false;
    dnnl::memory src_;
    dnnl::eltwise_forward::primitive_desc fpd_;
    dnnl::eltwise_backward::primitive_desc bpd_;
    dnn::Reformat diff_dst_;
    dnn::Call *fwd_ = nullptr, *bwd_ = nullptr;
};

} // namespace

std::unique_ptr<Layer> make_eltwise(const dann_layer_desc &desc) {
    if (desc.kind == DANN_LAYER_RELU)
        return std::make_unique<Eltwise>(dnnl::algorithm::eltwise_relu,
                                         dnnl::algorithm::eltwise_relu_use_dst_for_bwd);
    return std::make_unique<Eltwise>(dnnl::algorithm::eltwise_logistic,
                                     dnnl::algorithm::eltwise_logistic_use_dst_for_bwd);
}

} // namespace dann
