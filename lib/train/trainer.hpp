// Training state of one model: gradients and optimizer state in the
// parameters' PyTorch layout, and the training plans. One DANN step = forward,
// losses, backward through the GRL, checks, then the optimizer update.
#pragma once

#include <string>
#include <vector>

#include "network/plan.hpp"

namespace dann {

// What a checkpoint keeps besides the model: the optimizer's per-parameter
// state (SGD: velocity; Adam: first and second moments) and step counts.
struct OptimizerState {
    int optimizer = DANN_OPTIMIZER_SGD;
    uint64_t steps = 0;
    std::vector<uint64_t> param_steps;   // Adam's per-parameter t
    std::vector<std::vector<float>> slot1, slot2; // per parameter; empty if untrainable
};

// Checks training parameters by dann_trainer_create's rules; `prefix` starts
// each message naming a field (e.g. "train.").
void check_train_params(const dann_train_params &params, const std::string &prefix);

class Trainer {
public:
    Trainer(Model &m, const dann_train_params &params);

    dann_step_result step(const dann_batch &source, const int32_t *labels,
                          const dann_batch *target, float lambda, float lr);
    void adapt_batchnorm(const dann_batch &target, size_t batch_size);

    // Builds ahead of time the plan that step() uses for these batch sizes,
    // so that the first step allocates nothing.
    void reserve_step(size_t n_source, size_t n_target);
    // Zeroes the optimizer's moments and per-parameter step counts in place.
    void reset_optimizer();
    // Bytes of the gradients, the optimizer state and the plans.
    size_t bytes() const;

    uint64_t steps() const { return steps_; }
    const Model &model() const { return model_; }
    Model &model() { return model_; }

    OptimizerState save_state() const;
    void load_state(const OptimizerState &state); // validated by the caller

private:
    // Whether parameter i is updated by a step (a source-only step leaves the
    // domain head alone).
    bool updates(size_t i, bool adversarial) const;
    void check_gradients(bool adversarial) const;
    void update(float lr, bool adversarial);

    Model &model_;
    dann_train_params params_;
    dnn::Device dev_;
    std::vector<Buffer> grads_, slot1_, slot2_;
    std::vector<uint64_t> param_steps_;
    std::vector<float *> grad_ptrs_;
    PlanCache plans_;
    uint64_t steps_ = 0;
};

} // namespace dann
