#include "adapt/snapshot.hpp"

#include <vector>

namespace dann {

std::unique_ptr<Model> copy_without_replay(const Model &m) {
    std::vector<dann_layer_desc> f, l, d;
    for (const LayerSpec &s : m.features) f.push_back(s.desc);
    for (const LayerSpec &s : m.label_head) l.push_back(s.desc);
    for (const LayerSpec &s : m.domain_head) d.push_back(s.desc);
    dann_model_desc desc = describe(m.in_c, m.in_h, m.in_w, f.data(), f.size(), l.data(),
                                    l.size(), d.data(), d.size());
    desc.domain_batchnorm = m.domain_bn ? 1 : 0;
    std::unique_ptr<Model> c = Model::create(desc, 0);
    c->copy_params_from(m);
    c->input_scale = m.input_scale;
    c->input_mean = m.input_mean;
    c->threads = m.threads;
    return c;
}

size_t model_bytes(const Model &m) {
    size_t total = m.replay.data.size() + m.replay.labels.size() * sizeof(int32_t);
    for (const Param &p : m.params) total += p.data.bytes();
    return total;
}

Snapshot::Snapshot(const Model &m) : model_(copy_without_replay(m)) {}

void Snapshot::publish(const Model &src) {
    std::lock_guard<std::mutex> lock(mu_);
    model_->copy_params_from(src);
    version_.store(version_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

uint64_t Snapshot::update(Model &dst, uint64_t seen) const {
    if (version() == seen) return seen;
    std::lock_guard<std::mutex> lock(mu_);
    dst.copy_params_from(*model_);
    return version_.load(std::memory_order_relaxed);
}

void Snapshot::read(Model &dst) const {
    std::lock_guard<std::mutex> lock(mu_);
    dst.copy_params_from(*model_);
}

std::unique_ptr<Model> Snapshot::copy(uint64_t &version) const {
    std::lock_guard<std::mutex> lock(mu_);
    version = version_.load(std::memory_order_relaxed);
    return copy_without_replay(*model_);
}

} // namespace dann
