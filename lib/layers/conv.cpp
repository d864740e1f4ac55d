#include "layers/affine.hpp"
#include "layers/factory.hpp"

namespace dann {
namespace {

struct ConvOps {
    using Fwd = dnnl::convolution_forward;
    using BwdData = dnnl::convolution_backward_data;
    using BwdWeights = dnnl::convolution_backward_weights;
    static constexpr bool kConv = true;
    struct Shapes {
        dnn::dims weights, dst, strides, pad;
        dnn::tag weights_tag = dnn::tag::oihw;
    };

    static Shapes shapes(const dann_layer_desc &d, const dnn::dims &src) {
        Shapes s;
        const int64_t kh = d.kernel_h, kw = d.kernel_w, sh = d.stride_h, sw = d.stride_w;
        const int64_t ph = d.pad_h, pw = d.pad_w;
        const int64_t oh = (src[2] + 2 * ph - kh) / sh + 1;
        const int64_t ow = (src[3] + 2 * pw - kw) / sw + 1;
        s.weights = {d.units, src[1], kh, kw};
        s.dst = {src[0], d.units, oh, ow};
        s.strides = {sh, sw};
        s.pad = {ph, pw};
        return s;
    }
    static GemmGeometry geometry(const dann_layer_desc &, const dnn::dims &src, const Shapes &s) {
        GemmGeometry g;
        g.conv = true;
        g.n = src[0];
        g.c = src[1];
        g.h = src[2];
        g.w = src[3];
        g.oc = s.dst[1];
        g.oh = s.dst[2];
        g.ow = s.dst[3];
        g.kh = s.weights[2];
        g.kw = s.weights[3];
        g.sh = s.strides[0];
        g.sw = s.strides[1];
        g.ph = s.pad[0];
        g.pw = s.pad[1];
        return g;
    }
    static Fwd::desc fwd_desc(dnnl::prop_kind pk, const dnn::md &src, const dnn::md &wei,
                              const dnn::md &bias, const dnn::md &dst, const Shapes &s) {
        return Fwd::desc(pk, dnnl::algorithm::convolution_direct, src, wei, bias, dst,
                         s.strides, s.pad, s.pad);
    }
    static BwdWeights::desc bwd_weights_desc(const dnn::md &src, const dnn::md &wei,
                                             const dnn::md &bias, const dnn::md &dst,
                                             const Shapes &s) {
        return BwdWeights::desc(dnnl::algorithm::convolution_direct, src, wei, bias, dst,
                                s.strides, s.pad, s.pad);
    }
    static BwdData::desc bwd_data_desc(const dnn::md &src, const dnn::md &wei,
                                       const dnn::md &dst, const Shapes &s) {
        return BwdData::desc(dnnl::algorithm::convolution_direct, src, wei, dst, s.strides,
                             s.pad, s.pad);
    }
};

} // namespace

std::unique_ptr<Layer> make_conv2d(const dann_layer_desc &desc, const ParamBinding &params) {
    return std::make_unique<Affine<ConvOps>>(desc, params);
}

} // namespace dann
