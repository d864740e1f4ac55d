// The gradient reversal layer: identity forward (the domain head reads the
// features directly), and backward diff_src = -lambda * diff_dst. On the
// network it also joins the label head's gradient, which covers only the first
// rows (the source samples), so the feature extractor receives
// d(label loss) - lambda * d(domain loss) in one buffer.
#pragma once

#include "core/dnn.hpp"

namespace dann {

class GradientReversal {
public:
    // diff_dst: (N, F) in any layout; label_diff: (Ns, F), Ns <= N, or nullptr.
    void plan(dnn::PlanCtx &pc, const dnnl::memory &diff_dst, const dnnl::memory *label_diff);
    void backward(dnn::Device &dev, float lambda);
    const dnnl::memory &diff_src() const { return diff_src_; }

private:
    dnn::Reformat diff_dst_, label_diff_;
    dnnl::memory scale_, diff_src_, diff_src_rows_;
    dnn::Call *reverse_ = nullptr, *join_ = nullptr;
};

} // namespace dann
