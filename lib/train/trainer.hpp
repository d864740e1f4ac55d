// Training state of one model: gradients and momentum in the parameters'
// PyTorch layout, and the training plans. One DANN step = forward, losses,
// backward through the GRL, checks, then SGD with momentum in PyTorch's form.
#pragma once

#include <vector>

#include "network/plan.hpp"

namespace dann {

class Trainer {
public:
    Trainer(Model &m, const dann_train_params &params);

    dann_step_result step(const dann_batch &source, const int32_t *labels,
                          const dann_batch *target, float lambda, float lr);

    uint64_t steps() const { return steps_; }
    const Model &model() const { return model_; }

private:
    void check_gradients(bool adversarial) const;
    void update(float lr, bool adversarial);

    Model &model_;
    dann_train_params params_;
    dnn::Device dev_;
    std::vector<Buffer> grads_, velocity_;
    std::vector<float *> grad_ptrs_;
    PlanCache plans_;
    uint64_t steps_ = 0;
};

} // namespace dann
