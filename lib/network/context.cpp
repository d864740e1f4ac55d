#include "network/context.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "adapt/snapshot.hpp"
#include "core/dnn.hpp"
#include "core/error.hpp"
#include "network/input.hpp"

namespace dann {

Context::Context(const Snapshot &source)
    : source_(&source), owned_(source.copy(seen_)), model_(*owned_) {}

void Context::follow() {
    if (source_) seen_ = source_->update(*owned_, seen_);
}

size_t Context::bytes() const { return plans_.bytes() + (owned_ ? model_bytes(*owned_) : 0); }

Plan &Context::ready_plan(const dann_batch &batch) {
    const Model &m = model_;
    PlanShape shape{static_cast<int64_t>(batch.n), 0, PlanKind::inference};
    shape.int8 = calibration_ != nullptr;
    Plan &plan = plans_.get(m, dev_, shape, nullptr, calibration_.get());
    load_batch(m, batch, plan.input(), "batch");
    if (plan.weights_version != m.version) {
        plan.prepare_weights();
        plan.weights_version = m.version;
    }
    return plan;
}

void Context::features(const dann_batch &batch, float *out, size_t count) {
    const Model &m = model_;
    const size_t need = batch.n * static_cast<size_t>(m.feature_size);
    if (count < need)
        fail(DANN_ERR_SHAPE, "features holds " + std::to_string(count) + " floats, " +
                                 std::to_string(batch.n) + " samples x " +
                                 std::to_string(m.feature_size) + " features need " +
                                 std::to_string(need));
    ThreadScope threads(m.threads);
    follow();
    Plan &plan = ready_plan(batch);
    RunState rs;
    rs.domain = domain;
    plan.run_features(rs);
    std::memcpy(out, plan.features(), need * sizeof(float));
}

void Context::predict(const dann_batch &batch, float *probs, size_t probs_count,
                      float *domain_probs, size_t domain_count) {
    const Model &m = model_;
    const size_t n = batch.n;
    const size_t need = n * static_cast<size_t>(m.num_classes);
    if (probs_count < need)
        fail(DANN_ERR_SHAPE, "probs holds " + std::to_string(probs_count) + " floats, " +
                                 std::to_string(n) + " samples x " +
                                 std::to_string(m.num_classes) + " classes need " +
                                 std::to_string(need));
    if (domain_probs && domain_count < n)
        fail(DANN_ERR_SHAPE, "domain_probs holds " + std::to_string(domain_count) +
                                 " floats, the batch has " + std::to_string(n) + " samples");
    ThreadScope threads(m.threads);
    follow();
    Plan &plan = ready_plan(batch);
    RunState rs;
    rs.domain = domain;
    plan.predict(rs, domain_probs != nullptr);
    std::memcpy(probs, plan.probs(), need * sizeof(float));
    if (domain_probs) {
        const float *z = plan.domain_logits();
        for (size_t i = 0; i < n; ++i) domain_probs[i] = 1.0f / (1.0f + std::exp(-z[i]));
    }
}

void Context::domain_probs(const dann_batch &batch, float *out, bool follow_source) {
    ThreadScope threads(model_.threads);
    if (follow_source) follow();
    Plan &plan = ready_plan(batch);
    RunState rs;
    rs.domain = domain;
    plan.predict(rs, true);
    const float *z = plan.domain_logits();
    for (size_t i = 0; i < batch.n; ++i) out[i] = 1.0f / (1.0f + std::exp(-z[i]));
}

void Context::quantize(const dann_batch &batch) {
    if (!dnn::int8_native())
        fail(DANN_ERR_UNSUPPORTED,
             "int8 inference needs a CPU with AVX512-VNNI, AVX-VNNI or AMX (oneDNN reports a "
             "lower ISA here; see dann_precision_supported)");
    const Model &m = model_;
    ThreadScope threads(m.threads);
    follow();
    auto calibration = std::make_unique<Calibration>(m);
    // The batch runs in parts of at most kPart samples through one f32 plan
    // that records the ranges. A last, shorter part leaves earlier samples
    // in the plan's other rows: seen already, they widen nothing.
    constexpr size_t kPart = 256;
    const size_t part = std::min(batch.n, kPart);
    Plan plan(m, dev_, PlanShape{static_cast<int64_t>(part), 0, PlanKind::inference}, nullptr,
              calibration.get());
    plan.prepare_weights();
    const size_t value_bytes = batch.format == DANN_INPUT_U8_HWC ? 1 : sizeof(float);
    const size_t sample_bytes =
        value_bytes * size_t(batch.channels) * size_t(batch.height) * size_t(batch.width);
    RunState rs;
    rs.domain = domain;
    for (size_t first = 0; first < batch.n; first += part) {
        dann_batch slice = batch;
        slice.data = static_cast<const uint8_t *>(batch.data) + first * sample_bytes;
        slice.n = std::min(part, batch.n - first);
        const std::string what =
            first == 0 ? std::string("calibration batch")
                       : "calibration batch (the part from sample " + std::to_string(first) + ")";
        load_batch(m, slice, plan.input(), what.c_str());
        plan.predict(rs, true);
        plan.observe_ranges();
    }
    const Stack stacks[] = {Stack::features, Stack::label, Stack::domain};
    for (const Stack s : stacks) {
        const std::vector<LayerSpec> &specs = m.stack(s);
        for (size_t i = 0; i < specs.size(); ++i) {
            const QuantRange &r = *calibration->at(s, static_cast<int>(i));
            if (!(std::isfinite(r.in_min) && std::isfinite(r.in_max) &&
                  std::isfinite(r.out_min) && std::isfinite(r.out_max)))
                fail(DANN_ERR_NUMERIC, "calibration: layer " + specs[i].name +
                                           " met NaN or Inf values (its input or output)");
        }
    }
    plans_.clear();
    calibration_ = std::move(calibration);
}

} // namespace dann
