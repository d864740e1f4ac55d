// The adapter's label-free check of candidate weights after each round, and
// its drift measure. It evaluates two models, the working (candidate) one and
// the committed one (the reference), one after the other on the adapter's
// thread, through a single inference context on the working model: to run
// the committed model it exchanges the two models' parameter values for the
// duration of the run. A context of its own for the committed model would
// cost a second plan, and a third copy of the parameters would cost the
// parameters again. Samples are evaluated in chunks of a fixed size, the last
// chunk padded, so that the context has one plan and nothing is allocated
// after construction.
//
// Replay samples run with the source batch-norm statistics and recent ring
// samples with the target ones, as the domains were normalised in training
// (the same statistics without domain batch-norm).
#pragma once

#include <vector>

#include "core/buffer.hpp"
#include "network/context.hpp"

namespace dann {

class Guard {
public:
    struct Setup {
        const ReplaySet *replay = nullptr; // empty or absent: no replay check
        size_t guard_samples = 0;          // replay and recent samples looked at
        dann_input_format format = DANN_INPUT_U8_HWC; // recent samples' format
        int channels = 0;
    };
    struct Verdict {
        dann_guard_reason reason = DANN_GUARD_NONE;
        float replay_accuracy = 0.0f; // working model; when checked
        float class_entropy = 0.0f;   // working model on the recent samples; when checked
        float drift = 0.0f;           // committed model: recent against replay
    };

    // Both models (same architecture) and the replay set must outlive the
    // guard; the replay samples are read in place, so the replay set must not
    // change. The guard leaves both models' parameters as it found them, but
    // exchanges them while it runs the committed model: no one else may read
    // or write them during measure_reference() or check().
    Guard(Model &working, Model &committed, const Setup &setup);

    // Room for up to guard_samples() recent samples in the ring's format,
    // oldest first: the adapter fills it before check().
    uint8_t *recent() { return static_cast<uint8_t *>(recent_storage_.data()); }
    size_t guard_samples() const { return guard_samples_; }

    // The committed model on the replay guard samples: the reference accuracy
    // and domain outputs. At creation and after each commit.
    void measure_reference();
    bool has_replay() const { return n_replay_ > 0; }
    float reference_accuracy() const { return static_cast<float>(reference_accuracy_); }

    // The drift of the first n_recent recent samples (committed model) and,
    // with check_working, the working model's verdict: NONFINITE for a
    // non-finite output, REPLAY_DROP when its replay accuracy is more than
    // max_drop below the reference, CLASS_COLLAPSE when its class entropy on
    // the recent samples is below min_ratio times the committed model's.
    Verdict check(size_t n_recent, bool check_working, float max_drop, float min_ratio);

    size_t bytes() const;

private:
    struct Pass {
        size_t correct = 0;
        bool finite = true;
    };
    // Samples to evaluate: `data` holds them back to back. If their count is
    // not a whole number of chunks, either `data` itself is padded to whole
    // chunks, or `tail` (when not null) holds a copy of the last, partial
    // chunk padded to a whole one.
    struct Samples {
        dann_batch layout{}; // format and sample shape; data and n unused
        const uint8_t *data = nullptr;
        const uint8_t *tail = nullptr;
    };
    // Runs the working model over the first n of `samples` (in chunks),
    // counting predicted classes into hist_, correct predictions against
    // `labels` (if any), and writing the domain outputs to `domain_out` (if
    // any).
    Pass run(dann_domain domain, const Samples &samples, size_t n, const int32_t *labels,
             float *domain_out);
    // The same with the committed model's parameters.
    Pass run_committed(dann_domain domain, const Samples &samples, size_t n,
                       const int32_t *labels, float *domain_out);

    Model &working_, &committed_;
    size_t guard_samples_, chunk_;
    int classes_;
    size_t n_replay_ = 0;
    Samples replay_, recent_;
    const int32_t *replay_labels_ = nullptr;
    Buffer replay_tail_;    // the replay samples' last partial chunk, padded with zeros
    Buffer recent_storage_; // padded to whole chunks
    Context context_;       // on working_
    Buffer probs_, domain_chunk_;         // one chunk's outputs
    Buffer reference_domain_, recent_domain_; // sorted reference; recent
    std::vector<uint32_t> hist_;
    double reference_accuracy_ = 0.0;
};

} // namespace dann
