// What one thread needs to run a model for predictions.
#pragma once

#include "network/plan.hpp"

namespace dann {

class Context {
public:
    explicit Context(const Model &m) : model_(m) {}
    void predict(const dann_batch &batch, float *probs, size_t probs_count, float *domain_probs,
                 size_t domain_count);
    void features(const dann_batch &batch, float *out, size_t count);
    const Model &model() const { return model_; }
    dann_domain domain = DANN_DOMAIN_TARGET;

private:
    Plan &ready_plan(const dann_batch &batch);

    const Model &model_;
    dnn::Device dev_;
    PlanCache plans_;
};

} // namespace dann
