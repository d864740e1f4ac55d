#include "layers/harness.hpp"

#include <cstring>

#include "core/error.hpp"
#include "layers/factory.hpp"
#include "layers/grl.hpp"
#include "layers/loss.hpp"
#include "network/model.hpp"

namespace dann::testing {
namespace {

struct Bench {
    dnn::Device dev;
    dnn::Arena arena{dev};
    std::deque<dnn::Call> calls;
    Buffer scratch_storage;
    dnnl::memory scratch;
    dnn::PlanCtx pc;
    explicit Bench(bool training) : pc(dev, arena, calls, training) {}

    // A plain tensor holding `values`, or its copy in a blocked (nChw16c)
    // or NHWC layout.
    dnnl::memory input(const dnn::dims &d, const std::vector<float> &values, bool blocked,
                       bool nhwc = false, bool bf16 = false) {
        dnnl::memory plain = arena.make(dnn::plain(d));
        if (values.size() * sizeof(float) != plain.get_desc().get_size())
            fail(DANN_ERR_SHAPE, "harness: input size does not match its dimensions");
        std::memcpy(plain.get_data_handle(), values.data(), values.size() * sizeof(float));
        if ((!blocked && !nhwc && !bf16) || d.size() != 4) return plain;
        const dnn::tag t = nhwc ? dnn::tag::nhwc : blocked ? dnn::tag::nChw16c : dnn::tag::nchw;
        dnnl::memory b = arena.make(dnn::md(d, bf16 ? dnn::bf16 : dnn::f32, t));
        dnnl::reorder(plain, b).execute(dev.strm, plain, b);
        dev.strm.wait();
        return b;
    }

    std::vector<float> read_plain(dnnl::memory m) {
        const dnn::dims d = m.get_desc().dims();
        dnnl::memory plain = arena.make(dnn::plain(d));
        dnnl::reorder(m, plain).execute(dev.strm, m, plain);
        dev.strm.wait();
        const float *p = dnn::data_f32(plain);
        return std::vector<float>(p, p + plain.get_desc().get_size() / sizeof(float));
    }

    void finalize() { dnn::finalize_scratchpad(arena, calls, scratch_storage, scratch); }
};

std::vector<float> copy(const float *p, size_t n) { return std::vector<float>(p, p + n); }

} // namespace

LayerRun run_layer(const dann_layer_desc &layer, const std::vector<int> &src_dims,
                   const std::vector<float> &src, const std::vector<std::vector<float>> &params,
                   const std::vector<float> &diff_dst, const LayerOptions &options) {
    Bench b(options.training);
    dnn::dims d(src_dims.begin(), src_dims.end());
    const int64_t channels = d[1];

    // Parameters and gradients in PyTorch layout, owned here.
    std::vector<std::vector<float>> p = params, g(params.size());
    for (size_t i = 0; i < p.size(); ++i) g[i].assign(p[i].size(), 0.0f);
    std::vector<float> rm(static_cast<size_t>(channels), 0.0f), rv(static_cast<size_t>(channels), 1.0f);
    std::vector<float> rmt = rm, rvt = rv;
    if (!options.running_mean.empty()) rm = rmt = options.running_mean;
    if (!options.running_var.empty()) rv = rvt = options.running_var;

    ParamBinding binding;
    if (p.size() >= 2) {
        binding.weight = p[0].data();
        binding.bias = p[1].data();
        if (options.training) {
            binding.grad_weight = g[0].data();
            binding.grad_bias = g[1].data();
        }
    }
    binding.running_mean = rm.data();
    binding.running_var = rv.data();
    binding.running_mean_target = rmt.data();
    binding.running_var_target = rvt.data();

    BatchSplit split;
    split.domain_stats = options.domain_split > 0;
    split.source = options.domain_split;

    const dann_layer_desc desc = with_defaults(layer);

    auto l = make_layer(desc, binding, split, 1);
    dnnl::memory in =
        b.input(d, src, options.blocked_input, options.nhwc_input, options.bf16_input);
    b.pc.fuse_relu = options.fuse_relu && options.training;
    b.pc.bf16 = options.bf16 && options.training;
    b.pc.bf16_dst = b.pc.bf16 && options.bf16_dst;
    l->plan_forward(b.pc, in);
    b.pc.fuse_relu = false;
    b.pc.bf16_dst = false;
    const bool dst_bf16 = l->dst().get_desc().data_type() == dnn::bf16;
    const dnn::dims od = l->dst().get_desc().dims();
    dnnl::memory dd;
    if (options.training) {
        dd = b.input(od, diff_dst, options.blocked_input, options.nhwc_input || options.nhwc_diff_dst);
        if (options.blocked_diff_src_hint && d.size() == 4)
            b.pc.diff_src_hint = dnn::md(d, dnn::f32, dnn::tag::nChw16c);
        l->plan_backward(b.pc, dd, true);
        b.pc.diff_src_hint = dnn::md();
    }
    b.finalize();

    RunState rs;
    rs.dropout_seed = options.seed;
    l->prepare_weights(b.dev);
    l->forward(b.dev, rs);
    dnn::wait(b.dev);
    LayerRun out;
    out.dst_bf16 = dst_bf16;
    out.dst_dims.assign(od.begin(), od.end());
    out.dst = b.read_plain(l->dst());
    out.fused_relu = l->fused_relu();
    if (l->mask()) {
        // The mask covers the physical input buffer; report it in plain order.
        dnnl::memory m = b.arena.make(in.get_desc());
        std::memcpy(m.get_data_handle(), l->mask(), in.get_desc().get_size());
        out.dropout_mask = b.read_plain(m);
    }
    if (options.training) {
        l->backward(b.dev, rs);
        dnn::wait(b.dev);
        out.diff_src = b.read_plain(l->diff_src());
        out.diff_src_blocked = d.size() == 4 && l->diff_src().get_desc() ==
                                                    dnn::md(d, dnn::f32, dnn::tag::nChw16c);
        out.diff_params = g;
        l->commit_statistics();
        out.running_mean = rm;
        out.running_var = rv;
        out.running_mean_target = rmt;
        out.running_var_target = rvt;
    }
    return out;
}

GrlRun run_grl(const std::vector<int> &dims, const std::vector<float> &src,
               const std::vector<float> &diff_dst, float lambda) {
    Bench b(true);
    int64_t rest = 1;
    for (size_t i = 1; i < dims.size(); ++i) rest *= dims[i];
    const dnn::dims d{dims[0], rest};
    dnnl::memory dd = b.input(d, diff_dst, false);
    GradientReversal grl;
    grl.plan(b.pc, dd, nullptr);
    b.finalize();
    grl.backward(b.dev, lambda);
    dnn::wait(b.dev);
    GrlRun out;
    out.dst = src; // forward is the identity: the domain head reads the features
    out.diff_src = b.read_plain(grl.diff_src());
    return out;
}

LossRun run_softmax_cross_entropy(const std::vector<float> &logits, int n, int k,
                                  const std::vector<int32_t> &labels) {
    Bench b(true);
    dnnl::memory x = b.input({n, k}, logits, false);
    SoftmaxCrossEntropy ce;
    ce.plan(b.pc, x);
    b.finalize();
    LossRun out;
    out.loss = ce.forward(b.dev, labels.data());
    out.grad = copy(dnn::data_f32(ce.grad()), static_cast<size_t>(n) * static_cast<size_t>(k));
    return out;
}

LossRun run_logistic_loss(const std::vector<float> &logits, const std::vector<float> &targets) {
    Bench b(true);
    const int64_t n = static_cast<int64_t>(logits.size());
    dnnl::memory x = b.input({n, 1}, logits, false);
    LogisticLoss bce;
    bce.plan(b.pc, x);
    std::memcpy(bce.targets(), targets.data(), targets.size() * sizeof(float));
    b.finalize();
    LossRun out;
    out.loss = bce.forward(b.dev);
    out.grad = copy(dnn::data_f32(bce.grad()), logits.size());
    return out;
}

} // namespace dann::testing
