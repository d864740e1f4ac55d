#include "layers/factory.hpp"

namespace dann {
namespace {

// ReLU and sigmoid, in the layout of their input.
class Eltwise final : public Layer {
public:
    explicit Eltwise(dnnl::algorithm alg) : alg_(alg) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        src_ = src;
        auto pk = pc.training ? dnnl::prop_kind::forward_training
                              : dnnl::prop_kind::forward_inference;
        fpd_ = dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(pk, alg_, src.get_desc(), 0.0f, 0.0f), pc.attr,
            pc.dev.eng);
        dst_ = pc.arena.make(fpd_.dst_desc());
        fwd_ = pc.record(dnnl::eltwise_forward(fpd_), {{DNNL_ARG_SRC, &src_}, {DNNL_ARG_DST, &dst_}},
                         &fpd_);
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!need_diff_src) return;
        bpd_ = dnnl::eltwise_backward::primitive_desc(
            dnnl::eltwise_backward::desc(alg_, src_.get_desc(), src_.get_desc(), 0.0f, 0.0f),
            pc.attr, pc.dev.eng, fpd_);
        diff_dst_ = dnn::reformat(pc, diff_dst, bpd_.diff_dst_desc());
        diff_src_ = pc.arena.make(bpd_.diff_src_desc());
        bwd_ = pc.record(dnnl::eltwise_backward(bpd_),
                         {{DNNL_ARG_SRC, &src_},
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
    dnnl::algorithm alg_;
    dnnl::memory src_;
    dnnl::eltwise_forward::primitive_desc fpd_;
    dnnl::eltwise_backward::primitive_desc bpd_;
    dnn::Reformat diff_dst_;
    dnn::Call *fwd_ = nullptr, *bwd_ = nullptr;
};

} // namespace

std::unique_ptr<Layer> make_eltwise(const dann_layer_desc &desc) {
    return std::make_unique<Eltwise>(desc.kind == DANN_LAYER_RELU
                                         ? dnnl::algorithm::eltwise_relu
                                         : dnnl::algorithm::eltwise_logistic);
}

} // namespace dann
