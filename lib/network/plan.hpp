// A model planned for one batch shape on one device: the layers of the three
// stacks, the losses, the gradient reversal, buffers and the scratchpad. Built
// once when a batch shape is first seen; running it allocates nothing.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "layers/grl.hpp"
#include "layers/layer.hpp"
#include "layers/loss.hpp"
#include "network/model.hpp"

namespace dann {

struct Losses {
    float label = 0.0f, domain = 0.0f, domain_accuracy = 0.0f, entropy = 0.0f;
};

enum class PlanKind {
    inference,  // predictions and features
    train,      // a DANN step (n_target > 0) or a source-only step
    statistics  // forward with batch statistics, for AdaBN; n_target rows only
};

struct PlanShape {
    int64_t n_source = 0, n_target = 0;
    PlanKind kind = PlanKind::inference;
    bool entropy = false; // train: the label head also runs on the target rows
    bool bf16 = false;    // train: bf16 products (dnn::PlanCtx::bf16)
    bool int8 = false;    // inference: int8 layers (dnn::PlanCtx::int8)
    bool operator==(const PlanShape &o) const {
        return n_source == o.n_source && n_target == o.n_target && kind == o.kind &&
               entropy == o.entropy && bf16 == o.bf16 && int8 == o.int8;
    }
};

// The calibrated ranges of a model's convolution and dense layers
// (dann_context_quantize), by stack and position in the stack. An inference
// plan given one records into it (Plan::observe_ranges) or, with
// PlanShape::int8, takes its activation scales from it.
struct Calibration {
    explicit Calibration(const Model &m);
    QuantRange *at(Stack s, int index) {
        return &ranges[static_cast<size_t>(s)][static_cast<size_t>(index)];
    }
    std::vector<QuantRange> ranges[3];
};

class Plan {
public:
    // Training plans take the trainer's gradient arrays (one per parameter,
    // nullptr for non-trainable ones); other plans pass nullptr. Inference
    // plans may take a calibration (which must outlive them).
    Plan(const Model &m, dnn::Device &dev, const PlanShape &shape, float *const *grads,
         Calibration *calibration = nullptr);

    const PlanShape &shape() const { return shape_; }
    float *input() const { return dnn::data_f32(input_); } // plain NCHW, N rows

    void prepare_weights();

    // Inference: probabilities (N x classes, plain) and, optionally, the
    // domain head's logits (N).
    void predict(const RunState &rs, bool with_domain);
    const float *probs() const { return softmax_.probs(); }
    const float *domain_logits() const { return dnn::data_f32(domain_out_.mem); }
    // Inference: the features of the last predict(), plain (N, F).
    const float *features() const { return dnn::data_f32(features_.back()->dst()); }
    void run_features(const RunState &rs);
    // Inference with a calibration, not int8: widens its ranges by what the
    // last predict() saw.
    void observe_ranges();

    // Training.
    Losses forward(const RunState &rs, const int32_t *labels, float entropy_weight);
    void backward(const RunState &rs);
    // Statistics plans: a forward pass collecting batch statistics.
    void forward_statistics(const RunState &rs);
    void commit_statistics(float momentum = 0.0f);

    uint64_t weights_version = 0; // model version the prepared weights reflect

    // Bytes of the plan's buffers and scratchpad.
    size_t bytes() const { return arena_.bytes() + scratch_storage_.bytes(); }

private:
    using Stack_ = std::vector<std::unique_ptr<Layer>>;
    const dnnl::memory &plan_stack(dnn::PlanCtx &pc, const Model &m, Stack which, Stack_ &out,
                                   const dnnl::memory &src, float *const *grads,
                                   const BatchSplit &split);
    static const dnnl::memory &plan_stack_backward(dnn::PlanCtx &pc, Stack_ &layers,
                                                   const dnnl::memory &diff_dst,
                                                   bool need_first_diff_src);

    dnn::Device &dev_;
    PlanShape shape_;
    int64_t ns_, nt_;
    bool training_;
    dnn::Arena arena_;
    std::deque<dnn::Call> calls_;
    Buffer scratch_storage_;
    dnnl::memory scratch_, input_, label_in_;
    Stack_ features_, label_, domain_;
    SoftmaxCrossEntropy ce_;
    LogisticLoss bce_;
    Softmax softmax_;
    GradientReversal grl_;
    dnn::Reformat domain_out_;
    bool has_domain_ = false;
    Calibration *calibration_ = nullptr;
};

// Sets the OpenMP thread count for the duration of one call, then restores the
// caller's setting (a library must not change its host's OpenMP state).
class ThreadScope {
public:
    explicit ThreadScope(int threads);
    ~ThreadScope();
    ThreadScope(const ThreadScope &) = delete;
    ThreadScope &operator=(const ThreadScope &) = delete;

private:
    int saved_ = 0;
};

} // namespace dann

namespace dann {

// The few plans an execution context keeps, most recently used last. A new
// batch shape builds a plan (allocation happens here, and only here).
class PlanCache {
public:
    Plan &get(const Model &m, dnn::Device &dev, const PlanShape &shape, float *const *grads,
              Calibration *calibration = nullptr);
    void clear() { plans_.clear(); }
    size_t bytes() const {
        size_t total = 0;
        for (const auto &p : plans_) total += p->bytes();
        return total;
    }

private:
    static constexpr size_t kMaxPlans = 4;
    std::vector<std::unique_ptr<Plan>> plans_;
};

} // namespace dann
