// The backward pass of a bf16 convolution with unit strides, as two forward
// convolutions. oneDNN 2.6's AMX forward kernels (brgemm) run these shapes
// much faster than its backward kernels: the whole backward pass of the
// MNIST network's second convolution at batch 128, 1 thread, took 3.3 ms
// this way against 9.3 ms in f32, whose weight-gradient primitive alone took
// 5.2 ms (`dann_bench_layers --benchmark_filter='conv2.*train_bwd.*threads:1'`).
//
// With X the source (N, C, H, W), dY the output gradient (N, OC, OH, OW), W
// the weights (OC, C, KH, KW) and padding (PH, PW):
//   weight gradient  dW^T (C, OC, KH, KW) = conv(X^T, dY^T), padding (PH, PW):
//                    the channels of X act as the batch, the samples as the
//                    reduced channels, and dY^T (OC, N, OH, OW) is the kernel;
//   data gradient    dX (N, C, H, W) = conv(dY, W'), padding (KH-1-PH, KW-1-PW),
//                    W' (C, OC, KH, KW) = W transposed and turned by 180
//                    degrees.
// X^T and dY^T are permuted views of X and dY copied by oneDNN reorders into
// the layouts the kernels want. The operands are bf16 (X as the forward pass
// used it, dY rounded once), products accumulate in f32, and dW^T lands in
// the model's plain gradient array through a reorder. The bias gradient sums
// the f32 output gradient (dann's own loop).
#pragma once

#include <cstdint>
#include <vector>

#include "core/dnn.hpp"
#include "layers/gemm_affine.hpp"

namespace dann {

class ConvBf16Backward {
public:
    // Whether this path serves a convolution of this geometry: unit strides,
    // padding under the kernel size, at least 16 input channels (below that
    // the weight gradient's extra reorders outweigh the gain), and at most
    // kMaxOutputPositions output positions: dY^T is the weight gradient's
    // kernel, and oneDNN 2.6's AMX kernel slows down on large ones. With a
    // 16x16 output oneDNN's own backward primitives are faster: the whole
    // backward pass at batch 128, 1 thread, took 87 ms instead of 179 ms for
    // the GTSRB network's second convolution (3x3, 96 -> 144) and 54 ms
    // instead of 71 ms for the SVHN network's second (5x5, 64 -> 64); 8x8
    // outputs (the MNIST and SVHN networks' last convolutions) stay here.
    static constexpr int64_t kMaxOutputPositions = 64;
    static bool applies(const GemmGeometry &g);

    // src: the forward primitive's bf16 source, unchanged until backward();
    // diff_dst: the f32 output gradient; weight / grad_weight / grad_bias:
    // the model's and the trainer's plain arrays.
    void plan(dnn::PlanCtx &pc, const GemmGeometry &g, const dnnl::memory &src,
              const dnnl::memory &diff_dst, const float *weight, float *grad_weight,
              float *grad_bias, bool need_diff_src);
    // Turns the current weights into W' (bf16) for the data gradient.
    void prepare_weights(dnn::Device &dev);
    void run(dnn::Device &dev);
    const dnnl::memory &diff_src() const { return diff_src_; }

private:
    void bias_gradient();

    GemmGeometry g_;
    const float *weight_ = nullptr;
    float *grad_bias_ = nullptr;
    // How bias_gradient() walks the output gradient: per sample
    // (sample_stride floats apart), `blocks` blocks of `lanes` channels,
    // block_stride floats apart, each holding its lanes contiguously at
    // every output position (position_stride floats apart).
    struct BiasWalk {
        int64_t lanes = 1, blocks = 0, block_stride = 0, position_stride = 1, sample_stride = 0;
    };
    BiasWalk bias_walk_;
    dnnl::memory diff_dst_f32_;
    float *flipped_ = nullptr;        // W' in plain f32, refreshed by prepare_weights()
    std::vector<double> bias_acc_;    // per-channel sums (sized by plan())
    std::vector<float> bias_part_;    // per-sample partial sums
    dnn::Reformat x_t_, dy_, dy_t_, flipped_bf16_, diff_dst_plain_;
    dnnl::memory dw_t_, grad_t_, diff_src_;
    dnn::Call *weights_ = nullptr, *data_ = nullptr, *grad_reorder_ = nullptr;
};

} // namespace dann
