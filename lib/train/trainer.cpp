#include "train/trainer.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "network/input.hpp"

namespace dann {

Trainer::Trainer(Model &m, const dann_train_params &params) : model_(m), params_(params) {
    grads_.resize(m.params.size());
    velocity_.resize(m.params.size());
    grad_ptrs_.assign(m.params.size(), nullptr);
    for (size_t i = 0; i < m.params.size(); ++i) {
        if (!m.params[i].trainable) continue;
        grads_[i].resize(m.params[i].numel * sizeof(float));
        velocity_[i].resize(m.params[i].numel * sizeof(float));
        grad_ptrs_[i] = grads_[i].f32();
    }
}

dann_step_result Trainer::step(const dann_batch &source, const int32_t *labels,
                               const dann_batch *target, float lambda, float lr) {
    Model &m = model_;
    if (!labels) fail(DANN_ERR_INVALID_ARGUMENT, "labels is NULL");
    if (!std::isfinite(lambda)) fail(DANN_ERR_NUMERIC, "lambda is NaN or Inf");
    if (!std::isfinite(lr)) fail(DANN_ERR_NUMERIC, "learning rate is NaN or Inf");
    if (lr < 0.0f)
        fail(DANN_ERR_INVALID_ARGUMENT, "learning rate must be >= 0, got " + std::to_string(lr));
    for (size_t i = 0; i < source.n; ++i)
        if (labels[i] < 0 || labels[i] >= m.num_classes)
            fail(DANN_ERR_INVALID_ARGUMENT, "labels[" + std::to_string(i) + "] = " +
                                                std::to_string(labels[i]) + " is outside [0, " +
                                                std::to_string(m.num_classes) + ")");
    const int64_t ns = static_cast<int64_t>(source.n);
    const int64_t nt = target ? static_cast<int64_t>(target->n) : 0;
    const bool adversarial = nt > 0;

    ThreadScope threads(m.threads);
    Plan &plan = plans_.get(m, dev_, ns, nt, true, grad_ptrs_.data());
    load_batch(m, source, plan.input(), "source batch");
    if (target)
        load_batch(m, *target, plan.input() + ns * int64_t(m.in_c) * m.in_h * m.in_w,
                   "target batch");

    RunState rs;
    rs.lambda = lambda;
    rs.dropout_seed = splitmix64_hash(params_.seed ^ splitmix64_hash(steps_));
    plan.prepare_weights();
    const Losses losses = plan.forward(rs, labels);
    if (!std::isfinite(losses.label) || !std::isfinite(losses.domain))
        fail(DANN_ERR_NUMERIC, std::string("step rejected: ") +
                                   (!std::isfinite(losses.label) ? "label" : "domain") +
                                   " loss is not finite; the model is unchanged");
    plan.backward(rs);
    check_gradients(adversarial);

    plan.commit_statistics();
    update(lr, adversarial);
    ++steps_;
    ++m.version;

    dann_step_result r;
    r.label_loss = losses.label;
    r.domain_loss = losses.domain;
    r.domain_accuracy = losses.domain_accuracy;
    return r;
}

void Trainer::check_gradients(bool adversarial) const {
    for (size_t i = 0; i < model_.params.size(); ++i) {
        const Param &p = model_.params[i];
        if (!grad_ptrs_[i] || (!adversarial && p.stack == Stack::domain)) continue;
        const float *g = grad_ptrs_[i];
        float sum = 0.0f;
        for (size_t k = 0; k < p.numel; ++k) sum += g[k] * 0.0f;
        if (!std::isfinite(sum))
            fail(DANN_ERR_NUMERIC, "step rejected: the gradient of " + p.name +
                                       " is not finite; the model is unchanged");
    }
}

// PyTorch's SGD: g += wd * w; v = m v + g; w -= lr v.
void Trainer::update(float lr, bool adversarial) {
    const float mom = params_.momentum, wd = params_.weight_decay;
    for (size_t i = 0; i < model_.params.size(); ++i) {
        Param &p = model_.params[i];
        if (!grad_ptrs_[i] || (!adversarial && p.stack == Stack::domain)) continue;
        float *w = p.data.f32();
        float *v = velocity_[i].f32();
        const float *g = grad_ptrs_[i];
        const int64_t n = static_cast<int64_t>(p.numel);
#pragma omp parallel for simd schedule(static) if (n > 4096)
        for (int64_t k = 0; k < n; ++k) {
            const float gk = g[k] + wd * w[k];
            v[k] = mom * v[k] + gk;
            w[k] -= lr * v[k];
        }
    }
}

} // namespace dann
