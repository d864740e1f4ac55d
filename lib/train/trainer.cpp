#include "train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/dnn.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "network/input.hpp"

namespace dann {

void check_train_params(const dann_train_params &p, const std::string &prefix) {
    if (!(p.momentum >= 0.0f && p.momentum < 1.0f))
        fail(DANN_ERR_INVALID_ARGUMENT,
             prefix + "momentum must be in [0, 1), got " + std::to_string(p.momentum));
    if (!(p.weight_decay >= 0.0f && std::isfinite(p.weight_decay)))
        fail(DANN_ERR_INVALID_ARGUMENT, prefix + "weight_decay must be finite and >= 0");
    const int opt = raw_enum(p.optimizer);
    if (opt != DANN_OPTIMIZER_SGD && opt != DANN_OPTIMIZER_ADAM)
        fail(DANN_ERR_INVALID_ARGUMENT, prefix + "optimizer: unknown optimizer " + std::to_string(opt));
    if (opt == DANN_OPTIMIZER_ADAM &&
        !(p.adam_beta1 >= 0.0f && p.adam_beta1 < 1.0f && p.adam_beta2 >= 0.0f &&
          p.adam_beta2 < 1.0f && p.adam_eps > 0.0f && std::isfinite(p.adam_eps)))
        fail(DANN_ERR_INVALID_ARGUMENT,
             prefix + "adam_beta1/adam_beta2/adam_eps: Adam needs beta1 and beta2 in [0, 1) and a positive eps");
    if (!(p.entropy_weight >= 0.0f && std::isfinite(p.entropy_weight)))
        fail(DANN_ERR_INVALID_ARGUMENT, prefix + "entropy_weight must be finite and >= 0");
    const int precision = raw_enum(p.precision);
    if (precision == DANN_PRECISION_INT8)
        fail(DANN_ERR_INVALID_ARGUMENT,
             prefix + "precision: DANN_PRECISION_INT8 is for inference only (see "
                      "dann_context_quantize); training runs in f32 or bf16");
    if (precision != DANN_PRECISION_F32 && precision != DANN_PRECISION_BF16)
        fail(DANN_ERR_INVALID_ARGUMENT,
             prefix + "precision: unknown precision " + std::to_string(precision));
    if (precision == DANN_PRECISION_BF16 && !dnn::bf16_native())
        fail(DANN_ERR_UNSUPPORTED,
             prefix + "precision: bf16 training needs a CPU with AVX512-BF16 or AMX (oneDNN "
                      "reports a lower ISA here; see dann_precision_supported)");
}

Trainer::Trainer(Model &m, const dann_train_params &params) : model_(m), params_(params) {
    const size_t n = m.params.size();
    grads_.resize(n);
    slot1_.resize(n);
    slot2_.resize(n);
    param_steps_.assign(n, 0);
    grad_ptrs_.assign(n, nullptr);
    const bool adam = params_.optimizer == DANN_OPTIMIZER_ADAM;
    for (size_t i = 0; i < n; ++i) {
        if (!m.params[i].trainable) continue;
        const size_t bytes = m.params[i].numel * sizeof(float);
        grads_[i].resize(bytes);
        slot1_[i].resize(bytes);
        if (adam) slot2_[i].resize(bytes);
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
    const bool entropy = adversarial && params_.entropy_weight > 0.0f;

    ThreadScope threads(m.threads);
    Plan &plan = plans_.get(m, dev_, PlanShape{ns, nt, PlanKind::train, entropy, params_.precision == DANN_PRECISION_BF16}, grad_ptrs_.data());
    load_batch(m, source, plan.input(), "source batch");
    if (target)
        load_batch(m, *target, plan.input() + ns * int64_t(m.in_c) * m.in_h * m.in_w,
                   "target batch");

    RunState rs;
    rs.lambda = lambda;
    rs.dropout_seed = splitmix64_hash(params_.seed ^ splitmix64_hash(steps_));
    plan.prepare_weights();
    const Losses losses = plan.forward(rs, labels, params_.entropy_weight);
    if (!std::isfinite(losses.label) || !std::isfinite(losses.domain) ||
        !std::isfinite(losses.entropy))
        fail(DANN_ERR_NUMERIC, std::string("step rejected: ") +
                                   (!std::isfinite(losses.label)    ? "label"
                                    : !std::isfinite(losses.domain) ? "domain"
                                                                    : "entropy") +
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
    r.target_entropy = losses.entropy;
    return r;
}

void Trainer::adapt_batchnorm(const dann_batch &target, size_t batch_size) {
    Model &m = model_;
    if (batch_size == 0) fail(DANN_ERR_INVALID_ARGUMENT, "batch_size must be positive");
    bool has_bn = false;
    for (const auto *stack : {&m.features, &m.label_head, &m.domain_head})
        for (const LayerSpec &s : *stack) has_bn |= s.desc.kind == DANN_LAYER_BATCHNORM;
    if (!has_bn) return;
    if (batch_size < 2 && target.n > 1)
        fail(DANN_ERR_INVALID_ARGUMENT, "batch_size must be at least 2 for batch statistics");

    ThreadScope threads(m.threads);
    const size_t elem = target.format == DANN_INPUT_U8_HWC ? 1 : sizeof(float);
    const size_t sample_bytes =
        size_t(target.height) * size_t(target.width) * size_t(target.channels) * elem;
    // Running statistics are replaced by the average over all samples: batch
    // b of size k after `seen` samples enters with momentum k / (seen + k).
    // Only running statistics change; keep them so that a failure midway
    // leaves the model as it was.
    std::vector<std::vector<float>> saved(m.params.size());
    for (size_t i = 0; i < m.params.size(); ++i)
        if (!m.params[i].trainable)
            saved[i].assign(m.params[i].data.f32(), m.params[i].data.f32() + m.params[i].numel);
    size_t seen = 0;
    try {
        for (size_t start = 0; start < target.n; start += batch_size) {
            const size_t k = std::min(batch_size, target.n - start);
            if (k < 2 && seen > 0) break; // a single sample has no batch statistics
            dann_batch part = target;
            part.data = static_cast<const uint8_t *>(target.data) + start * sample_bytes;
            part.n = k;
            Plan &plan = plans_.get(m, dev_, PlanShape{0, int64_t(k), PlanKind::statistics},
                                    nullptr);
            load_batch(m, part, plan.input(), "target batch");
            plan.prepare_weights();
            plan.forward_statistics(RunState{});
            plan.commit_statistics(float(double(k) / double(seen + k)));
            seen += k;
        }
    } catch (...) {
        for (size_t i = 0; i < m.params.size(); ++i)
            if (!saved[i].empty())
                std::memcpy(m.params[i].data.f32(), saved[i].data(), saved[i].size() * sizeof(float));
        throw;
    }
    ++m.version;
}

void Trainer::reserve_step(size_t n_source, size_t n_target) {
    const int64_t ns = static_cast<int64_t>(n_source), nt = static_cast<int64_t>(n_target);
    const bool entropy = nt > 0 && params_.entropy_weight > 0.0f;
    ThreadScope threads(model_.threads);
    plans_.get(model_, dev_, PlanShape{ns, nt, PlanKind::train, entropy, params_.precision == DANN_PRECISION_BF16}, grad_ptrs_.data());
}

void Trainer::reset_optimizer() {
    for (size_t i = 0; i < model_.params.size(); ++i) {
        for (Buffer *b : {&slot1_[i], &slot2_[i]})
            if (b->data()) std::memset(b->data(), 0, b->bytes());
        param_steps_[i] = 0;
    }
}

size_t Trainer::bytes() const {
    size_t total = plans_.bytes();
    for (const auto *v : {&grads_, &slot1_, &slot2_})
        for (const Buffer &b : *v) total += b.bytes();
    return total;
}

bool Trainer::updates(size_t i, bool adversarial) const {
    return grad_ptrs_[i] && (adversarial || model_.params[i].stack != Stack::domain);
}

void Trainer::check_gradients(bool adversarial) const {
    for (size_t i = 0; i < model_.params.size(); ++i) {
        const Param &p = model_.params[i];
        if (!updates(i, adversarial)) continue;
        const float *g = grad_ptrs_[i];
        // g * 0 is 0 for finite g and NaN otherwise: the sum is NaN exactly
        // when some gradient is not finite, in any order of summation.
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t k = 0; k < p.numel; ++k) sum += g[k] * 0.0f;
        if (!std::isfinite(sum))
            fail(DANN_ERR_NUMERIC, "step rejected: the gradient of " + p.name +
                                       " is not finite; the model is unchanged");
    }
}

// PyTorch's optimizers. SGD: g += wd w; v = m v + g; w -= lr v.
// Adam: g += wd w; m1 = b1 m1 + (1-b1) g; m2 = b2 m2 + (1-b2) g^2;
// w -= lr (m1 / (1-b1^t)) / (sqrt(m2 / (1-b2^t)) + eps).
void Trainer::update(float lr, bool adversarial) {
    const float wd = params_.weight_decay;
    const bool adam = params_.optimizer == DANN_OPTIMIZER_ADAM;
    for (size_t i = 0; i < model_.params.size(); ++i) {
        Param &p = model_.params[i];
        if (!updates(i, adversarial)) continue;
        float *w = p.data.f32();
        float *s1 = slot1_[i].f32();
        const float *g = grad_ptrs_[i];
        const int64_t n = static_cast<int64_t>(p.numel);
        ++param_steps_[i];
        if (!adam) {
            const float mom = params_.momentum;
#pragma omp parallel for simd schedule(static) if (n > 4096)
            for (int64_t k = 0; k < n; ++k) {
                const float gk = g[k] + wd * w[k];
                s1[k] = mom * s1[k] + gk;
                w[k] -= lr * s1[k];
            }
            continue;
        }
        float *s2 = slot2_[i].f32();
        const float b1 = params_.adam_beta1, b2 = params_.adam_beta2, eps = params_.adam_eps;
        const double t = static_cast<double>(param_steps_[i]);
        const float c1 = static_cast<float>(1.0 - std::pow(double(b1), t));
        const float c2 = static_cast<float>(std::sqrt(1.0 - std::pow(double(b2), t)));
        const float step = lr / c1;
#pragma omp parallel for simd schedule(static) if (n > 4096)
        for (int64_t k = 0; k < n; ++k) {
            const float gk = g[k] + wd * w[k];
            s1[k] = b1 * s1[k] + (1.0f - b1) * gk;
            s2[k] = b2 * s2[k] + (1.0f - b2) * gk * gk;
            w[k] -= step * s1[k] / (std::sqrt(s2[k]) / c2 + eps);
        }
    }
}

OptimizerState Trainer::save_state() const {
    OptimizerState s;
    s.optimizer = params_.optimizer;
    s.steps = steps_;
    s.param_steps = param_steps_;
    const bool adam = params_.optimizer == DANN_OPTIMIZER_ADAM;
    for (size_t i = 0; i < model_.params.size(); ++i) {
        const size_t n = model_.params[i].trainable ? model_.params[i].numel : 0;
        const float *a = n ? slot1_[i].f32() : nullptr;
        s.slot1.emplace_back(a, a + n);
        const float *b = n && adam ? slot2_[i].f32() : nullptr;
        s.slot2.emplace_back(b, b + (adam ? n : 0));
    }
    return s;
}

void Trainer::load_state(const OptimizerState &s) {
    if (s.optimizer != params_.optimizer)
        fail(DANN_ERR_INVALID_ARGUMENT, "the checkpoint was written by another optimizer (" +
                                            std::to_string(s.optimizer) + ") than this trainer's (" +
                                            std::to_string(params_.optimizer) + ")");
    for (size_t i = 0; i < model_.params.size(); ++i) {
        if (!model_.params[i].trainable) continue;
        std::memcpy(slot1_[i].f32(), s.slot1[i].data(), s.slot1[i].size() * sizeof(float));
        if (!s.slot2[i].empty())
            std::memcpy(slot2_[i].f32(), s.slot2[i].data(), s.slot2[i].size() * sizeof(float));
    }
    param_steps_ = s.param_steps;
    steps_ = s.steps;
}

} // namespace dann
