// On-device adaptation (dann.h, "On-device adaptation"): a ring buffer of
// target samples, rounds of DANN steps (or AdaBN) on a working copy of the
// model, a label-free guard after each round, and published snapshots that
// prediction contexts follow. Everything is allocated by the constructor.
//
// Locks: round_mu_ serialises rounds, commit and rollback, and guards the
// parameter values of working_ and committed_ (the guard exchanges them while
// it runs the committed model; their architecture and the replay set never
// change, so they may be read without it); ring_mu_ guards the ring and the
// background thread's state (with cv_); stats_mu_ the statistics; the
// snapshot has its own. A round takes ring_mu_ only briefly, to gather
// samples, so pushes never wait for a round.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapt/adabn.hpp"
#include "adapt/guard.hpp"
#include "adapt/ring.hpp"
#include "adapt/snapshot.hpp"
#include "core/rng.hpp"
#include "train/trainer.hpp"

namespace dann {

dann_adapter_params default_adapter_params();
// Checks every field against `m` (DANN_ERR_INVALID_ARGUMENT naming it).
void check_adapter_params(const Model &m, const dann_adapter_params &p);

class Adapter {
public:
    Adapter(const Model &m, const dann_adapter_params &params);
    ~Adapter();
    Adapter(const Adapter &) = delete;
    Adapter &operator=(const Adapter &) = delete;

    void push(const dann_batch &batch); // checked by check_batch() first
    void run(size_t rounds);
    void start();
    // Stops the background thread after the round in progress; returns the
    // first error it met since start (DANN_OK if none) and its message.
    dann_status stop(std::string &message);
    void commit();
    void rollback();
    dann_adapter_stats stats() const;
    size_t memory() const { return bytes_; }
    const Snapshot &snapshot() const { return *published_; }
    // Copies the published snapshot, the input normalisation and the replay
    // set into `dst`, which must have the same architecture.
    void copy_snapshot_to(Model &dst) const;
    const Model &model() const { return *working_; }

private:
    void round();
    void dann_steps(size_t &done, double (&sums)[3], dann_guard_reason &reason);
    void batchnorm_pass(size_t n_samples);
    void gather_source();
    void gather_target();
    void restore_working();
    void thread_main();
    class Waiter;

    dann_adapter_params p_;
    bool dann_mode_;
    int channels_;
    size_t sample_bytes_;
    std::unique_ptr<Model> working_, committed_;
    std::unique_ptr<Snapshot> published_;
    std::unique_ptr<Trainer> trainer_;           // DANN mode
    std::unique_ptr<BatchnormPass> batchnorm_;   // BATCHNORM mode
    std::unique_ptr<Guard> guard_;
    Ring ring_;
    Buffer source_stage_, target_stage_;
    std::vector<int32_t> source_labels_;
    SplitMix64 rng_;
    size_t bytes_ = 0;

    std::mutex round_mu_;
    mutable std::mutex ring_mu_, stats_mu_;
    std::condition_variable cv_;
    size_t new_since_round_ = 0;
    // commit() / rollback() calls waiting for round_mu_ (guarded by
    // ring_mu_): the background thread starts no round while one waits, so
    // back-to-back rounds cannot starve them.
    size_t waiting_ = 0;
    bool running_ = false, busy_ = false, quit_ = false;
    dann_status error_status_ = DANN_OK;
    std::string error_message_;
    dann_adapter_stats stats_{};
    std::thread thread_;
};

} // namespace dann
