// dann's extern "C" functions for on-device adaptation and the drift score:
// arguments are checked here, and every exception becomes a status and a
// per-thread message (c_api/handles.hpp).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "adapt/adapter.hpp"
#include "adapt/drift.hpp"
#include "core/error.hpp"
#include "network/context.hpp"
#include "network/input.hpp"

#include "c_api/handles.hpp"

struct dann_adapter {
    std::unique_ptr<dann::Adapter> impl;
};

namespace {

using namespace dann::capi;

dann::Adapter &adapter_of(dann_adapter *adapter) {
    need(adapter, "adapter");
    return *adapter->impl;
}

// P(target) for every sample of `batch`, all finite.
void domain_outputs(dann::Context &ctx, const dann_batch &batch, std::vector<float> &out,
                    bool follow, const char *what) {
    out.resize(batch.n);
    ctx.domain_probs(batch, out.data(), follow);
    for (size_t i = 0; i < out.size(); ++i)
        if (!std::isfinite(out[i]))
            fail(DANN_ERR_NUMERIC, std::string(what) + ": the domain head's output for sample " +
                                       std::to_string(i) + " is not finite");
}

} // namespace

extern "C" {

dann_adapter_params dann_adapter_params_default(void) { return dann::default_adapter_params(); }

dann_status dann_adapter_create(const dann_model *model, const dann_adapter_params *params,
                                dann_adapter **out) {
    reset_out(out);
    return guard([&] {
        need(model, "model");
        need(params, "params");
        need(out, "out");
        auto a = std::make_unique<dann_adapter>();
        a->impl = std::make_unique<dann::Adapter>(*model->impl, *params);
        *out = a.release();
    });
}

void dann_adapter_destroy(dann_adapter *adapter) { delete adapter; }

dann_status dann_adapter_push(dann_adapter *adapter, const dann_batch *batch) {
    return guard([&] {
        dann::Adapter &a = adapter_of(adapter);
        dann::check_batch(a.model(), batch, "batch");
        a.push(*batch);
    });
}

dann_status dann_adapter_run(dann_adapter *adapter, size_t rounds) {
    return guard([&] { adapter_of(adapter).run(rounds); });
}

dann_status dann_adapter_start(dann_adapter *adapter) {
    return guard([&] { adapter_of(adapter).start(); });
}

dann_status dann_adapter_stop(dann_adapter *adapter) {
    return guard([&] {
        std::string message;
        const dann_status st = adapter_of(adapter).stop(message);
        if (st != DANN_OK)
            fail(st, "the background thread failed: " +
                         (message.empty() ? std::string(dann_status_string(st)) : message));
    });
}

dann_status dann_adapter_commit(dann_adapter *adapter) {
    return guard([&] { adapter_of(adapter).commit(); });
}

dann_status dann_adapter_rollback(dann_adapter *adapter) {
    return guard([&] { adapter_of(adapter).rollback(); });
}

dann_status dann_adapter_context_create(dann_adapter *adapter, dann_context **out) {
    reset_out(out);
    return guard([&] {
        dann::Adapter &a = adapter_of(adapter);
        need(out, "out");
        auto c = std::make_unique<dann_context>();
        c->impl = std::make_unique<dann::Context>(a.snapshot());
        *out = c.release();
    });
}

dann_status dann_adapter_get_stats(dann_adapter *adapter, dann_adapter_stats *out) {
    if (out) std::memset(out, 0, sizeof *out);
    return guard([&] {
        dann::Adapter &a = adapter_of(adapter);
        need(out, "out");
        *out = a.stats();
    });
}

size_t dann_adapter_memory(const dann_adapter *adapter) {
    return adapter ? adapter->impl->memory() : 0;
}

dann_status dann_adapter_get_model(dann_adapter *adapter, dann_model *model) {
    return guard([&] {
        dann::Adapter &a = adapter_of(adapter);
        need(model, "model");
        a.copy_snapshot_to(*model->impl);
    });
}

dann_status dann_drift_score(dann_context *ctx, const dann_batch *recent,
                             const dann_batch *reference, float *score) {
    return guard([&] {
        need(ctx, "ctx");
        need(score, "score");
        dann::Context &c = *ctx->impl;
        dann::check_batch(c.model(), recent, "recent");
        if (reference) dann::check_batch(c.model(), reference, "reference");
        std::vector<float> r, f;
        domain_outputs(c, *recent, r, true, "recent");
        if (!reference) {
            *score = static_cast<float>(dann::mean_of(r.data(), r.size()));
            return;
        }
        // The same snapshot for both batches.
        domain_outputs(c, *reference, f, false, "reference");
        *score = dann::drift_auc(r.data(), r.size(), f.data(), f.size());
    });
}

} // extern "C"
