// What one thread needs to run a model for predictions.
#pragma once

#include <memory>

#include "network/plan.hpp"

namespace dann {

class Snapshot;

class Context {
public:
    // Runs `m`, which must outlive the context.
    explicit Context(const Model &m) : model_(m) {}
    // Follows an adapter's published snapshots (adapt/snapshot.hpp): the
    // context runs its own copy of the model and, at the start of each call,
    // copies in the latest snapshot if it has changed. `source` must outlive
    // the context.
    explicit Context(const Snapshot &source);

    void predict(const dann_batch &batch, float *probs, size_t probs_count, float *domain_probs,
                 size_t domain_count);
    void features(const dann_batch &batch, float *out, size_t count);
    // P(target) from the domain head for each sample of `batch` (out holds
    // batch.n floats). follow_source == false keeps the weights of the previous call
    // (several batches measured with one snapshot).
    void domain_probs(const dann_batch &batch, float *out, bool follow_source = true);

    // Switches the context to int8 plans (dann_context_quantize): runs the
    // model in f32 over `calibration` (checked by the caller), records the
    // range of every convolution's and dense layer's input and output, and
    // builds int8 plans from then on. Fails with the context unchanged.
    void quantize(const dann_batch &calibration);
    bool quantized() const { return calibration_ != nullptr; }

    const Model &model() const { return model_; }
    // The snapshot version this context last ran (0 for a plain context).
    uint64_t snapshot_version() const { return seen_; }
    // Bytes of the plans built so far and of an own model copy.
    size_t bytes() const;

    dann_domain domain = DANN_DOMAIN_TARGET;

private:
    Plan &ready_plan(const dann_batch &batch);
    void follow();

    const Snapshot *source_ = nullptr;
    uint64_t seen_ = 0;
    std::unique_ptr<Model> owned_; // the snapshot copy, when following one
    const Model &model_;
    dnn::Device dev_;
    std::unique_ptr<Calibration> calibration_; // set once quantized
    PlanCache plans_;
};

} // namespace dann
