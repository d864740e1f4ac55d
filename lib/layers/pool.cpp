#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/clones.hpp"
#include "layers/factory.hpp"

namespace dann {
namespace {

// Max pooling in PyTorch's floor mode; padded positions never win.
class MaxPool2d final : public Layer {
public:
    explicit MaxPool2d(const dann_layer_desc &d) : desc_(d) {}

    void plan_forward(dnn::PlanCtx &pc, const dnnl::memory &src) override {
        const auto s = src.get_desc().dims();
        const int64_t kh = desc_.kernel_h, kw = desc_.kernel_w;
        const int64_t sh = desc_.stride_h, sw = desc_.stride_w;
        const int64_t ph = desc_.pad_h, pw = desc_.pad_w;
        const int64_t oh = (s[2] + 2 * ph - kh) / sh + 1;
        const int64_t ow = (s[3] + 2 * pw - kw) / sw + 1;
        // Right padding that yields exactly the floor-mode output size.
        const int64_t prh = std::max<int64_t>(0, (oh - 1) * sh + kh - s[2] - ph);
        const int64_t prw = std::max<int64_t>(0, (ow - 1) * sw + kw - s[3] - pw);
        strides_ = {sh, sw};
        kernel_ = {kh, kw};
        pad_l_ = {ph, pw};
        pad_r_ = {prh, prw};
        src_ = src;
        src_reusable_ = pc.src_reusable;
        // Int8 plans pool u8/s8 as they are: the maximum keeps the scale.
        // bf16 (training plans, PlanCtx::bf16_dst) is pooled by the own
        // loops below, exactly, into a bf16 output.
        dnn::dt dt = src.get_desc().data_type();
        dst_scale_ = dt == dnn::u8 || dt == dnn::s8 ? pc.src_scale : 0.0f;
        dnn::md dst_any({s[0], s[1], oh, ow}, dt, dnn::tag::any);
        const auto make_pd = [&](dnnl::prop_kind pk, const dnnl::primitive_attr &attr) {
            return dnnl::pooling_forward::primitive_desc(
                dnnl::pooling_forward::desc(pk, dnnl::algorithm::pooling_max, src_.get_desc(),
                                            dst_any, strides_, kernel_, pad_l_, pad_r_),
                attr, pc.dev.eng);
        };
        // Training with windows that neither overlap nor pad, in a layout
        // dann can index: both passes are dann's own loops. The forward
        // pass keeps, per output value, the position of the first window
        // element equal to the window's maximum (one byte, as oneDNN's
        // workspace does), and the backward pass routes each gradient there
        // without reading the input again. A ReLU that follows
        // (pc.fuse_relu, training plans) is applied to the output and masks
        // the routed gradients. The layout is the one oneDNN's own kernel
        // would give the output.
        // f32 inference plans take the same loops without the positions:
        // oneDNN 2.6's kernel took 3.1 ms for max pool 1 at batch 256 (NHWC,
        // 1 thread) and ~5 us at batch 1.
        own_ = false;
        relu_ = false;
        keep_ = pc.training && !pc.statistics_only;
        const bool f32_inference = !pc.training && dt == dnn::f32;
        const bool own_fits = (keep_ || f32_inference) && kh == sh && kw == sw && ph == 0 &&
                              pw == 0 && prh == 0 && prw == 0 && kh * kw < 255;
        // The output layout is the one oneDNN's kernel would give; its
        // descriptor is only asked for, never run.
        const auto plan_own = [&] {
            fpd_ = make_pd(dnnl::prop_kind::forward_inference, pc.attr);
            own_ = geometry(src_.get_desc(), fpd_.dst_desc(), geo_);
        };
        if (own_fits) {
            if (dt != dnn::bf16) {
                plan_own();
            } else {
                try {
                    plan_own();
                } catch (const dnnl::error &) {
                    own_ = false; // oneDNN has no bf16 pooling on this CPU
                }
            }
        }
        if (!own_ && dt == dnn::bf16) {
            // A bf16 source the own loops cannot take here: pooled in f32.
            src_bf16_ = dnn::reformat(pc, src, dnn::with_type(src.get_desc(), dnn::f32));
            src_ = src_bf16_.mem;
            dt = dnn::f32;
            dst_any = dnn::md(dst_any.dims(), dt, dnn::tag::any);
            if (own_fits) plan_own();
        }
        relu_ = own_ && pc.fuse_relu && keep_;
        bf16_ = own_ && dt == dnn::bf16;
        if (!own_)
            fpd_ = make_pd(pc.training ? dnnl::prop_kind::forward_training
                                       : dnnl::prop_kind::forward_inference,
                           pc.attr);
        dst_ = pc.arena.make(fpd_.dst_desc());
        if (own_) {
            if (keep_) where_.resize(dnn::physical_elements(fpd_.dst_desc()));
        } else if (pc.training) {
            workspace_ = pc.arena.make(fpd_.workspace_desc());
            fwd_ = pc.record(dnnl::pooling_forward(fpd_),
                             {{DNNL_ARG_SRC, &src_}, {DNNL_ARG_DST, &dst_},
                              {DNNL_ARG_WORKSPACE, &workspace_}},
                             &fpd_);
        } else {
            fwd_ = pc.record(dnnl::pooling_forward(fpd_),
                             {{DNNL_ARG_SRC, &src_}, {DNNL_ARG_DST, &dst_}}, &fpd_);
        }
    }

    void plan_backward(dnn::PlanCtx &pc, const dnnl::memory &diff_dst,
                       bool need_diff_src) override {
        if (!need_diff_src) return;
        if (own_) {
            // Gradients are f32 whatever the values' type. An f32 output
            // gradient is read in the layout it arrives in where the lanes
            // allow (e.g. NHWC from a bf16 convolution's data gradient,
            // against the blocked output: 0.19 ms of reorder per MNIST step
            // at 2 threads), otherwise reordered to the output's layout.
            const dnn::md &given = diff_dst.get_desc();
            if (given.data_type() == dnn::f32 && given.dims() == fpd_.dst_desc().dims() &&
                strides_of(given, geo_.block, geo_.grad)) {
                diff_dst_ = dnn::reformat(pc, diff_dst, given);
            } else {
                geo_.grad = geo_.dst;
                diff_dst_ = dnn::reformat(pc, diff_dst, dnn::with_type(fpd_.dst_desc(), dnn::f32));
            }
            // The input gradient takes the layout the layer before reads it
            // in (PlanCtx::diff_src_hint) where the lanes allow, the input's
            // otherwise. The own backward never reads the input: when nothing
            // else reads it after the forward pass either (the convolution
            // before keeps no use of its output), its gradient is written
            // over it.
            // A bf16 input gets its f32 gradient in a buffer of its own.
            dnn::md layout = dnn::with_type(src_.get_desc(), dnn::f32);
            geo_.diff = geo_.src;
            const dnn::md &hint = pc.diff_src_hint;
            if (hint && hint.dims() == layout.dims() && hint.get_size() == layout.get_size() &&
                strides_of(hint, geo_.block, geo_.diff)) {
                layout = hint;
            } else {
                geo_.diff = geo_.src;
            }
            const bool over_src = src_reusable_ && layout.get_size() == src_.get_desc().get_size();
            diff_src_ = over_src ? pc.arena.view(layout, src_.get_data_handle())
                                 : pc.arena.make(layout);
            return;
        }
        bpd_ = dnnl::pooling_backward::primitive_desc(
            dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, src_.get_desc(),
                                         fpd_.dst_desc(), strides_, kernel_, pad_l_, pad_r_),
            pc.attr, pc.dev.eng, fpd_);
        diff_dst_ = dnn::reformat(pc, diff_dst, bpd_.diff_dst_desc());
        diff_src_ = pc.arena.make(bpd_.diff_src_desc());
        bwd_ = pc.record(dnnl::pooling_backward(bpd_),
                         {{DNNL_ARG_DIFF_DST, &diff_dst_.mem},
                          {DNNL_ARG_WORKSPACE, &workspace_},
                          {DNNL_ARG_DIFF_SRC, &diff_src_}},
                         &bpd_);
    }

    void forward(dnn::Device &dev, const RunState &) override {
        dnn::run_if(dev, src_bf16_.call);
        if (!own_) {
            dnn::run(dev, fwd_);
            return;
        }
        dnn::wait(dev); // the input is written by the stream
        if (bf16_) {
            pool_keep<uint16_t>();
        } else if (keep_) {
            pool_keep<float>();
        } else {
            // Inference: no ReLU here (it is fused into the layer before).
            const Geometry &g = geo_;
            if (g.block == 16) pool<float, 16, false, false>(g);
            else if (g.block == 8) pool<float, 8, false, false>(g);
            else pool<float, 1, false, false>(g);
        }
    }

    void backward(dnn::Device &dev, const RunState &) override {
        if (own_) {
            if (!diff_src_) return;
            dnn::run_if(dev, diff_dst_.call);
            dnn::wait(dev);
            route_gradients();
            return;
        }
        if (!bwd_) return;
        dnn::run_if(dev, diff_dst_.call);
        dnn::run(dev, bwd_);
    }

    bool output_reusable() const override { return true; }
    bool fused_relu() const override { return relu_; }

private:
    // Strides (in floats) of a 4-D activation in one of the layouts oneDNN
    // gives them here: plain NCHW, NHWC, or channels in blocks of 8 or 16
    // (nChw8c, nChw16c; the last block padded). NHWC with a channel count
    // that is a multiple of 16 or 8 is walked as blocks of those lanes.
    struct Strides {
        int64_t n = 0, cb = 0, h = 0, w = 0, lane = 0;
    };
    struct Geometry {
        int64_t batch = 0, channels = 0, blocks = 0, block = 1;
        int64_t ih = 0, iw = 0, oh = 0, ow = 0, kh = 0, kw = 0;
        Strides src, dst;
        Strides diff; // the input gradient's (the input's unless told otherwise)
        Strides grad; // the output gradient's (the output's unless it arrives otherwise)
        bool full_cover = true; // every input element lies in some window
    };

    static bool strides_of(const dnn::md &d, int64_t block, Strides &st) {
        const auto dims = d.dims();
        const int64_t c = dims[1], h = dims[2], w = dims[3];
        const int64_t cb = (c + block - 1) / block;
        const dnn::dt t = d.data_type();
        if (block == 1 && d == dnn::md(dims, t, dnn::tag::abcd)) {
            st = {c * h * w, h * w, w, 1, 0};
            return true;
        }
        if (block == 1 && d == dnn::md(dims, t, dnn::tag::acdb)) {
            st = {h * w * c, 1, w * c, c, 0};
            return true;
        }
        const dnn::tag blocked = block == 16 ? dnn::tag::aBcd16b : dnn::tag::aBcd8b;
        if (block > 1 && d == dnn::md(dims, t, blocked)) {
            st = {cb * h * w * block, h * w * block, w * block, block, 1};
            return true;
        }
        // NHWC with whole blocks of channels: the lanes run along the
        // contiguous channels (no padded lanes to write).
        if (block > 1 && c % block == 0 && d == dnn::md(dims, t, dnn::tag::acdb)) {
            st = {h * w * c, block, w * c, c, 1};
            return true;
        }
        return false;
    }

    bool geometry(const dnn::md &src, const dnn::md &dst, Geometry &g) const {
        for (const int64_t block : {int64_t(16), int64_t(8), int64_t(1)}) {
            if (!strides_of(src, block, g.src) || !strides_of(dst, block, g.dst)) continue;
            const auto s = src.dims(), o = dst.dims();
            g.batch = s[0];
            g.channels = s[1];
            g.block = block;
            g.blocks = (s[1] + block - 1) / block;
            g.ih = s[2];
            g.iw = s[3];
            g.oh = o[2];
            g.ow = o[3];
            g.kh = desc_.kernel_h;
            g.kw = desc_.kernel_w;
            g.full_cover = g.oh * g.kh == g.ih && g.ow * g.kw == g.iw;
            return true;
        }
        return false;
    }

    // The position (row-major in the window) of the first maximum of each
    // output value's window; kMasked where a fused ReLU passes no gradient.
    static constexpr uint8_t kMasked = 255;

    // One (sample, channel block) of the forward pass. L lanes per position:
    // channel blocks of L (lane stride 1), or L = 1 for plain layouts (the
    // channel is then part of the position). With Relu the output is
    // max(window maximum, 0) and the position is kMasked where that is not
    // positive: ReLU's backward (PyTorch's: x > 0) passes nothing there.
    // Everything arrives by value, so that the byte stores of `where` cannot
    // alias it and the lanes vectorise. K2: 2 x 2 windows, unrolled. Without
    // Keep (inference) no position is stored.
    template <class T, int L, bool Relu, bool Keep, bool K2>
    DANN_CLONES static void pool_block(const T *__restrict src, T *__restrict dst,
                           uint8_t *__restrict where, Strides si, Strides so, int64_t oh,
                           int64_t ow, int64_t kh, int64_t kw) {
        for (int64_t oy = 0; oy < oh; ++oy)
            for (int64_t ox = 0; ox < ow; ++ox) {
                const T *__restrict in = src + oy * kh * si.h + ox * kw * si.w;
                T *__restrict out = dst + oy * so.h + ox * so.w;
                uint8_t *__restrict pos = Keep ? where + oy * so.h + ox * so.w : nullptr;
#pragma omp simd
                for (int l = 0; l < L; ++l) {
                    float m;
                    int at;
                    if constexpr (K2) {
                        // The maximum first, then the first position holding
                        // it: the same as a strictly-greater scan.
                        const float v0 = widen(in[l]), v1 = widen(in[si.w + l]),
                                    v2 = widen(in[si.h + l]), v3 = widen(in[si.h + si.w + l]);
                        const float a = v1 > v0 ? v1 : v0, c = v3 > v2 ? v3 : v2;
                        m = c > a ? c : a;
                        at = v0 == m ? 0 : v1 == m ? 1 : v2 == m ? 2 : 3;
                    } else {
                        m = widen(in[l]);
                        at = 0;
                        int k = 0;
                        for (int64_t y = 0; y < kh; ++y)
                            for (int64_t x = 0; x < kw; ++x, ++k) {
                                const float v = widen(in[y * si.h + x * si.w + l]);
                                const bool take = v > m; // ties keep the first
                                m = take ? v : m;
                                at = take ? k : at;
                            }
                    }
                    const bool pass = !Relu || m > 0.0f;
                    narrow(pass ? m : 0.0f, &out[l]);
                    if constexpr (Keep) pos[l] = static_cast<uint8_t>(pass ? at : kMasked);
                }
            }
    }

    // Training: the positions are kept, and a ReLU may be fused in.
    template <class T>
    void pool_keep() {
        const Geometry &g = geo_;
        if (g.block == 16) relu_ ? pool<T, 16, true, true>(g) : pool<T, 16, false, true>(g);
        else if (g.block == 8) relu_ ? pool<T, 8, true, true>(g) : pool<T, 8, false, true>(g);
        else relu_ ? pool<T, 1, true, true>(g) : pool<T, 1, false, true>(g);
    }

    // Values as f32, and back: bf16 is the upper half of an f32, so a
    // value read from bf16 (or 0) is stored back exactly.
    static float widen(float v) { return v; }
    static float widen(uint16_t v) {
        const uint32_t bits = static_cast<uint32_t>(v) << 16;
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return f;
    }
    static void narrow(float v, float *to) { *to = v; }
    static void narrow(float v, uint16_t *to) {
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        *to = static_cast<uint16_t>(bits >> 16);
    }

    // Whether a pass over `floats` input values is worth a team of threads
    // (the same bound as a serial oneDNN call, dnn::Call::serial).
    static bool parallel_worth(int64_t floats) {
        return static_cast<size_t>(floats) * sizeof(float) > dnn::kSerialBytes;
    }

    template <class T, int L, bool Relu, bool Keep>
    void pool(const Geometry &g) {
        const T *src = static_cast<const T *>(src_.get_data_handle());
        T *dst = static_cast<T *>(dst_.get_data_handle());
        uint8_t *where = Keep ? static_cast<uint8_t *>(where_.data()) : nullptr;
        const int64_t blocks = g.blocks;
        const bool k2 = g.kh == 2 && g.kw == 2;
        const Geometry geo = g;
        const bool team = parallel_worth(geo.batch * blocks * L * geo.ih * geo.iw);
#pragma omp parallel for schedule(static) if (team)
        for (int64_t nb = 0; nb < geo.batch * blocks; ++nb) {
            const int64_t n = nb / blocks, b = nb % blocks;
            const int64_t i0 = n * geo.src.n + b * geo.src.cb, o0 = n * geo.dst.n + b * geo.dst.cb;
            uint8_t *pos = Keep ? where + o0 : nullptr;
            if (k2)
                pool_block<T, L, Relu, Keep, true>(src + i0, dst + o0, pos, geo.src, geo.dst,
                                                   geo.oh, geo.ow, 2, 2);
            else
                pool_block<T, L, Relu, Keep, false>(src + i0, dst + o0, pos, geo.src, geo.dst,
                                                    geo.oh, geo.ow, geo.kh, geo.kw);
        }
    }

    // One (sample, channel block) of the backward pass: each output
    // gradient to the window position kept by the forward pass, 0 to every
    // other position. `live` lanes hold channels (the last block may be
    // padded).
    template <int L, bool K2>
    DANN_CLONES static void route_block(const float *__restrict dd, const uint8_t *__restrict where,
                            float *__restrict ds, Strides si, Strides so, Strides sg, int64_t oh,
                            int64_t ow, int64_t kh, int64_t kw, int live) {
        for (int64_t oy = 0; oy < oh; ++oy)
            for (int64_t ox = 0; ox < ow; ++ox) {
                float *__restrict in = ds + oy * kh * si.h + ox * kw * si.w;
                const float *__restrict grad_at = dd + oy * sg.h + ox * sg.w;
                const uint8_t *__restrict pos = where + oy * so.h + ox * so.w;
#pragma omp simd
                for (int l = 0; l < L; ++l) {
                    // Loaded unconditionally (padded lanes exist in memory),
                    // selected before any store: this form vectorises.
                    const float loaded = grad_at[l];
                    const float grad = l < live ? loaded : 0.0f;
                    const uint32_t at = pos[l];
                    if constexpr (K2) {
                        const float a0 = at == 0u ? grad : 0.0f, a1 = at == 1u ? grad : 0.0f;
                        const float a2 = at == 2u ? grad : 0.0f, a3 = at == 3u ? grad : 0.0f;
                        in[l] = a0;
                        in[si.w + l] = a1;
                        in[si.h + l] = a2;
                        in[si.h + si.w + l] = a3;
                    } else {
                        uint32_t k = 0;
                        for (int64_t y = 0; y < kh; ++y)
                            for (int64_t x = 0; x < kw; ++x, ++k)
                                in[y * si.h + x * si.w + l] = at == k ? grad : 0.0f;
                    }
                }
            }
    }

    template <int L>
    void route(float *ds) const {
        const Geometry geo = geo_;
        const uint8_t *where = static_cast<const uint8_t *>(where_.data());
        const float *dd = dnn::data_f32(diff_dst_.mem);
        const int64_t blocks = geo.blocks;
        const bool k2 = geo.kh == 2 && geo.kw == 2;
        const bool team = parallel_worth(geo.batch * blocks * L * geo.ih * geo.iw);
#pragma omp parallel for schedule(static) if (team)
        for (int64_t nb = 0; nb < geo.batch * blocks; ++nb) {
            const int64_t n = nb / blocks, b = nb % blocks;
            const int64_t i0 = n * geo.diff.n + b * geo.diff.cb, o0 = n * geo.dst.n + b * geo.dst.cb;
            const int64_t g0 = n * geo.grad.n + b * geo.grad.cb;
            const int live = L == 1 ? 1 : static_cast<int>(std::min<int64_t>(L, geo.channels - b * L));
            if (k2)
                route_block<L, true>(dd + g0, where + o0, ds + i0, geo.diff, geo.dst, geo.grad, geo.oh,
                                     geo.ow, 2, 2, live);
            else
                route_block<L, false>(dd + g0, where + o0, ds + i0, geo.diff, geo.dst, geo.grad,
                                      geo.oh, geo.ow, geo.kh, geo.kw, live);
        }
    }

    void route_gradients() const {
        float *ds = dnn::data_f32(diff_src_);
        if (!geo_.full_cover) std::memset(ds, 0, diff_src_.get_desc().get_size());
        if (geo_.block == 16) route<16>(ds);
        else if (geo_.block == 8) route<8>(ds);
        else route<1>(ds);
    }

    dann_layer_desc desc_;
    bool own_ = false;  // dann's own loops (non-overlapping windows; training, f32 inference)
    bool keep_ = false; // own_ in training: the positions of the maxima are kept
    bool bf16_ = false; // own_ on a bf16 source (and output)
    dnn::Reformat src_bf16_; // a bf16 source the own loops cannot walk, in f32
    bool relu_ = false; // a ReLU fused in: applied to the output, masks the backward
    Buffer where_;      // own_: window position of each output's maximum
    bool src_reusable_ = false; // PlanCtx::src_reusable when planned
    Geometry geo_;
    dnn::dims strides_, kernel_, pad_l_, pad_r_;
    dnnl::memory src_, workspace_;
    dnnl::pooling_forward::primitive_desc fpd_;
    dnnl::pooling_backward::primitive_desc bpd_;
    dnn::Reformat diff_dst_;
    dnn::Call *fwd_ = nullptr, *bwd_ = nullptr;
};

} // namespace

std::unique_ptr<Layer> make_maxpool2d(const dann_layer_desc &desc) {
    return std::make_unique<MaxPool2d>(desc);
}

} // namespace dann
