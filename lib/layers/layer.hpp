// A layer of a planned network: primitives and buffers for one batch shape.
// plan_forward() / plan_backward() build everything; forward() / backward()
// only execute recorded calls and dann's own loops, without allocating.
#pragma once

#include <cstdint>
#include <memory>

#include "core/dnn.hpp"
#include "dann.h"

namespace dann {

// Values that change from one run to the next.
struct RunState {
    float lambda = 0.0f;        // GRL factor
    uint64_t dropout_seed = 0;  // per step
    dann_domain domain = DANN_DOMAIN_TARGET; // inference batch-norm statistics
};

// What calibration (dann_context_quantize) saw of a convolution or dense
// layer: the smallest and largest value of its input, and of its output
// after a fused ReLU. Int8 plans take their activation scales from it.
struct QuantRange {
    float in_min = 0.0f, in_max = 0.0f, out_min = 0.0f, out_max = 0.0f;
    bool seen = false;
};

// Where a layer's parameters live: the model's plain (PyTorch-layout) arrays,
// and, in training plans, the trainer's gradient arrays in the same layout.
struct ParamBinding {
    float *weight = nullptr, *bias = nullptr;
    float *grad_weight = nullptr, *grad_bias = nullptr;
    // BATCHNORM running statistics; *_target only with domain batch-norm.
    float *running_mean = nullptr, *running_var = nullptr;
    float *running_mean_target = nullptr, *running_var_target = nullptr;
    // CONV2D and DENSE in calibration and int8 inference plans: the layer's
    // calibrated range (written by observe_range(), read by int8 plans).
    QuantRange *range = nullptr;
};

// How a BATCHNORM layer of this plan treats the batch.
struct BatchSplit {
    int64_t source = 0;          // >0 and < N: rows [0, source) are source, the rest target
    bool domain_stats = false;   // keep per-domain running statistics
    dann_domain whole = DANN_DOMAIN_SOURCE; // the domain of an unsplit training batch
};

class Layer {
public:
    virtual ~Layer() = default;
    Layer() = default;
    Layer(const Layer &) = delete;
    Layer &operator=(const Layer &) = delete;

    virtual void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) = 0;
    virtual void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                               bool need_diff_src) = 0;
    // Copies the plain weights into the layouts the primitives use.
    virtual void prepare_weights(dnn::Device &) {}
    virtual void forward(dnn::Device &dev, const RunState &rs) = 0;
    virtual void backward(dnn::Device &dev, const RunState &rs) = 0;
    // After a successful training step: fold this step's batch statistics
    // into the running statistics (BATCHNORM only), with the layer's momentum
    // or, when momentum > 0, with that one (AdaBN's cumulative average).
    virtual void commit_statistics(float momentum = 0.0f) { (void)momentum; }
    // DROPOUT: the factors of the last training forward pass (0 or 1/(1-p)),
    // over the physical buffer of its input; nullptr for other layers.
    virtual const float *mask() const { return nullptr; }
    // Whether plan_forward() took up the ReLU that PlanCtx::fuse_relu offered
    // (its output is then already rectified).
    virtual bool fused_relu() const { return false; }
    // Whether the layer's backward pass never reads its own output, so that
    // an elementwise layer after it may overwrite it (PlanCtx::src_reusable).
    virtual bool output_reusable() const { return false; }

    // Training plans, after plan_forward(): the layout in which the layer's
    // backward pass reads its output gradient without a reorder (zero: any
    // or none). Planning the layer after it passes it on as
    // PlanCtx::diff_src_hint.
    virtual dnn::md preferred_diff_dst() { return {}; }

    // Calibration plans: widens the layer's QuantRange by the values its
    // last forward pass read and wrote.
    virtual void observe_range() {}

    const dnnl::memory &dst() const { return dst_; }
    const dnnl::memory &diff_src() const { return diff_src_; }
    // Int8 plans: dst() holds u8 or s8 values q standing for q / dst_scale();
    // 0 when it holds f32.
    float dst_scale() const { return dst_scale_; }

protected:
    dnnl::memory dst_, diff_src_;
    float dst_scale_ = 0.0f;
};

std::unique_ptr<Layer> make_layer(const dann_layer_desc &desc, const ParamBinding &params,
                                  const BatchSplit &split, uint64_t layer_id);

} // namespace dann
