#include "adapt/guard.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "adapt/drift.hpp"

namespace dann {
namespace {

// Samples per guard evaluation call: large enough to keep oneDNN efficient,
// small enough that the two guard contexts' activations stay modest.
constexpr size_t kGuardChunk = 32;

size_t sample_bytes(const dann_batch &layout) {
    return size_t(layout.channels) * size_t(layout.height) * size_t(layout.width) *
           (layout.format == DANN_INPUT_U8_HWC ? 1 : sizeof(float));
}

size_t round_up(size_t n, size_t chunk) { return (n + chunk - 1) / chunk * chunk; }

} // namespace

Guard::Guard(const Model &working, const Model &committed, const Setup &setup)
    : guard_samples_(setup.guard_samples), chunk_(std::min(setup.guard_samples, kGuardChunk)),
      classes_(working.num_classes), working_(working), committed_(committed) {
    recent_layout_.format = setup.format;
    recent_layout_.channels = setup.channels;
    recent_layout_.height = working.in_h;
    recent_layout_.width = working.in_w;
    recent_.resize(round_up(guard_samples_, chunk_) * sample_bytes(recent_layout_));
    recent_domain_.resize(guard_samples_ * sizeof(float));

    if (setup.replay && setup.replay->n > 0) {
        const ReplaySet &rp = *setup.replay;
        n_replay_ = std::min(guard_samples_, rp.n);
        replay_layout_ = rp.batch(0, 0);
        replay_.resize(round_up(n_replay_, chunk_) * rp.sample_bytes());
        std::memcpy(replay_.data(), rp.data.data(), n_replay_ * rp.sample_bytes());
        replay_labels_.assign(rp.labels.begin(),
                              rp.labels.begin() + static_cast<std::ptrdiff_t>(n_replay_));
        reference_domain_.resize(n_replay_ * sizeof(float));
    }
    probs_.resize(chunk_ * static_cast<size_t>(classes_) * sizeof(float));
    domain_chunk_.resize(chunk_ * sizeof(float));
    hist_.assign(static_cast<size_t>(classes_), 0);

    // Build both contexts' plans now (inference changes no weights or statistics).
    dann_batch warm = recent_layout_;
    warm.data = recent_.data();
    warm.n = chunk_;
    for (Context *ctx : {&working_, &committed_})
        ctx->predict(warm, probs_.f32(), chunk_ * static_cast<size_t>(classes_),
                     domain_chunk_.f32(), chunk_);
    measure_reference();
}

Guard::Pass Guard::run(Context &ctx, dann_domain domain, const Buffer &samples,
                       const dann_batch &layout, size_t n, const int32_t *labels,
                       float *domain_out) {
    Pass pass;
    std::fill(hist_.begin(), hist_.end(), 0u);
    ctx.domain = domain;
    const size_t bytes = sample_bytes(layout);
    const size_t k = static_cast<size_t>(classes_);
    for (size_t start = 0; start < n; start += chunk_) {
        dann_batch b = layout;
        b.data = static_cast<const uint8_t *>(samples.data()) + start * bytes;
        b.n = chunk_;
        ctx.predict(b, probs_.f32(), chunk_ * k, domain_out ? domain_chunk_.f32() : nullptr,
                    chunk_);
        const size_t rows = std::min(chunk_, n - start);
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

void Guard::measure_reference() {
    if (!has_replay()) return;
    const Pass pass = run(committed_, DANN_DOMAIN_SOURCE, replay_, replay_layout_, n_replay_,
                          replay_labels_.data(), reference_domain_.f32());
    reference_accuracy_ = static_cast<double>(pass.correct) / static_cast<double>(n_replay_);
    std::sort(reference_domain_.f32(), reference_domain_.f32() + n_replay_);
}

Guard::Verdict Guard::check(size_t n_recent, bool check_working, float max_drop, float min_ratio) {
    Verdict v;
    n_recent = std::min(n_recent, guard_samples_);
    if (n_recent == 0) return v;
    const auto k = classes_;

    const Pass ref = run(committed_, DANN_DOMAIN_TARGET, recent_, recent_layout_, n_recent,
                         nullptr, recent_domain_.f32());
    const float reference_entropy = normalised_class_entropy(hist_.data(), k, n_recent);
    if (ref.finite)
        v.drift = has_replay() ? drift_auc_sorted_reference(recent_domain_.f32(), n_recent,
                                                            reference_domain_.f32(), n_replay_)
                               : static_cast<float>(mean_of(recent_domain_.f32(), n_recent));
    if (!check_working) return v;

    double accuracy = 0.0;
    if (has_replay()) {
        const Pass p = run(working_, DANN_DOMAIN_SOURCE, replay_, replay_layout_, n_replay_,
                           replay_labels_.data(), nullptr);
        if (!p.finite) {
            v.reason = DANN_GUARD_NONFINITE;
            return v;
        }
        accuracy = static_cast<double>(p.correct) / static_cast<double>(n_replay_);
        v.replay_accuracy = static_cast<float>(accuracy);
    }
    const Pass p = run(working_, DANN_DOMAIN_TARGET, recent_, recent_layout_, n_recent, nullptr,
                       nullptr);
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
    return working_.bytes() + committed_.bytes() + replay_.bytes() + recent_.bytes() +
           replay_labels_.capacity() * sizeof(int32_t) + probs_.bytes() + domain_chunk_.bytes() +
           reference_domain_.bytes() + recent_domain_.bytes() +
           hist_.capacity() * sizeof(uint32_t);
}

} // namespace dann
