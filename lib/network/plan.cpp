#include "network/plan.hpp"

#include <omp.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "layers/factory.hpp"

namespace dann {

ThreadScope::ThreadScope(int threads) {
    if (threads > 0) {
        saved_ = omp_get_max_threads();
        omp_set_num_threads(threads);
    }
}

ThreadScope::~ThreadScope() {
    if (saved_ > 0) omp_set_num_threads(saved_);
}

// Whether the layers from planning position `next` on read an int8 input
// first: max pooling passes it on; a convolution or dense layer takes it (or
// turns it back into f32 itself), and so does the flattening that ends the
// features.
static bool int8_reader(const std::vector<LayerSpec> &specs, const std::vector<size_t> &order,
                        size_t next, Stack which) {
    while (next < order.size() && specs[order[next]].desc.kind == DANN_LAYER_MAXPOOL2D) ++next;
    if (next >= order.size()) return which == Stack::features;
    const dann_layer_kind kind = specs[order[next]].desc.kind;
    return kind == DANN_LAYER_CONV2D || kind == DANN_LAYER_DENSE;
}

// bf16 training plans: whether the output of the convolution at planning
// position k may be bf16 (PlanCtx::bf16_dst): a max pooling with
// non-overlapping, unpadded windows reads it (dann's own loops, which pool
// bf16 exactly: rounding is monotone, so the maximum of the rounded values
// is the rounded maximum) and, after the ReLU fused into it, a convolution
// reads the pooled values, which it rounds to bf16 anyway.
static bool bf16_pool_reader(const std::vector<LayerSpec> &specs,
                             const std::vector<size_t> &order, size_t k) {
    if (specs[order[k]].desc.kind != DANN_LAYER_CONV2D || k + 1 >= order.size()) return false;
    const dann_layer_desc &pool = specs[order[k + 1]].desc;
    if (pool.kind != DANN_LAYER_MAXPOOL2D || pool.kernel_h != pool.stride_h ||
        pool.kernel_w != pool.stride_w || pool.pad_h != 0 || pool.pad_w != 0)
        return false;
    size_t next = k + 2;
    if (next < order.size() && specs[order[next]].desc.kind == DANN_LAYER_RELU) ++next;
    return next < order.size() && specs[order[next]].desc.kind == DANN_LAYER_CONV2D;
}

Calibration::Calibration(const Model &m) {
    for (const Stack s : {Stack::features, Stack::label, Stack::domain})
        ranges[static_cast<size_t>(s)].resize(m.stack(s).size());
}

const dnnl::memory &Plan::plan_stack(dnn::PlanCtx &pc, const Model &m, Stack which,
                                     Stack_ &out, const dnnl::memory &src,
                                     float *const *grads, const BatchSplit &split) {
    const dnnl::memory *prev = &src;
    const std::vector<LayerSpec> &specs = m.stack(which);
    // ReLU then max pooling runs as max pooling then ReLU: the two commute
    // (ReLU is monotone), forward and backward (the gradient reaches the
    // window's maximum exactly when it is positive), and the ReLU then works
    // on a quarter of the values. `order` lists the specs in planning order;
    // each planned output is checked against the spec that produces it.
    std::vector<size_t> order(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) order[i] = i;
    // Inference plans instead fuse a ReLU into the convolution or dense layer
    // before it (a post-op), where the primitive allows.
    const auto fusable = [&](size_t i) {
        return !pc.training && i + 1 < specs.size() && specs[i + 1].desc.kind == DANN_LAYER_RELU &&
               (specs[i].desc.kind == DANN_LAYER_CONV2D || specs[i].desc.kind == DANN_LAYER_DENSE);
    };
    for (size_t i = 0; i + 1 < specs.size(); ++i)
        if (specs[i].desc.kind == DANN_LAYER_RELU && specs[i + 1].desc.kind == DANN_LAYER_MAXPOOL2D &&
            !(i > 0 && fusable(i - 1))) {
            std::swap(order[i], order[i + 1]);
            ++i;
        }
    for (size_t k = 0; k < order.size(); ++k) {
        const LayerSpec &spec = specs[order[k]];
        const uint64_t id = static_cast<uint64_t>(which) * 4096 + static_cast<uint64_t>(spec.index);
        ParamBinding binding = m.binding(spec, grads);
        if (calibration_ &&
            (spec.desc.kind == DANN_LAYER_CONV2D || spec.desc.kind == DANN_LAYER_DENSE))
            binding.range = calibration_->at(which, spec.index);
        out.push_back(make_layer(spec.desc, binding, split, id));
        // The previous layer of this stack says whether its output may be
        // overwritten (the stack's input never is: it may be shared).
        pc.src_reusable = out.size() > 1 && out[out.size() - 2]->output_reusable();
        // Training plans fuse a ReLU into the max pooling before it (in
        // planning order), which then also masks its own backward.
        const bool pool_relu = pc.training && !pc.statistics_only &&
                               spec.desc.kind == DANN_LAYER_MAXPOOL2D && k + 1 < order.size() &&
                               specs[order[k + 1]].desc.kind == DANN_LAYER_RELU;
        pc.fuse_relu = (fusable(order[k]) && order[k] == k) || pool_relu;
        // Int8 plans: what the previous layer wrote, and whether what comes
        // after this layer (and its fused ReLU) reads int8.
        pc.src_scale = out.size() > 1 ? out[out.size() - 2]->dst_scale() : 0.0f;
        if (pc.src_scale > 0.0f && spec.desc.kind != DANN_LAYER_CONV2D &&
            spec.desc.kind != DANN_LAYER_DENSE && spec.desc.kind != DANN_LAYER_MAXPOOL2D)
            fail(DANN_ERR_INTERNAL, "layer " + spec.name + ": planned on an int8 input");
        pc.int8_dst = pc.int8 && int8_reader(specs, order, k + (pc.fuse_relu ? 2 : 1), which);
        pc.bf16_dst = pc.bf16 && !pc.statistics_only && bf16_pool_reader(specs, order, k);
        out.back()->plan_forward(pc, *prev);
        pc.src_reusable = false;
        pc.fuse_relu = false;
        pc.int8_dst = false;
        pc.bf16_dst = false;
        pc.src_scale = 0.0f;
        if (out.back()->fused_relu()) ++k; // the ReLU that follows is done
        prev = &out.back()->dst();
        // The planned output must be what the model validated.
        const LayerSpec &shape = specs[std::max(order[k], k)];
        const auto d = prev->get_desc().dims();
        int64_t per_sample = 1;
        for (size_t i = 1; i < d.size(); ++i) per_sample *= d[i];
        if (per_sample != shape.out.size())
            fail(DANN_ERR_INTERNAL, "layer " + spec.name + ": planned output has " +
                                        std::to_string(per_sample) + " values per sample, expected " +
                                        std::to_string(shape.out.size()));
    }
    return *prev;
}

const dnnl::memory &Plan::plan_stack_backward(dnn::PlanCtx &pc, Stack_ &layers,
                                              const dnnl::memory &diff_dst,
                                              bool need_first_diff_src) {
    const dnnl::memory *diff = &diff_dst;
    for (size_t i = layers.size(); i-- > 0;) {
        pc.diff_src_hint = i > 0 ? layers[i - 1]->preferred_diff_dst() : dnn::md();
        layers[i]->plan_backward(pc, *diff, i > 0 || need_first_diff_src);
        pc.diff_src_hint = dnn::md();
        diff = &layers[i]->diff_src();
    }
    return *diff;
}

Plan::Plan(const Model &m, dnn::Device &dev, const PlanShape &shape, float *const *grads,
           Calibration *calibration)
    : dev_(dev), shape_(shape), ns_(shape.n_source), nt_(shape.n_target),
      training_(shape.kind != PlanKind::inference), arena_(dev),
      calibration_(training_ ? nullptr : calibration) {
    const int64_t n = ns_ + nt_;
    const bool statistics = shape.kind == PlanKind::statistics;
    dnn::PlanCtx pc(dev_, arena_, calls_, training_);
    pc.statistics_only = statistics;
    pc.bf16 = shape.bf16 && shape.kind == PlanKind::train;
    pc.int8 = shape.int8 && !training_;
    if (pc.int8 && !calibration_)
        fail(DANN_ERR_INTERNAL, "an int8 plan needs a calibration");
    input_ = arena_.make(dnn::plain({n, m.in_c, m.in_h, m.in_w}));

    const bool adversarial = shape.kind == PlanKind::train && nt_ > 0;
    const bool entropy = adversarial && shape.entropy;
    BatchSplit split;
    split.domain_stats = m.domain_bn;
    split.source = adversarial && m.domain_bn && ns_ > 0 ? ns_ : 0;
    split.whole = statistics ? DANN_DOMAIN_TARGET : DANN_DOMAIN_SOURCE;

    // Features, always ending flattened to a plain (N, F) matrix.
    const dnnl::memory &conv_out =
        plan_stack(pc, m, Stack::features, features_, input_, grads, split);
    pc.src_scale = features_.empty() ? 0.0f : features_.back()->dst_scale();
    features_.push_back(make_flatten());
    features_.back()->plan_forward(pc, conv_out);
    pc.src_scale = 0.0f;
    const dnnl::memory &feat = features_.back()->dst();

    // The label head sees only the source rows, which come first, unless the
    // target rows carry the entropy term.
    label_in_ = adversarial && !entropy
                    ? arena_.view(dnn::plain({ns_, m.feature_size}), feat.get_data_handle())
                    : feat;
    BatchSplit label_split = split;
    if (!entropy) label_split.source = 0;
    const dnnl::memory &logits =
        plan_stack(pc, m, Stack::label, label_, label_in_, grads, label_split);

    has_domain_ = adversarial || !training_ || statistics;
    const dnnl::memory *domain_logits = nullptr;
    if (has_domain_)
        domain_logits = &plan_stack(pc, m, Stack::domain, domain_, feat, grads, split);

    if (statistics) {
        // Forward only: no losses, no backward.
    } else if (!training_) {
        softmax_.plan(pc, logits);
        domain_out_ = dnn::reformat(pc, *domain_logits, dnn::plain({n, 1}));
    } else {
        ce_.plan(pc, logits, ns_);
        const dnnl::memory &label_diff =
            plan_stack_backward(pc, label_, ce_.grad(), true);
        const dnnl::memory *feat_diff = &label_diff;
        if (adversarial) {
            bce_.plan(pc, *domain_logits);
            // Domain labels: source 0, target 1.
            for (int64_t i = 0; i < n; ++i) bce_.targets()[i] = i < ns_ ? 0.0f : 1.0f;
            const dnnl::memory &domain_diff =
                plan_stack_backward(pc, domain_, bce_.grad(), true);
            grl_.plan(pc, domain_diff, &label_diff);
            feat_diff = &grl_.diff_src();
        }
        plan_stack_backward(pc, features_, *feat_diff, false);
    }
    dnn::finalize_scratchpad(arena_, calls_, scratch_storage_, scratch_);
}

void Plan::prepare_weights() {
    for (auto *stack : {&features_, &label_, &domain_})
        for (auto &l : *stack) l->prepare_weights(dev_);
}

void Plan::predict(const RunState &rs, bool with_domain) {
    for (auto &l : features_) l->forward(dev_, rs);
    for (auto &l : label_) l->forward(dev_, rs);
    softmax_.forward(dev_);
    if (with_domain) {
        for (auto &l : domain_) l->forward(dev_, rs);
        dnn::run_if(dev_, domain_out_.call);
    }
    dnn::wait(dev_);
}

void Plan::observe_ranges() {
    for (auto *stack : {&features_, &label_, &domain_})
        for (auto &l : *stack) l->observe_range();
}

void Plan::run_features(const RunState &rs) {
    for (auto &l : features_) l->forward(dev_, rs);
    dnn::wait(dev_);
}

void Plan::forward_statistics(const RunState &rs) {
    for (auto *stack : {&features_, &label_, &domain_})
        for (auto &l : *stack) l->forward(dev_, rs);
    dnn::wait(dev_);
}

Losses Plan::forward(const RunState &rs, const int32_t *labels, float entropy_weight) {
    Losses out;
    for (auto &l : features_) l->forward(dev_, rs);
    for (auto &l : label_) l->forward(dev_, rs);
    out.label = ce_.forward(dev_, labels, entropy_weight);
    out.entropy = ce_.entropy();
    if (has_domain_) {
        for (auto &l : domain_) l->forward(dev_, rs);
        out.domain = bce_.forward(dev_);
        out.domain_accuracy = bce_.accuracy();
    }
    return out;
}

void Plan::backward(const RunState &rs) {
    for (size_t i = label_.size(); i-- > 0;) label_[i]->backward(dev_, rs);
    if (has_domain_) {
        for (size_t i = domain_.size(); i-- > 0;) domain_[i]->backward(dev_, rs);
        grl_.backward(dev_, rs.lambda);
    }
    for (size_t i = features_.size(); i-- > 0;) features_[i]->backward(dev_, rs);
    dnn::wait(dev_);
}

void Plan::commit_statistics(float momentum) {
    for (auto *stack : {&features_, &label_, &domain_})
        for (auto &l : *stack) l->commit_statistics(momentum);
}

} // namespace dann

namespace dann {

Plan &PlanCache::get(const Model &m, dnn::Device &dev, const PlanShape &shape,
                     float *const *grads, Calibration *calibration) {
    for (size_t i = 0; i < plans_.size(); ++i) {
        Plan &p = *plans_[i];
        if (p.shape() == shape) {
            if (i + 1 != plans_.size()) {
                auto keep = std::move(plans_[i]);
                plans_.erase(plans_.begin() + static_cast<std::ptrdiff_t>(i));
                plans_.push_back(std::move(keep));
            }
            return *plans_.back();
        }
    }
    auto plan = std::make_unique<Plan>(m, dev, shape, grads, calibration);
    if (plans_.size() == kMaxPlans) plans_.erase(plans_.begin());
    plans_.push_back(std::move(plan));
    return *plans_.back();
}

} // namespace dann
