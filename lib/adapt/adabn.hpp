// AdaBN over the ring buffer: forward passes with batch statistics in batches
// of one fixed size, folded into the running statistics as their average (the
// inner loop of Trainer::adapt_batchnorm, without its backup copy: the adapter
// keeps the last good weights itself).
#pragma once

#include "network/plan.hpp"

namespace dann {

class BatchnormPass {
public:
    // Builds the statistics plan for batches of `batch_size` samples of `m`,
    // which the pass updates and which must outlive it.
    BatchnormPass(Model &m, size_t batch_size);
    // Folds the batch statistics of `part` (batch_size samples) into the
    // running statistics as the average over `seen` earlier samples and these.
    void accumulate(const dann_batch &part, size_t seen);
    size_t bytes() const { return plans_.bytes(); }

private:
    Model &model_;
    size_t batch_size_;
    dnn::Device dev_;
    PlanCache plans_;
};

bool has_batchnorm(const Model &m);

} // namespace dann
