#include <algorithm>

#include "core/clones.hpp"
#include "core/rng.hpp"
#include "layers/factory.hpp"

namespace dann {
namespace {

// Inverted dropout. oneDNN 2.6 has no dropout primitive, so the mask and the
// products are dann's own loops, over the physical buffer: padding stays zero.
// Each element's keep/drop decision is a hash of (step seed, layer, index), so
// masks are reproducible and independent of the thread count.
class Dropout final : public Layer {
public:
    Dropout(float rate, uint64_t layer_id) : rate_(rate), layer_id_(layer_id) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        src_ = src;
        training_ = pc.training && !pc.statistics_only;
        if (!training_) {
            dst_ = src; // inference: identity, no copy
            return;
        }
        count_ = dnn::physical_floats(src.get_desc());
        dst_ = pc.arena.make(src.get_desc());
        mask_ = pc.arena.alloc_f32(count_);
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!need_diff_src) return;
        diff_dst_ = dnn::reformat(pc, diff_dst, src_.get_desc());
        diff_src_ = pc.arena.make(src_.get_desc());
    }

    void forward(dnn::Device &, const RunState &rs) override {
        if (!training_) return;
        const float *src = dnn::data_f32(src_);
        float *dst = dnn::data_f32(dst_);
        float *mask = mask_;
        const float keep_scale = 1.0f / (1.0f - rate_);
        // Keep when the top 24 bits of the hash fall at or above rate * 2^24.
        const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(rate_) * 16777216.0);
        const uint64_t base = splitmix64_hash(rs.dropout_seed ^ (layer_id_ * 0xD1B54A32D192ED03ull));
        const int64_t n = static_cast<int64_t>(count_);
        constexpr int64_t kBlock = 4096;
#pragma omp parallel for schedule(static) if (n > kBlock)
        for (int64_t b = 0; b < n; b += kBlock)
            mask_block(base, threshold, keep_scale, b, std::min(n, b + kBlock), src, dst, mask);
    }

    void backward(dnn::Device &dev, const RunState &) override {
        if (!diff_src_) return;
        dnn::run_if(dev, diff_dst_.call);
        dnn::wait(dev);
        const float *dd = dnn::data_f32(diff_dst_.mem);
        float *ds = dnn::data_f32(diff_src_);
        const float *mask = mask_;
        const int64_t n = static_cast<int64_t>(count_);
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; ++i) ds[i] = dd[i] * mask[i];
    }

    const float *mask() const override { return mask_; }

private:
    // Elements [i0, i1): the hash of each index decides keep (the scale) or
    // drop (0). The 64-bit multiplies of the hash vectorise with AVX-512 (a
    // clone of the loop); every clone computes the same bits.
    DANN_CLONES static void mask_block(uint64_t base, uint64_t threshold, float keep_scale,
                                       int64_t i0, int64_t i1, const float *__restrict src,
                                       float *__restrict dst, float *__restrict mask) {
        for (int64_t i = i0; i < i1; ++i) {
            const uint64_t h = splitmix64_hash(base + static_cast<uint64_t>(i)) >> 40;
            const float m = h >= threshold ? keep_scale : 0.0f;
            mask[i] = m;
            dst[i] = src[i] * m;
        }
    }

    float rate_;
    uint64_t layer_id_;
    bool training_ = false;
    size_t count_ = 0;
    dnnl::memory src_;
    float *mask_ = nullptr;
    dnn::Reformat diff_dst_;
};

} // namespace

std::unique_ptr<Layer> make_dropout(const dann_layer_desc &desc, uint64_t layer_id) {
    return std::make_unique<Dropout>(desc.rate, layer_id);
}

} // namespace dann
