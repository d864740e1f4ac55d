// The two heads' losses and the label head's softmax, on (N, K) logits.
#pragma once

#include <cstdint>

#include "core/dnn.hpp"

namespace dann {

// Mean softmax cross-entropy over the rows, and its gradient
// (softmax - onehot) / N. A row-wise log-sum-exp in double precision: oneDNN
// 2.6's logsoftmax is off by a few 1e-6 (biased low), and on N x classes
// values the loop costs nothing next to the layers.
//
// Rows from `labelled` on (unlabelled target rows) may instead carry the mean
// prediction entropy, weighted: loss_ent = w * mean H(softmax(z)), with
// dH/dz_j = -p_j (log p_j + H).
class SoftmaxCrossEntropy {
public:
    void plan(dnn::PlanCtx &pc, const dnnl::memory &logits, int64_t labelled = -1);
    // labels: one per labelled row, already validated to lie in [0, K).
    // Returns the cross-entropy; entropy() the unweighted mean entropy.
    float forward(dnn::Device &dev, const int32_t *labels, float entropy_weight = 0.0f);
    float entropy() const { return entropy_; }
    const dnnl::memory &grad() const { return grad_; }

private:
    dnn::Reformat logits_;
    dnnl::memory grad_;
    int64_t n_ = 0, k_ = 0, labelled_ = 0;
    float entropy_ = 0.0f;
};

// Mean logistic loss (binary cross-entropy with logits) over N logits with
// targets in {0, 1}, computed stably: max(x, 0) - x t + log(1 + exp(-|x|)).
class LogisticLoss {
public:
    void plan(dnn::PlanCtx &pc, const dnnl::memory &logits);
    float *targets() { return targets_; } // N values, set after plan()
    float forward(dnn::Device &dev);
    // Share of logits on the side of their target (x > 0 for target 1).
    float accuracy() const { return accuracy_; }
    const dnnl::memory &grad() const { return grad_; }

private:
    dnn::Reformat logits_;
    dnnl::memory grad_;
    float *targets_ = nullptr;
    float accuracy_ = 0.0f;
    int64_t n_ = 0;
};

// Row-wise softmax for predictions, into a plain (N, K) buffer.
class Softmax {
public:
    void plan(dnn::PlanCtx &pc, const dnnl::memory &logits);
    void forward(dnn::Device &dev);
    const float *probs() const { return dnn::data_f32(probs_); }

private:
    dnn::Reformat logits_;
    dnnl::memory probs_;
    dnn::Call *softmax_ = nullptr;
};

} // namespace dann
