#include "adapt/adabn.hpp"

#include "network/input.hpp"

namespace dann {

bool has_batchnorm(const Model &m) {
    for (const auto *stack : {&m.features, &m.label_head, &m.domain_head})
        for (const LayerSpec &s : *stack)
            if (s.desc.kind == DANN_LAYER_BATCHNORM) return true;
    return false;
}

BatchnormPass::BatchnormPass(Model &m, size_t batch_size) : model_(m), batch_size_(batch_size) {
    ThreadScope threads(m.threads);
    plans_.get(m, dev_, PlanShape{0, static_cast<int64_t>(batch_size), PlanKind::statistics},
               nullptr);
}

void BatchnormPass::accumulate(const dann_batch &part, size_t seen) {
    Model &m = model_;
    ThreadScope threads(m.threads);
    const PlanShape shape{0, static_cast<int64_t>(batch_size_), PlanKind::statistics};
    Plan &plan = plans_.get(m, dev_, shape, nullptr);
    load_batch(m, part, plan.input(), "target batch");
    plan.prepare_weights();
    plan.forward_statistics(RunState{});
    plan.commit_statistics(static_cast<float>(static_cast<double>(part.n) /
                                              static_cast<double>(seen + part.n)));
    ++m.version;
}

} // namespace dann
