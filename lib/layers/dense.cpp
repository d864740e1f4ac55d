#include "layers/affine.hpp"
#include "layers/factory.hpp"

namespace dann {
namespace {

// A fully connected layer reads a 4-D input as flattened C*H*W, so its plain
// weights (out, C, H, W) in oihw are PyTorch's (out, in) matrix.
struct DenseOps {
    using Fwd = dnnl::inner_product_forward;
    using BwdData = dnnl::inner_product_backward_data;
    using BwdWeights = dnnl::inner_product_backward_weights;
    static constexpr bool kConv = false;
    struct Shapes {
        dnn::dims weights, dst;
        dnn::tag weights_tag = dnn::tag::oi;
    };

    static Shapes shapes(const dann_layer_desc &d, const dnn::dims &src) {
        Shapes s;
        s.weights = src;
        s.weights[0] = d.units;
        s.dst = {src[0], d.units};
        s.weights_tag = src.size() == 4 ? dnn::tag::oihw : dnn::tag::oi;
        return s;
    }
    // The source flattened per sample (C*H*W in NCHW order), as the weights are.
    static GemmGeometry geometry(const dann_layer_desc &, const dnn::dims &src, const Shapes &s) {
        GemmGeometry g;
        g.n = src[0];
        g.c = 1;
        for (size_t i = 1; i < src.size(); ++i) g.c *= src[i];
        g.oc = s.dst[1];
        return g;
    }
    static Fwd::desc fwd_desc(dnnl::prop_kind pk, const dnn::md &src, const dnn::md &wei,
                              const dnn::md &bias, const dnn::md &dst, const Shapes &) {
        return Fwd::desc(pk, src, wei, bias, dst);
    }
    static BwdWeights::desc bwd_weights_desc(const dnn::md &src, const dnn::md &wei,
                                             const dnn::md &bias, const dnn::md &dst,
                                             const Shapes &) {
        return BwdWeights::desc(src, wei, bias, dst);
    }
    static BwdData::desc bwd_data_desc(const dnn::md &src, const dnn::md &wei,
                                       const dnn::md &dst, const Shapes &) {
        return BwdData::desc(src, wei, dst);
    }
};

} // namespace

std::unique_ptr<Layer> make_dense(const dann_layer_desc &desc, const ParamBinding &params) {
    return std::make_unique<Affine<DenseOps>>(desc, params);
}

} // namespace dann
