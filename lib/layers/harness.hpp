// Runs single layers and losses through the real oneDNN-backed implementation
// with plain (NCHW / NC) inputs and outputs, for the tests' scalar references
// and finite-difference checks. Not part of the public API.
#pragma once

#include <cstdint>
#include <vector>

#include "dann.h"

namespace dann::testing {

struct LayerOptions {
    bool training = true;      // forward_training + backward; false: inference only
    bool blocked_input = false; // present src / diff_dst in a blocked layout (nChw16c)
                                // when 4-D, to exercise the layout conversions
    bool nhwc_input = false;    // present them in NHWC instead, when 4-D
    bool nhwc_diff_dst = false; // training, 4-D: present diff_dst alone in NHWC
    // Training: offer the layer the ReLU that would follow it (a max pooling
    // then applies it and masks its backward); LayerRun::fused_relu says
    // whether it took it, and dst / diff_src are then those of the pair.
    bool fuse_relu = false;
    // Training: the plan's bf16 products (PlanCtx::bf16), on CPUs that run
    // them (dann_precision_supported(DANN_PRECISION_BF16)).
    bool bf16 = false;
    // Training, 4-D: ask for diff_src in nChw16c (PlanCtx::diff_src_hint),
    // as a convolution before the layer would.
    bool blocked_diff_src_hint = false;
    // 4-D: present src in bf16 (its values rounded to nearest even), in the
    // layout the options above choose, as a bf16 convolution before would.
    bool bf16_input = false;
    // Training with bf16: offer the layer a bf16 output (PlanCtx::bf16_dst);
    // LayerRun::dst is then that output widened to f32.
    bool bf16_dst = false;
    uint64_t seed = 1;          // dropout mask seed
    int domain_split = 0;       // BATCHNORM: >0 normalises samples [0, split) and
                                // [split, N) each with their own statistics
    // BATCHNORM inference: running statistics to use (per channel); empty = 0 / 1.
    std::vector<float> running_mean, running_var;
};

struct LayerRun {
    std::vector<int> dst_dims;                 // N, C[, H, W]
    std::vector<float> dst;                    // plain NCHW / NC
    std::vector<float> diff_src;               // plain, same dims as src (training only)
    std::vector<std::vector<float>> diff_params; // PyTorch layout, same order as params
    // BATCHNORM training: running statistics after one update from zero-mean /
    // unit-variance start (per domain when split: source then target).
    std::vector<float> running_mean, running_var;
    std::vector<float> running_mean_target, running_var_target;
    std::vector<float> dropout_mask;           // DROPOUT: the 0 / 1/(1-p) factors, plain
    bool fused_relu = false;                   // LayerOptions::fuse_relu was taken
    bool dst_bf16 = false;                     // the layer wrote its output in bf16
    bool diff_src_blocked = false;             // diff_src was laid out nChw16c
};

// src_dims: {N, C, H, W} for an image input or {N, F} for a flat one.
// params in PyTorch layout: CONV2D {weight OIHW, bias O}; DENSE {weight (out,in), bias};
// BATCHNORM {weight C, bias C}; others none.
// diff_dst: plain, same dims as the layer's output (ignored for inference).
LayerRun run_layer(const dann_layer_desc &layer, const std::vector<int> &src_dims,
                   const std::vector<float> &src, const std::vector<std::vector<float>> &params,
                   const std::vector<float> &diff_dst, const LayerOptions &options = {});

// Gradient reversal: forward output and diff_src for a given lambda.
struct GrlRun {
    std::vector<float> dst, diff_src;
};
GrlRun run_grl(const std::vector<int> &dims, const std::vector<float> &src,
               const std::vector<float> &diff_dst, float lambda);

// Loss layers on plain (N, K) logits. grad = d(loss)/d(logits).
struct LossRun {
    float loss = 0.0f;
    std::vector<float> grad;
};
LossRun run_softmax_cross_entropy(const std::vector<float> &logits, int n, int k,
                                  const std::vector<int32_t> &labels);
// logits (N), targets (N) in {0, 1}; mean logistic loss.
LossRun run_logistic_loss(const std::vector<float> &logits, const std::vector<float> &targets);

} // namespace dann::testing
