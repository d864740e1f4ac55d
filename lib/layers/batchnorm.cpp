#include "core/error.hpp"
#include "layers/factory.hpp"

namespace dann {
namespace {

// Batch normalisation over channels (4-D) or features (2-D). In training each
// part of the batch (the whole batch, or its source and target parts with
// domain batch-norm) is normalised with its own batch statistics; running
// statistics follow PyTorch (unbiased variance, momentum form) and are only
// updated by commit_statistics(), after a step has been accepted.
class BatchNorm final : public Layer {
public:
    BatchNorm(const dann_layer_desc &d, const ParamBinding &p, const BatchSplit &split)
        : eps_(d.eps), momentum_(d.momentum), p_(p), split_(split) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        src_ = src;
        training_ = pc.training;
        const dnn::md md = src.get_desc();
        const auto d = md.dims();
        channels_ = d[1];
        spatial_ = 1;
        for (size_t i = 2; i < d.size(); ++i) spatial_ *= d[i];
        const dnn::md stat_md = dnn::plain({channels_});
        scale_ = pc.arena.view(stat_md, p_.weight);
        shift_ = pc.arena.view(stat_md, p_.bias);
        dst_ = pc.arena.make(md);
        const auto ss = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;

        if (!training_) {
            auto fpd = dnnl::batch_normalization_forward::primitive_desc(
                dnnl::batch_normalization_forward::desc(
                    dnnl::prop_kind::forward_inference, md, eps_,
                    ss | dnnl::normalization_flags::use_global_stats),
                pc.attr, pc.dev.eng);
            Part &part = parts_[0];
            n_parts_ = 1;
            part.mean = pc.arena.view(stat_md, p_.running_mean);
            part.var = pc.arena.view(stat_md, p_.running_var);
            part.fwd = record_forward(pc, fpd, src_, dst_, part.mean, part.var);
            if (split_.domain_stats) {
                target_mean_ = pc.arena.view(stat_md, p_.running_mean_target);
                target_var_ = pc.arena.view(stat_md, p_.running_var_target);
                target_fwd_ = record_forward(pc, fpd, src_, dst_, target_mean_, target_var_);
            }
            return;
        }

        const int64_t n = d[0];
        if (split_.domain_stats && split_.source > 0 && split_.source < n) {
            n_parts_ = 2;
            parts_[0].start = 0;
            parts_[0].n = split_.source;
            parts_[0].domain = DANN_DOMAIN_SOURCE;
            parts_[1].start = split_.source;
            parts_[1].n = n - split_.source;
            parts_[1].domain = DANN_DOMAIN_TARGET;
        } else {
            n_parts_ = 1;
            parts_[0].start = 0;
            parts_[0].n = n;
            parts_[0].domain = split_.whole;
        }
        for (int k = 0; k < n_parts_; ++k) {
            Part &part = parts_[k];
            part.md = dnn::with_batch(md, part.n);
            part.offset = dnn::batch_offset_bytes(md, part.start);
            part.src = part_view(pc, src_, part);
            part.dst = part_view(pc, dst_, part);
            part.mean = pc.arena.make(stat_md);
            part.var = pc.arena.make(stat_md);
            part.fpd = dnnl::batch_normalization_forward::primitive_desc(
                dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training,
                                                        part.md, eps_, ss),
                pc.attr, pc.dev.eng);
            part.fwd = record_forward(pc, part.fpd, part.src, part.dst, part.mean, part.var);
        }
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst, bool) override {
        if (!p_.grad_weight || !p_.grad_bias)
            fail(DANN_ERR_INTERNAL, "backward planned without gradient storage");
        diff_dst_ = dnn::reformat(pc, diff_dst, src_.get_desc());
        diff_src_ = pc.arena.make(src_.get_desc());
        const dnn::md stat_md = dnn::plain({channels_});
        const auto ss = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
        for (int k = 0; k < n_parts_; ++k) {
            Part &part = parts_[k];
            part.diff_dst = part_view(pc, diff_dst_.mem, part);
            part.diff_src = part_view(pc, diff_src_, part);
            // The first part writes the gradients, a second one adds to them.
            part.diff_scale = k == 0 ? pc.arena.view(stat_md, p_.grad_weight) : pc.arena.make(stat_md);
            part.diff_shift = k == 0 ? pc.arena.view(stat_md, p_.grad_bias) : pc.arena.make(stat_md);
            dnnl::batch_normalization_backward::primitive_desc bpd(
                dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, part.md,
                                                         part.md, eps_, ss),
                pc.attr, pc.dev.eng, part.fpd);
            part.bwd = pc.record(dnnl::batch_normalization_backward(bpd),
                                 {{DNNL_ARG_SRC, &part.src},
                                  {DNNL_ARG_MEAN, &part.mean},
                                  {DNNL_ARG_VARIANCE, &part.var},
                                  {DNNL_ARG_DIFF_DST, &part.diff_dst},
                                  {DNNL_ARG_SCALE, &scale_},
                                  {DNNL_ARG_SHIFT, &shift_},
                                  {DNNL_ARG_DIFF_SRC, &part.diff_src},
                                  {DNNL_ARG_DIFF_SCALE, &part.diff_scale},
                                  {DNNL_ARG_DIFF_SHIFT, &part.diff_shift}},
                                 &bpd);
        }
    }

    void forward(dnn::Device &dev, const RunState &rs) override {
        if (!training_ && split_.domain_stats && rs.domain == DANN_DOMAIN_TARGET) {
            dnn::run(dev, target_fwd_);
            return;
        }
        for (int k = 0; k < n_parts_; ++k) dnn::run(dev, parts_[k].fwd);
    }

    void backward(dnn::Device &dev, const RunState &) override {
        dnn::run_if(dev, diff_dst_.call);
        for (int k = 0; k < n_parts_; ++k) dnn::run(dev, parts_[k].bwd);
        if (n_parts_ == 2) {
            dnn::wait(dev);
            const float *ds = dnn::data_f32(parts_[1].diff_scale);
            const float *dh = dnn::data_f32(parts_[1].diff_shift);
            for (int64_t c = 0; c < channels_; ++c) {
                p_.grad_weight[c] += ds[c];
                p_.grad_bias[c] += dh[c];
            }
        }
    }

    void commit_statistics(float momentum) override {
        if (!training_) return;
        for (int k = 0; k < n_parts_; ++k) {
            const Part &part = parts_[k];
            const bool target = split_.domain_stats && part.domain == DANN_DOMAIN_TARGET;
            float *rm = target ? p_.running_mean_target : p_.running_mean;
            float *rv = target ? p_.running_var_target : p_.running_var;
            const float *mean = dnn::data_f32(part.mean);
            const float *var = dnn::data_f32(part.var);
            const double count = static_cast<double>(part.n * spatial_);
            const double unbias = count > 1.0 ? count / (count - 1.0) : 1.0;
            const float m = momentum > 0.0f ? momentum : momentum_;
            for (int64_t c = 0; c < channels_; ++c) {
                rm[c] = (1.0f - m) * rm[c] + m * mean[c];
                rv[c] = (1.0f - m) * rv[c] + m * static_cast<float>(static_cast<double>(var[c]) * unbias);
            }
        }
    }

private:
    struct Part {
        int64_t start = 0, n = 0;
        size_t offset = 0;
        dann_domain domain = DANN_DOMAIN_SOURCE;
        dnn::md md;
        dnnl::memory src, dst, mean, var, diff_dst, diff_src, diff_scale, diff_shift;
        dnnl::batch_normalization_forward::primitive_desc fpd;
        dnn::Call *fwd = nullptr, *bwd = nullptr;
    };

    dnnl::memory part_view(dnn::PlanCtx &pc, const dnnl::memory &whole, const Part &part) {
        if (n_parts_ == 1) return whole;
        return pc.arena.view(part.md, static_cast<char *>(whole.get_data_handle()) + part.offset);
    }

    dnn::Call *record_forward(dnn::PlanCtx &pc,
                              const dnnl::batch_normalization_forward::primitive_desc &fpd,
                              const dnnl::memory &src, const dnnl::memory &dst,
                              const dnnl::memory &mean, const dnnl::memory &var) {
        return pc.record(dnnl::batch_normalization_forward(fpd),
                         {{DNNL_ARG_SRC, &src},
                          {DNNL_ARG_DST, &dst},
                          {DNNL_ARG_MEAN, &mean},
                          {DNNL_ARG_VARIANCE, &var},
                          {DNNL_ARG_SCALE, &scale_},
                          {DNNL_ARG_SHIFT, &shift_}},
                         &fpd);
    }

    float eps_, momentum_;
    ParamBinding p_;
    BatchSplit split_;
    bool training_ = false;
    int64_t channels_ = 0, spatial_ = 1;
    int n_parts_ = 1;
    Part parts_[2];
    dnnl::memory src_, scale_, shift_, target_mean_, target_var_;
    dnn::Reformat diff_dst_;
    dnn::Call *target_fwd_ = nullptr;
};

} // namespace

std::unique_ptr<Layer> make_batchnorm(const dann_layer_desc &desc, const ParamBinding &params,
                                      const BatchSplit &split) {
    return std::make_unique<BatchNorm>(desc, params, split);
}

} // namespace dann
