#include "layers/factory.hpp"

namespace dann {
namespace {

// (N, C, H, W) in any layout -> (N, C*H*W) plain, in C*H*W order as PyTorch
// flattens. Free when the input is already plain. An int8 input (int8 plans)
// comes out as f32: the features are f32 for every reader.
class Flatten final : public Layer {
public:
    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        src_dims_ = src.get_desc().dims();
        const bool int8 = src.get_desc().data_type() != dnn::f32;
        if (src_dims_.size() == 2 && !int8) {
            dst_ = src;
            return;
        }
        int64_t features = 1;
        for (size_t i = 1; i < src_dims_.size(); ++i) features *= src_dims_[i];
        to_plain_ =
            dnn::reformat(pc, src, dnn::plain(src_dims_), int8 ? 1.0f / pc.src_scale : 1.0f);
        dst_ = pc.arena.view(dnn::plain({src_dims_[0], features}), to_plain_.mem.get_data_handle());
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!need_diff_src) return;
        if (src_dims_.size() == 2) {
            diff_src_ = diff_dst;
            return;
        }
        diff_plain_ = dnn::reformat(pc, diff_dst, dnn::plain(diff_dst.get_desc().dims()));
        diff_src_ = pc.arena.view(dnn::plain(src_dims_), diff_plain_.mem.get_data_handle());
    }

    void forward(dnn::Device &dev, const RunState &) override { dnn::run_if(dev, to_plain_.call); }
    void backward(dnn::Device &dev, const RunState &) override {
        dnn::run_if(dev, diff_plain_.call);
    }

private:
    dnn::dims src_dims_;
    dnn::Reformat to_plain_, diff_plain_;
};

} // namespace

std::unique_ptr<Layer> make_flatten() { return std::make_unique<Flatten>(); }

std::unique_ptr<Layer> make_layer(const dann_layer_desc &desc, const ParamBinding &params,
                                  const BatchSplit &split, uint64_t layer_id) {
    switch (desc.kind) {
    case DANN_LAYER_CONV2D: return make_conv2d(desc, params);
    case DANN_LAYER_MAXPOOL2D: return make_maxpool2d(desc);
    case DANN_LAYER_DENSE: return make_dense(desc, params);
    case DANN_LAYER_RELU:
    case DANN_LAYER_SIGMOID: return make_eltwise(desc);
    case DANN_LAYER_DROPOUT: return make_dropout(desc, layer_id);
    case DANN_LAYER_BATCHNORM: return make_batchnorm(desc, params, split);
    case DANN_LAYER_FLATTEN: return make_flatten();
    }
    return nullptr;
}

} // namespace dann
