// The published weights of an adapter: one model behind a mutex, and a version
// that readers check without locking. Publishing copies a model's parameters
// in under the lock; a reader whose copy is older copies them out under the
// same lock, so every reader always holds one whole snapshot. Nothing is
// allocated after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "network/model.hpp"

namespace dann {

// A copy of `m`'s architecture, parameters, input normalisation and thread
// setting, without its replay set.
std::unique_ptr<Model> copy_without_replay(const Model &m);

// Bytes of a model's parameters and replay set.
size_t model_bytes(const Model &m);

class Snapshot {
public:
    explicit Snapshot(const Model &m);

    // The latest published version (starts at 1).
    uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }

    // Copies `src`'s parameters (same architecture) in and bumps the version.
    // One publisher at a time (the adapter serialises its rounds).
    void publish(const Model &src);

    // If the published version differs from `seen`, copies the published
    // parameters into `dst` (same architecture). Returns the version `dst`
    // now holds.
    uint64_t update(Model &dst, uint64_t seen) const;

    // Copies the published parameters into `dst` (same architecture).
    void read(Model &dst) const;

    // A new model holding the published snapshot, and its version.
    std::unique_ptr<Model> copy(uint64_t &version) const;

    // The published model, for the publishing thread only (it is the only
    // writer, so reading without the lock is safe there).
    const Model &publisher_view() const { return *model_; }

    size_t bytes() const { return model_bytes(*model_); }

private:
    mutable std::mutex mu_;
    std::unique_ptr<Model> model_;
    std::atomic<uint64_t> version_{1};
};

} // namespace dann
