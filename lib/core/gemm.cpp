#include "core/gemm.hpp"

#include <atomic>
#include <climits>
#include <cstdlib>

#include "core/dnn.hpp"
#include "core/error.hpp"

#if DANN_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace dann::gemm {
namespace {

// -1: no override; otherwise a Mode.
std::atomic<int> g_override{-1};
std::atomic<uint64_t> g_calls{0};

#if DANN_HAVE_OPENBLAS
int checked_int(int64_t v) {
    if (v < 0 || v > INT_MAX)
        fail(DANN_ERR_UNSUPPORTED, "matrix dimension " + std::to_string(v) +
                                       " is outside the BLAS's 32-bit range");
    return static_cast<int>(v);
}
#endif

} // namespace

bool available() noexcept { return DANN_HAVE_OPENBLAS != 0; }

Mode mode() {
    const int o = g_override.load(std::memory_order_relaxed);
    if (o >= 0) return static_cast<Mode>(o);
    const char *env = std::getenv("DANN_GEMM");
    if (!env || !*env) return Mode::automatic;
    const std::string v(env);
    if (v == "auto") return Mode::automatic;
    if (v == "blas") return Mode::blas;
    if (v == "onednn") return Mode::onednn;
    fail(DANN_ERR_INVALID_ARGUMENT,
         "DANN_GEMM=" + v + ": expected auto, blas or onednn");
}

void set_override(Mode m) noexcept {
    g_override.store(static_cast<int>(m), std::memory_order_relaxed);
}

void clear_override() noexcept { g_override.store(-1, std::memory_order_relaxed); }

bool is_reference(const std::string &impl) {
    return impl.rfind("ref", 0) == 0 || impl.find(":ref") != std::string::npos;
}

bool use_blas(const dnnl::primitive_desc_base &pd) {
    const Mode m = mode();
    if (!available() || m == Mode::onednn) return false;
    return m == Mode::blas || is_reference(dnn::impl_name(pd));
}

uint64_t calls() noexcept { return g_calls.load(std::memory_order_relaxed); }

std::string blas_name() {
#if DANN_HAVE_OPENBLAS
    return openblas_get_config();
#else
    return "none";
#endif
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
           int64_t ldc) {
#if DANN_HAVE_OPENBLAS
    const int im = checked_int(m), inn = checked_int(n), ik = checked_int(k);
    const int ilda = checked_int(lda), ildb = checked_int(ldb), ildc = checked_int(ldc);
    // OpenBLAS's OpenMP build takes its thread count from omp_get_max_threads()
    // on every call and runs single-threaded inside a parallel region, so the
    // model's thread setting (ThreadScope) applies to it as to oneDNN.
    g_calls.fetch_add(1, std::memory_order_relaxed);
    dnn::InBackend scope;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, im, inn, ik, alpha, a, ilda, b, ildb, beta, c,
                ildc);
#else
    (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda;
    (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
    fail(DANN_ERR_INTERNAL, "this build of dann has no BLAS (DANN_WITH_OPENBLAS=OFF)");
#endif
}

} // namespace dann::gemm
