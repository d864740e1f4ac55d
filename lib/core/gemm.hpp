// Single-precision matrix products through an optimised BLAS (OpenBLAS), for
// the convolution and fully connected layers where oneDNN has only its
// reference kernels (NEON-only ARM cores with oneDNN 2.6: `gemm:ref`,
// `ref:any`). Which path a layer takes is decided once, when its plan is
// built (layers/gemm_affine.hpp).
#pragma once

#include <cstdint>
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

namespace dann::gemm {

enum class Mode {
    automatic, // BLAS where oneDNN would run a reference implementation
    blas,      // BLAS for every convolution and fully connected layer
    onednn     // oneDNN everywhere
};

// Whether this build has a BLAS (CMake option DANN_WITH_OPENBLAS).
bool available() noexcept;

// The mode for plans built from now on: the override if one is set, else the
// environment variable DANN_GEMM (auto, blas or onednn; unset or empty is
// auto). Throws dann::Error(DANN_ERR_INVALID_ARGUMENT) for any other value.
Mode mode();
// Process-wide override of DANN_GEMM (the test suite's switch). Plans that
// exist keep the path they were built with.
void set_override(Mode m) noexcept;
void clear_override() noexcept;

// Whether an implementation name (primitive_desc::impl_info_str()) is one of
// oneDNN's reference implementations: "ref:any", "ref_...", "gemm:ref".
bool is_reference(const std::string &impl);

// The decision for one layer: BLAS when the build has one and the mode asks
// for it, or the mode is automatic and `pd` is a reference implementation.
bool use_blas(const dnnl::primitive_desc_base &pd);

// Which library the BLAS path calls ("OpenBLAS 0.3.21 ..."), or "none".
std::string blas_name();

// Products run through sgemm() so far, by every thread (for the tests: which
// path a plan took).
uint64_t calls() noexcept;

// C = alpha * op(A) * op(B) + beta * C on row-major matrices: op(A) is m x k,
// op(B) k x n, C m x n. Inside a parallel region it runs on the calling
// thread; outside, on omp_get_max_threads() threads. Counted as a backend
// call (dnn::backend_depth()). Throws dann::Error(DANN_ERR_INTERNAL) in a
// build without a BLAS.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
           int64_t ldc);

} // namespace dann::gemm
