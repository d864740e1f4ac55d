// Convolution and fully connected layers as matrix products through the BLAS
// (core/gemm.hpp), on plain layouts: source NCHW (or NC), weights OIHW (or
// OI, the model's own layout), destination NCHW (or NC). Affine takes this
// path where oneDNN would run a reference implementation.
//
// Convolution, per sample, with P = OH*OW output positions and K = C*KH*KW
// taps, the column matrix col (K x P) holding the source under each tap
// (im2col; zero where the window reaches into the padding):
//   forward           dst_n (OC x P)      = W (OC x K) * col + bias
//   backward data     dcol (K x P)        = W^T * diff_dst_n, then summed back
//                                           onto diff_src_n (col2im)
//   backward weights  diff_W (OC x K)    += diff_dst_n * col^T
// A fully connected layer is one product over the batch (source N x IN,
// weights OUT x IN). The bias gradient sums diff_dst over the batch and the
// output positions.
//
// Scratch (one column matrix per thread, per-thread weight-gradient partial
// sums) is allocated by plan(); running allocates nothing. With T > 1 OpenMP
// threads the samples are shared among the threads, each with a
// single-threaded product; with one thread, or a batch of one, the products
// themselves run on the BLAS's threads.
#pragma once

#include <cstdint>

#include "core/dnn.hpp"

namespace dann {

struct GemmGeometry {
    bool conv = false;
    int64_t n = 0;                    // samples
    int64_t c = 0, h = 1, w = 1;      // source per sample (dense: c = C*H*W)
    int64_t oc = 0, oh = 1, ow = 1;   // destination per sample
    int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};

class GemmAffine {
public:
    // Checks the geometry and allocates the forward pass's scratch from
    // `arena`; plan_backward() adds what the backward passes need.
    void plan(dnn::Arena &arena, const GemmGeometry &g);
    void plan_backward(dnn::Arena &arena);

    void forward(const float *src, const float *weight, const float *bias, float *dst) const;
    void backward_data(const float *diff_dst, const float *weight, float *diff_src) const;
    void backward_weights(const float *src, const float *diff_dst, float *diff_weight,
                          float *diff_bias) const;

private:
    int threads() const;
    // Calls sample(i, slot) for every sample i of the batch, on threads()
    // threads; slot is the calling thread's scratch index.
    template <class F>
    void for_each_sample(const F &sample) const;
    float *col(int slot) const { return col_ + static_cast<size_t>(slot) * col_floats_; }
    void im2col(const float *src_n, float *col) const;
    void col2im(const float *col, float *diff_src_n) const;
    void bias_gradient(const float *diff_dst, float *diff_bias) const;

    GemmGeometry g_;
    int64_t taps_ = 0, positions_ = 1; // K and P above
    bool direct_ = false;   // 1x1 kernel, stride 1, no padding: the source is its own col
    int slots_ = 1;         // column matrices, one per thread planned for
    size_t col_floats_ = 0; // per slot
    float *col_ = nullptr;
    float *partial_ = nullptr; // (slots_ - 1) weight gradients, OC x K each
};

} // namespace dann
