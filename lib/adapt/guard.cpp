#include "adapt/guard.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "adapt/drift.hpp"

namespace dann {
namespace {

// Samples per guard evaluation call: enough to keep oneDNN efficient, few
// enough that the context's activations (its plan grows with the chunk) stay
// small beside the trainer's. oneDNN picks kernels by batch size, so on some
// CPUs (AVX2) another chunk size can change a probability in its last bit.
constexpr size_t kGuardChunk = 8;

size_t sample_bytes(const dann_batch &layout) {
    return size_t(layout.channels) * size_t(layout.height) * size_t(layout.width) *
           (layout.format == DANN_INPUT_U8_HWC ? 1 : sizeof(float));
}

size_t round_up(size_t n, size_t chunk) { return (n + chunk - 1) / chunk * chunk; }

// Exchanges the parameter values of two models of one architecture while it
// lives; allocates nothing. Both versions change each way, so that plans
// prepare their weights again.
class SwappedParams {
public:
    SwappedParams(Model &a, Model &b) : a_(a), b_(b) { swap(); }
    ~SwappedParams() { swap(); }
    SwappedParams(const SwappedParams &) = delete;
    SwappedParams &operator=(const SwappedParams &) = delete;

private:
    void swap() noexcept {
        for (size_t i = 0; i < a_.params.size(); ++i) {
            float *x = a_.params[i].data.f32();
            std::swap_ranges(x, x + a_.params[i].numel, b_.params[i].data.f32());
        }
        ++a_.version;
        ++b_.version;
    }

    Model &a_, &b_;
};

} // namespace

Guard::Guard(Model &working, Model &committed, const Setup &setup)
    : working_(working), committed_(committed), guard_samples_(setup.guard_samples),
      chunk_(std::min(setup.guard_samples, kGuardChunk)), classes_(working.num_classes),
      context_(working) {
    recent_.layout.format = setup.format;
    recent_.layout.channels = setup.channels;
    recent_.layout.height = working.in_h;
    recent_.layout.width = working.in_w;
    recent_storage_.resize(round_up(guard_samples_, chunk_) * sample_bytes(recent_.layout));
    recent_.data = static_cast<const uint8_t *>(recent_storage_.data());
    recent_domain_.resize(guard_samples_ * sizeof(float));

    if (setup.replay && setup.replay->n > 0) {
        const ReplaySet &rp = *setup.replay;
        n_replay_ = std::min(guard_samples_, rp.n);
        replay_.layout = rp.batch(0, 0);
        replay_.data = rp.data.data();
        replay_labels_ = rp.labels.data();
        // Only a partial last chunk needs storage of its own: the whole
        // chunks are read from the replay set itself.
        const size_t whole = n_replay_ / chunk_ * chunk_;
        if (whole < n_replay_) {
            replay_tail_.resize(chunk_ * rp.sample_bytes());
            std::memcpy(replay_tail_.data(), rp.data.data() + whole * rp.sample_bytes(),
                        (n_replay_ - whole) * rp.sample_bytes());
            replay_.tail = static_cast<const uint8_t *>(replay_tail_.data());
        }
        reference_domain_.resize(n_replay_ * sizeof(float));
    }
    probs_.resize(chunk_ * static_cast<size_t>(classes_) * sizeof(float));
    domain_chunk_.resize(chunk_ * sizeof(float));
    hist_.assign(static_cast<size_t>(classes_), 0);

    // Build the context's plan now (inference changes no weights or statistics).
    dann_batch warm = recent_.layout;
    warm.data = recent_.data;
    warm.n = chunk_;
    context_.predict(warm, probs_.f32(), chunk_ * static_cast<size_t>(classes_),
                     domain_chunk_.f32(), chunk_);
    measure_reference();
}

Guard::Pass Guard::run(dann_domain domain, const Samples &samples, size_t n,
                       const int32_t *labels, float *domain_out) {
    Pass pass;
    std::fill(hist_.begin(), hist_.end(), 0u);
    context_.domain = domain;
    const size_t bytes = sample_bytes(samples.layout);
    const size_t k = static_cast<size_t>(classes_);
    for (size_t start = 0; start < n; start += chunk_) {
        const size_t rows = std::min(chunk_, n - start);
        dann_batch b = samples.layout;
        b.data = rows < chunk_ && samples.tail ? samples.tail : samples.data + start * bytes;
        b.n = chunk_;
        context_.predict(b, probs_.f32(), chunk_ * k, domain_out ? domain_chunk_.f32() : nullptr,
                         chunk_);
        for (size_t i = 0; i < rows; ++i) {
            const float *p = probs_.f32() + i * k;
            size_t best = 0;
            for (size_t c = 0; c < k; ++c) {
                if (!std::isfinite(p[c])) pass.finite = false;
                if (p[c] > p[best]) best = c;
            }
            ++hist_[best];
            if (labels && static_cast<int32_t>(best) == labels[start + i]) ++pass.correct;
            if (domain_out) {
                const float d = domain_chunk_.f32()[i];
                if (!std::isfinite(d)) pass.finite = false;
                domain_out[start + i] = d;
            }
        }
    }
    return pass;
}

Guard::Pass Guard::run_committed(dann_domain domain, const Samples &samples, size_t n,
                                 const int32_t *labels, float *domain_out) {
    const SwappedParams swapped(working_, committed_);
    return run(domain, samples, n, labels, domain_out);
}

void Guard::measure_reference() {
    if (!has_replay()) return;
    const Pass pass = run_committed(DANN_DOMAIN_SOURCE, replay_, n_replay_, replay_labels_,
                                    reference_domain_.f32());
    reference_accuracy_ = static_cast<double>(pass.correct) / static_cast<double>(n_replay_);
    std::sort(reference_domain_.f32(), reference_domain_.f32() + n_replay_);
}

Guard::Verdict Guard::check(size_t n_recent, bool check_working, float max_drop, float min_ratio) {
    Verdict v;
    n_recent = std::min(n_recent, guard_samples_);
    if (n_recent == 0) return v;
    const auto k = classes_;

    const Pass ref =
        run_committed(DANN_DOMAIN_TARGET, recent_, n_recent, nullptr, recent_domain_.f32());
    const float reference_entropy = normalised_class_entropy(hist_.data(), k, n_recent);
    if (ref.finite)
        v.drift = has_replay() ? drift_auc_sorted_reference(recent_domain_.f32(), n_recent,
                                                            reference_domain_.f32(), n_replay_)
                               : static_cast<float>(mean_of(recent_domain_.f32(), n_recent));
    if (!check_working) return v;

    double accuracy = 0.0;
    if (has_replay()) {
        const Pass p = run(DANN_DOMAIN_SOURCE, replay_, n_replay_, replay_labels_, nullptr);
        if (!p.finite) {
            v.reason = DANN_GUARD_NONFINITE;
            return v;
        }
        accuracy = static_cast<double>(p.correct) / static_cast<double>(n_replay_);
        v.replay_accuracy = static_cast<float>(accuracy);
    }
    const Pass p = run(DANN_DOMAIN_TARGET, recent_, n_recent, nullptr, nullptr);
    if (!p.finite) {
        v.reason = DANN_GUARD_NONFINITE;
        return v;
    }
    v.class_entropy = normalised_class_entropy(hist_.data(), k, n_recent);
    // The small tolerances absorb rounding in the comparisons, not real drops.
    if (has_replay() && accuracy < reference_accuracy_ - static_cast<double>(max_drop) - 1e-9)
        v.reason = DANN_GUARD_REPLAY_DROP;
    else if (static_cast<double>(v.class_entropy) <
             static_cast<double>(min_ratio) * static_cast<double>(reference_entropy) - 1e-6)
        v.reason = DANN_GUARD_CLASS_COLLAPSE;
    return v;
}

size_t Guard::bytes() const {
    return context_.bytes() + replay_tail_.bytes() + recent_storage_.bytes() + probs_.bytes() +
           domain_chunk_.bytes() + reference_domain_.bytes() + recent_domain_.bytes() +
           hist_.capacity() * sizeof(uint32_t);
}

} // namespace dann
