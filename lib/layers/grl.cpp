#include "layers/grl.hpp"

namespace dann {

void GradientReversal::plan(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                            const dnnl::memory *label_diff) {
    const auto d = diff_dst.get_desc().dims();
    const dnn::md plain = dnn::plain(d);
    diff_dst_ = dnn::reformat(pc, diff_dst, plain);
    diff_src_ = pc.arena.make(plain);
    // -lambda lives in a one-element tensor broadcast by a binary primitive, so
    // that lambda can change every step without rebuilding anything.
    dnn::dims one(d.size(), 1);
    scale_ = pc.arena.make(dnn::plain(one));
    dnnl::binary::primitive_desc mul(
        dnnl::binary::desc(dnnl::algorithm::binary_mul, plain, scale_.get_desc(), plain), pc.attr,
        pc.dev.eng);
    reverse_ = pc.record(dnnl::binary(mul),
                         {{DNNL_ARG_SRC_0, &diff_dst_.mem},
                          {DNNL_ARG_SRC_1, &scale_},
                          {DNNL_ARG_DST, &diff_src_}},
                         &mul);
    if (!label_diff) return;
    const dnn::dims ld = label_diff->get_desc().dims();
    const dnn::md rows = dnn::plain(ld);
    label_diff_ = dnn::reformat(pc, *label_diff, rows);
    diff_src_rows_ = pc.arena.view(rows, diff_src_.get_data_handle());
    dnnl::binary::primitive_desc add(
        dnnl::binary::desc(dnnl::algorithm::binary_add, rows, rows, rows), pc.attr, pc.dev.eng);
    join_ = pc.record(dnnl::binary(add),
                      {{DNNL_ARG_SRC_0, &diff_src_rows_},
                       {DNNL_ARG_SRC_1, &label_diff_.mem},
                       {DNNL_ARG_DST, &diff_src_rows_}},
                      &add);
}

void GradientReversal::backward(dnn::Device &dev, float lambda) {
    *dnn::data_f32(scale_) = -lambda;
    dnn::run_if(dev, diff_dst_.call);
    dnn::run(dev, reverse_);
    if (join_) {
        dnn::run_if(dev, label_diff_.call);
        dnn::run(dev, join_);
    }
}

} // namespace dann
