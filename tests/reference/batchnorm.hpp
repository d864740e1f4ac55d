// Scalar reference of batch normalisation over channels (4-D input) or
// features (2-D input), PyTorch's nn.BatchNorm2d / nn.BatchNorm1d:
// - training normalises with the batch statistics (biased variance) and
//   backpropagates through them;
// - the running statistics move as running = (1 - momentum) * running +
//   momentum * batch, with the unbiased batch variance;
// - inference normalises with given running statistics.
// A "split" batch normalises samples [0, split) and [split, N) each with its
// own statistics (DANN's per-domain batch norm); the scale and shift are
// shared, so their gradients sum over both parts.
// Test oracle only.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace ref {

struct BatchNormShape {
    int n, c, spatial; // spatial = H*W, or 1 for a 2-D input
};

inline BatchNormShape batchnorm_shape(const std::vector<int> &src_dims) {
    BatchNormShape s{src_dims[0], src_dims[1], 1};
    for (std::size_t d = 2; d < src_dims.size(); ++d) s.spatial *= src_dims[d];
    return s;
}

// Statistics of one part of the batch, samples [begin, end).
struct BatchNormPart {
    int begin, end;
    std::vector<double> mean, var; // per channel; var biased
};

namespace detail {
inline std::size_t bn_index(const BatchNormShape &s, int n, int c, int i) {
    return (static_cast<std::size_t>(n) * s.c + c) * s.spatial + i;
}

inline std::vector<BatchNormPart> batchnorm_parts(const BatchNormShape &s, const std::vector<double> &src,
                                                  int split) {
    std::vector<BatchNormPart> parts;
    if (split > 0) {
        parts.push_back({0, split, {}, {}});
        parts.push_back({split, s.n, {}, {}});
    } else {
        parts.push_back({0, s.n, {}, {}});
    }
    for (BatchNormPart &p : parts) {
        p.mean.assign(static_cast<std::size_t>(s.c), 0.0);
        p.var.assign(static_cast<std::size_t>(s.c), 0.0);
        const double count = static_cast<double>(p.end - p.begin) * s.spatial;
        for (int c = 0; c < s.c; ++c) {
            double sum = 0.0;
            for (int n = p.begin; n < p.end; ++n)
                for (int i = 0; i < s.spatial; ++i) sum += src[bn_index(s, n, c, i)];
            const double mean = sum / count;
            double sq = 0.0;
            for (int n = p.begin; n < p.end; ++n)
                for (int i = 0; i < s.spatial; ++i) {
                    const double d = src[bn_index(s, n, c, i)] - mean;
                    sq += d * d;
                }
            p.mean[static_cast<std::size_t>(c)] = mean;
            p.var[static_cast<std::size_t>(c)] = sq / count;
        }
    }
    return parts;
}
} // namespace detail

inline std::vector<BatchNormPart> batchnorm_statistics(const BatchNormShape &s, const std::vector<double> &src,
                                                       int split = 0) {
    return detail::batchnorm_parts(s, src, split);
}

inline std::vector<double> batchnorm_forward_training(const BatchNormShape &s, const std::vector<double> &src,
                                                      const std::vector<double> &gamma,
                                                      const std::vector<double> &beta, double eps,
                                                      int split = 0) {
    std::vector<double> dst(src.size());
    for (const BatchNormPart &p : detail::batchnorm_parts(s, src, split))
        for (int c = 0; c < s.c; ++c) {
            const std::size_t cc = static_cast<std::size_t>(c);
            const double inv_std = 1.0 / std::sqrt(p.var[cc] + eps);
            for (int n = p.begin; n < p.end; ++n)
                for (int i = 0; i < s.spatial; ++i) {
                    const std::size_t k = detail::bn_index(s, n, c, i);
                    dst[k] = gamma[cc] * (src[k] - p.mean[cc]) * inv_std + beta[cc];
                }
        }
    return dst;
}

inline std::vector<double> batchnorm_forward_inference(const BatchNormShape &s, const std::vector<double> &src,
                                                       const std::vector<double> &gamma,
                                                       const std::vector<double> &beta,
                                                       const std::vector<double> &running_mean,
                                                       const std::vector<double> &running_var, double eps) {
    std::vector<double> dst(src.size());
    for (int n = 0; n < s.n; ++n)
        for (int c = 0; c < s.c; ++c) {
            const std::size_t cc = static_cast<std::size_t>(c);
            const double inv_std = 1.0 / std::sqrt(running_var[cc] + eps);
            for (int i = 0; i < s.spatial; ++i) {
                const std::size_t k = detail::bn_index(s, n, c, i);
                dst[k] = gamma[cc] * (src[k] - running_mean[cc]) * inv_std + beta[cc];
            }
        }
    return dst;
}

// Training-mode backward through the batch statistics:
// diff_src = gamma / sqrt(var + eps) * (dy - mean(dy) - x_hat * mean(dy * x_hat)),
// means taken over each part's samples and spatial positions.
inline void batchnorm_backward_training(const BatchNormShape &s, const std::vector<double> &src,
                                        const std::vector<double> &gamma, const std::vector<double> &diff_dst,
                                        double eps, int split, std::vector<double> &diff_src,
                                        std::vector<double> &diff_gamma, std::vector<double> &diff_beta) {
    diff_src.assign(src.size(), 0.0);
    diff_gamma.assign(static_cast<std::size_t>(s.c), 0.0);
    diff_beta.assign(static_cast<std::size_t>(s.c), 0.0);
    for (const BatchNormPart &p : detail::batchnorm_parts(s, src, split))
        for (int c = 0; c < s.c; ++c) {
            const std::size_t cc = static_cast<std::size_t>(c);
            const double inv_std = 1.0 / std::sqrt(p.var[cc] + eps);
            const double count = static_cast<double>(p.end - p.begin) * s.spatial;
            double sum_dy = 0.0, sum_dy_xhat = 0.0;
            for (int n = p.begin; n < p.end; ++n)
                for (int i = 0; i < s.spatial; ++i) {
                    const std::size_t k = detail::bn_index(s, n, c, i);
                    const double x_hat = (src[k] - p.mean[cc]) * inv_std;
                    sum_dy += diff_dst[k];
                    sum_dy_xhat += diff_dst[k] * x_hat;
                }
            diff_beta[cc] += sum_dy;
            diff_gamma[cc] += sum_dy_xhat;
            for (int n = p.begin; n < p.end; ++n)
                for (int i = 0; i < s.spatial; ++i) {
                    const std::size_t k = detail::bn_index(s, n, c, i);
                    const double x_hat = (src[k] - p.mean[cc]) * inv_std;
                    diff_src[k] = gamma[cc] * inv_std *
                                  (diff_dst[k] - sum_dy / count - x_hat * sum_dy_xhat / count);
                }
        }
}

// One running-statistics update from running mean 0 / variance 1 (a fresh
// layer), for one part: PyTorch uses the unbiased variance here.
inline void batchnorm_running_update(const BatchNormShape &s, const BatchNormPart &p, double momentum,
                                     std::vector<double> &running_mean, std::vector<double> &running_var) {
    const double count = static_cast<double>(p.end - p.begin) * s.spatial;
    running_mean.assign(static_cast<std::size_t>(s.c), 0.0);
    running_var.assign(static_cast<std::size_t>(s.c), 1.0);
    for (std::size_t c = 0; c < static_cast<std::size_t>(s.c); ++c) {
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * p.mean[c];
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * p.var[c] * count / (count - 1.0);
    }
}

} // namespace ref
