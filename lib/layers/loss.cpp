#include "layers/loss.hpp"

#include <algorithm>
#include <cmath>

namespace dann {

void SoftmaxCrossEntropy::plan(dnn::PlanCtx &pc, const dnnl::memory &logits, int64_t labelled) {
    const auto d = logits.get_desc().dims();
    n_ = d[0];
    k_ = d[1];
    labelled_ = labelled < 0 ? n_ : labelled;
    const dnn::md plain = dnn::plain({n_, k_});
    logits_ = dnn::reformat(pc, logits, plain);
    grad_ = pc.arena.make(plain);
}

float SoftmaxCrossEntropy::forward(dnn::Device &dev, const int32_t *labels,
                                   float entropy_weight) {
    dnn::run_if(dev, logits_.call);
    dnn::wait(dev);
    const float *x = dnn::data_f32(logits_.mem);
    float *grad = dnn::data_f32(grad_);
    const double inv_n = 1.0 / static_cast<double>(labelled_);
    double loss = 0.0;
    const int64_t unlabelled = n_ - labelled_;
    const double w_ent = unlabelled > 0 ? double(entropy_weight) / double(unlabelled) : 0.0;
    double entropy = 0.0;
    for (int64_t i = labelled_; i < n_; ++i) {
        const float *row = x + i * k_;
        float *g = grad + i * k_;
        double max = static_cast<double>(row[0]);
        for (int64_t j = 1; j < k_; ++j) max = std::max(max, static_cast<double>(row[j]));
        double sum = 0.0;
        for (int64_t j = 0; j < k_; ++j) sum += std::exp(static_cast<double>(row[j]) - max);
        const double log_sum = max + std::log(sum);
        double h = 0.0;
        for (int64_t j = 0; j < k_; ++j) {
            const double logp = static_cast<double>(row[j]) - log_sum;
            h -= std::exp(logp) * logp;
        }
        for (int64_t j = 0; j < k_; ++j) {
            const double logp = static_cast<double>(row[j]) - log_sum;
            g[j] = static_cast<float>(-w_ent * std::exp(logp) * (logp + h));
        }
        entropy += h;
    }
    entropy_ = unlabelled > 0 ? static_cast<float>(entropy / double(unlabelled)) : 0.0f;
    for (int64_t i = 0; i < labelled_; ++i) {
        const float *row = x + i * k_;
        float *g = grad + i * k_;
        double max = static_cast<double>(row[0]);
        for (int64_t j = 1; j < k_; ++j) max = std::max(max, static_cast<double>(row[j]));
        double sum = 0.0;
        for (int64_t j = 0; j < k_; ++j) sum += std::exp(static_cast<double>(row[j]) - max);
        const double log_sum = max + std::log(sum);
        for (int64_t j = 0; j < k_; ++j) {
            const double p = std::exp(static_cast<double>(row[j]) - log_sum);
            g[j] = static_cast<float>((p - (j == labels[i] ? 1.0 : 0.0)) * inv_n);
        }
        loss += log_sum - static_cast<double>(row[labels[i]]);
    }
    return static_cast<float>(loss * inv_n);
}

void LogisticLoss::plan(dnn::PlanCtx &pc, const dnnl::memory &logits) {
    const auto d = logits.get_desc().dims();
    n_ = d[0];
    const dnn::md plain = dnn::plain({n_, 1});
    logits_ = dnn::reformat(pc, logits, plain);
    grad_ = pc.arena.make(plain);
    targets_ = pc.arena.alloc_f32(static_cast<size_t>(n_));
}

float LogisticLoss::forward(dnn::Device &dev) {
    dnn::run_if(dev, logits_.call);
    dnn::wait(dev);
    const float *x = dnn::data_f32(logits_.mem);
    float *grad = dnn::data_f32(grad_);
    const double inv_n = 1.0 / static_cast<double>(n_);
    double loss = 0.0;
    int64_t right = 0;
    for (int64_t i = 0; i < n_; ++i) {
        const double xi = static_cast<double>(x[i]), t = static_cast<double>(targets_[i]);
        loss += std::max(xi, 0.0) - xi * t + std::log1p(std::exp(-std::fabs(xi)));
        const double sig = xi >= 0 ? 1.0 / (1.0 + std::exp(-xi)) : std::exp(xi) / (1.0 + std::exp(xi));
        grad[i] = static_cast<float>((sig - t) * inv_n);
        right += (xi > 0.0) == (t > 0.5) ? 1 : 0;
    }
    accuracy_ = static_cast<float>(static_cast<double>(right) * inv_n);
    return static_cast<float>(loss * inv_n);
}

void Softmax::plan(dnn::PlanCtx &pc, const dnnl::memory &logits) {
    const dnn::md plain = dnn::plain(logits.get_desc().dims());
    logits_ = dnn::reformat(pc, logits, plain);
    probs_ = pc.arena.make(plain);
    dnnl::softmax_forward::primitive_desc pd(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, plain, 1), pc.attr,
        pc.dev.eng);
    softmax_ = pc.record(dnnl::softmax_forward(pd),
                         {{DNNL_ARG_SRC, &logits_.mem}, {DNNL_ARG_DST, &probs_}}, &pd);
}

void Softmax::forward(dnn::Device &dev) {
    dnn::run_if(dev, logits_.call);
    dnn::run(dev, softmax_);
}

} // namespace dann
