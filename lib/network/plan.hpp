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
    float label = 0.0f, domain = 0.0f, domain_accuracy = 0.0f;
};

class Plan {
public:
    // Training plans take the trainer's gradient arrays (one per parameter,
    // nullptr for non-trainable ones); inference plans pass nullptr.
    // A training plan with n_target == 0 is a source-only plan.
    Plan(const Model &m, dnn::Device &dev, int64_t n_source, int64_t n_target, bool training,
         float *const *grads);

    int64_t n_source() const { return ns_; }
    int64_t n_target() const { return nt_; }
    bool training() const { return training_; }
    float *input() const { return dnn::data_f32(input_); } // plain NCHW, N rows

    void prepare_weights();

    // Inference: probabilities (N x classes, plain) and, optionally, the
    // domain head's logits (N).
    void predict(const RunState &rs, bool with_domain);
    const float *probs() const { return softmax_.probs(); }
    const float *domain_logits() const { return dnn::data_f32(domain_out_.mem); }

    // Training.
    Losses forward(const RunState &rs, const int32_t *labels);
    void backward(const RunState &rs);
    void commit_statistics();

    uint64_t weights_version = 0; // model version the prepared weights reflect

private:
    using Stack_ = std::vector<std::unique_ptr<Layer>>;
    const dnnl::memory &plan_stack(dnn::PlanCtx &pc, const Model &m, Stack which, Stack_ &out,
                                   const dnnl::memory &src, float *const *grads,
                                   const BatchSplit &split);
    static const dnnl::memory &plan_stack_backward(dnn::PlanCtx &pc, Stack_ &layers,
                                                   const dnnl::memory &diff_dst,
                                                   bool need_first_diff_src);

    dnn::Device &dev_;
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
    Plan &get(const Model &m, dnn::Device &dev, int64_t n_source, int64_t n_target,
              bool training, float *const *grads);

private:
    static constexpr size_t kMaxPlans = 4;
    std::vector<std::unique_ptr<Plan>> plans_;
};

} // namespace dann
