// Steady state allocates nothing in dann's own code.
//
// This program replaces the C allocator (malloc and its relatives) and C++'s
// operator new/delete for the whole process, forwarding to glibc's own
// entry points. While a measured call runs, every allocation made on the
// calling thread is counted and attributed by where it comes from:
//   - oneDNN: made while dann::dnn::backend_depth() > 0, i.e. inside a
//     primitive execution or a stream wait (oneDNN's C API builds a small
//     argument map per execution);
//   - OpenMP: made by libgomp itself (told by the caller's address), e.g. the
//     team descriptor of a one-thread parallel region, which libgomp frees
//     and allocates again for every region;
//   - dann: everything else. This must be zero after warm-up.
// Only the calling thread is counted: with OMP_NUM_THREADS > 1, allocations
// on OpenMP worker threads (inside oneDNN or in dann's parallel loops) are not
// seen.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/dnn.hpp"
#include "dann.h"
#include "../api_handles.hpp"

// glibc's allocator under its internal names: what the replacements below
// forward to.
extern "C" {
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
}

namespace {

// Plain thread_local integers: no constructor, so touching them never allocates.
thread_local bool t_counting = false;
thread_local uint64_t t_dann = 0, t_backend = 0, t_openmp = 0;

// libgomp's code, found once before counting starts.
uintptr_t g_gomp_begin = 0, g_gomp_end = 0;

int find_gomp(struct dl_phdr_info *info, size_t, void *) {
    if (!info->dlpi_name || !std::strstr(info->dlpi_name, "libgomp")) return 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr) &ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
        g_gomp_begin = info->dlpi_addr + ph.p_vaddr;
        g_gomp_end = g_gomp_begin + ph.p_memsz;
        return 1;
    }
    return 0;
}

inline void note(const void *caller) {
    if (!t_counting) return;
    const auto pc = reinterpret_cast<uintptr_t>(caller);
    if (dann::dnn::backend_depth() > 0)
        ++t_backend;
    else if (pc >= g_gomp_begin && pc < g_gomp_end)
        ++t_openmp;
    else
        ++t_dann;
}

bool power_of_two(size_t v) { return v && !(v & (v - 1)); }

} // namespace

#define DANN_CALLER __builtin_return_address(0)

extern "C" {

void *malloc(size_t size) noexcept {
    note(DANN_CALLER);
    return __libc_malloc(size);
}

void free(void *ptr) noexcept { __libc_free(ptr); }

void *calloc(size_t count, size_t size) noexcept {
    note(DANN_CALLER);
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size) noexcept {
    note(DANN_CALLER);
    return __libc_realloc(ptr, size);
}

void *memalign(size_t alignment, size_t size) noexcept {
    note(DANN_CALLER);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) noexcept {
    note(DANN_CALLER);
    if (!power_of_two(alignment)) {
        errno = EINVAL;
        return nullptr;
    }
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) noexcept {
    note(DANN_CALLER);
    if (!power_of_two(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size) noexcept {
    note(DANN_CALLER);
    return __libc_memalign(static_cast<size_t>(sysconf(_SC_PAGESIZE)), size);
}

void *pvalloc(size_t size) noexcept {
    note(DANN_CALLER);
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return __libc_memalign(page, (size + page - 1) / page * page);
}

} // extern "C"

// operator new/delete go through the counting malloc/free above; their caller
// (dann, oneDNN or the C++ library) is what backend_depth() tells apart.
namespace {

void *new_or_throw(size_t size) {
    void *p = std::malloc(size ? size : 1);
    if (!p) throw std::bad_alloc();
    return p;
}

void *new_aligned_or_throw(size_t size, std::align_val_t alignment) {
    size_t a = static_cast<size_t>(alignment);
    if (a < sizeof(void *)) a = sizeof(void *);
    void *p = nullptr;
    if (posix_memalign(&p, a, size ? size : 1) != 0) throw std::bad_alloc();
    return p;
}

} // namespace

void *operator new(size_t size) { return new_or_throw(size); }
void *operator new[](size_t size) { return new_or_throw(size); }
void *operator new(size_t size, const std::nothrow_t &) noexcept { return std::malloc(size ? size : 1); }
void *operator new[](size_t size, const std::nothrow_t &) noexcept { return std::malloc(size ? size : 1); }
void *operator new(size_t size, std::align_val_t a) { return new_aligned_or_throw(size, a); }
void *operator new[](size_t size, std::align_val_t a) { return new_aligned_or_throw(size, a); }
void *operator new(size_t size, std::align_val_t a, const std::nothrow_t &) noexcept {
    try {
        return new_aligned_or_throw(size, a);
    } catch (...) {
        return nullptr;
    }
}
void *operator new[](size_t size, std::align_val_t a, const std::nothrow_t &) noexcept {
    try {
        return new_aligned_or_throw(size, a);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t) noexcept { std::free(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete(void *p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void *p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void *p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { std::free(p); }

namespace {

constexpr int kWarmup = 3;
constexpr int kCalls = 10;

struct Tally {
    uint64_t dann_max = 0, dann_total = 0;
    uint64_t backend_min = UINT64_MAX, backend_max = 0, backend_total = 0;
    uint64_t openmp_min = UINT64_MAX, openmp_max = 0;
};

// Runs `call` kWarmup times uncounted, then kCalls times counted; every call
// must succeed. Prints the per-call figures and returns them.
template <class F>
Tally measure(const char *what, F &&call) {
    for (int i = 0; i < kWarmup; ++i) {
        const dann_status st = call();
        INFO(what, ": ", dann_last_error());
        REQUIRE(st == DANN_OK);
    }
    Tally t;
    for (int i = 0; i < kCalls; ++i) {
        t_dann = t_backend = t_openmp = 0;
        t_counting = true;
        const dann_status st = call();
        t_counting = false;
        INFO(what, ": ", dann_last_error());
        REQUIRE(st == DANN_OK);
        t.dann_total += t_dann;
        t.dann_max = std::max(t.dann_max, t_dann);
        t.backend_total += t_backend;
        t.backend_min = std::min(t.backend_min, t_backend);
        t.backend_max = std::max(t.backend_max, t_backend);
        t.openmp_min = std::min(t.openmp_min, t_openmp);
        t.openmp_max = std::max(t.openmp_max, t_openmp);
    }
    std::printf("alloc: %-44s dann %llu, oneDNN %llu..%llu, OpenMP runtime %llu..%llu per call "
                "(%d calls)\n",
                what, static_cast<unsigned long long>(t.dann_max),
                static_cast<unsigned long long>(t.backend_min),
                static_cast<unsigned long long>(t.backend_max),
                static_cast<unsigned long long>(t.openmp_min),
                static_cast<unsigned long long>(t.openmp_max), kCalls);
    std::fflush(stdout);
    return t;
}

#define CHECK_NO_DANN_ALLOCATIONS(what, call)                                      \
    do {                                                                           \
        const Tally tally_ = measure(what, call);                                  \
        INFO(what);                                                                \
        CHECK(tally_.dann_total == 0);                                             \
    } while (0)

// ---------------------------------------------------------------------------
// Handles and data

using dann_test::Context;
using dann_test::Model;
using dann_test::Trainer;

void require_ok(dann_status st) {
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
}

Model mnist() {
    dann_model *m = nullptr;
    require_ok(dann_model_create_preset(DANN_PRESET_MNIST, 42, &m));
    return Model(m);
}

constexpr int kMlpIn = 20, kMlpHidden = 32, kMlpClasses = 3;
Model mlp() {
    dann_model *m = nullptr;
    require_ok(dann_model_create_mlp(kMlpIn, kMlpHidden, kMlpClasses, 42, &m));
    return Model(m);
}

// A small convolutional net with domain batch-norm and dropout: the layers
// that keep per-step state.
Model conv_bn() {
    const dann_layer_desc features[] = {dann_layer_conv2d(4, 3, 1, 1), dann_layer_batchnorm(),
                                        dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
    const dann_layer_desc label[] = {dann_layer_dense(16), dann_layer_relu(), dann_layer_dropout(0.25f),
                                     dann_layer_dense(5)};
    const dann_layer_desc domain[] = {dann_layer_dense(8), dann_layer_relu(), dann_layer_dense(1)};
    dann_model_desc d;
    std::memset(&d, 0, sizeof d);
    d.in_channels = 3;
    d.in_height = 8;
    d.in_width = 8;
    d.features = features;
    d.n_features = 4;
    d.label_head = label;
    d.n_label_head = 4;
    d.domain_head = domain;
    d.n_domain_head = 3;
    d.domain_batchnorm = 1;
    dann_model *m = nullptr;
    require_ok(dann_model_create(&d, 42, &m));
    return Model(m);
}

Context context(const dann_model *m) {
    dann_context *c = nullptr;
    require_ok(dann_context_create(m, &c));
    return Context(c);
}

Trainer trainer(dann_model *m, dann_optimizer optimizer = DANN_OPTIMIZER_SGD,
                dann_precision precision = DANN_PRECISION_F32) {
    dann_train_params p = dann_train_params_default();
    p.optimizer = optimizer;
    p.precision = precision;
    dann_trainer *t = nullptr;
    require_ok(dann_trainer_create(m, &p, &t));
    return Trainer(t);
}

dann_model_info info(const dann_model *m) {
    dann_model_info i;
    require_ok(dann_model_get_info(m, &i));
    return i;
}

std::vector<uint8_t> pixels(size_t count, uint32_t seed) {
    std::vector<uint8_t> v(count);
    for (auto &b : v) {
        seed = seed * 1664525u + 1013904223u;
        b = static_cast<uint8_t>(seed >> 24);
    }
    return v;
}

std::vector<float> values(size_t count, uint32_t seed) {
    std::vector<float> v(count);
    for (auto &f : v) {
        seed = seed * 1664525u + 1013904223u;
        f = static_cast<float>(seed >> 8) / 16777216.0f - 0.5f;
    }
    return v;
}

std::vector<int32_t> labels(size_t n, int classes) {
    std::vector<int32_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(i % static_cast<size_t>(classes));
    return v;
}

} // namespace

TEST_CASE("counting is set up: libgomp was found and dann's own allocations are seen") {
    dl_iterate_phdr(find_gomp, nullptr);
    CHECK(g_gomp_end > g_gomp_begin);
    // Through a volatile pointer, so that the compiler cannot drop the pair.
    void *(*volatile allocate)(size_t) = std::malloc;
    t_dann = t_backend = t_openmp = 0;
    t_counting = true;
    void *p = allocate(100);
    t_counting = false;
    std::free(p);
    CHECK(t_dann == 1);
    CHECK(t_backend == 0);
    CHECK(t_openmp == 0);
}

TEST_CASE("counting sees dann's allocations through the C API: a new batch size is planned") {
    dl_iterate_phdr(find_gomp, nullptr);
    Model m = mlp();
    Context c = context(m.get());
    const std::vector<float> x = values(5 * kMlpIn, 3);
    const dann_batch b = dann_batch_f32_nchw(x.data(), 5, kMlpIn, 1, 1);
    std::vector<float> probs(5 * kMlpClasses);
    t_dann = t_backend = t_openmp = 0;
    t_counting = true;
    const dann_status st = dann_predict(c.get(), &b, probs.data(), probs.size(), nullptr, 0);
    t_counting = false;
    require_ok(st);
    CHECK(t_dann > 0);
    CHECK(t_backend > 0);
}

TEST_CASE("prediction allocates nothing in dann's own code") {
    dl_iterate_phdr(find_gomp, nullptr);
    SUBCASE("MLP") {
        Model m = mlp();
        Context c = context(m.get());
        for (size_t n : {size_t{1}, size_t{64}}) {
            const std::vector<float> x = values(n * kMlpIn, 7);
            const dann_batch b = dann_batch_f32_nchw(x.data(), n, kMlpIn, 1, 1);
            std::vector<float> probs(n * kMlpClasses), domain(n);
            const std::string what = "predict MLP batch " + std::to_string(n);
            CHECK_NO_DANN_ALLOCATIONS(what.c_str(), [&] {
                return dann_predict(c.get(), &b, probs.data(), probs.size(), domain.data(), domain.size());
            });
        }
    }
    SUBCASE("MNIST preset") {
        Model m = mnist();
        Context c = context(m.get());
        for (size_t n : {size_t{1}, size_t{64}}) {
            const std::vector<uint8_t> x = pixels(n * 28 * 28 * 3, 11);
            const dann_batch b = dann_batch_u8_hwc(x.data(), n, 28, 28, 3);
            std::vector<float> probs(n * 10), domain(n);
            const std::string what = "predict MNIST batch " + std::to_string(n);
            CHECK_NO_DANN_ALLOCATIONS(what.c_str(), [&] {
                return dann_predict(c.get(), &b, probs.data(), probs.size(), domain.data(), domain.size());
            });
        }
    }
    SUBCASE("MNIST preset, int8 (dann_context_quantize)") {
        if (!dann_precision_supported(DANN_PRECISION_INT8)) {
            MESSAGE("int8 inference is not supported on this CPU: skipped");
            return;
        }
        Model m = mnist();
        Context c = context(m.get());
        const std::vector<uint8_t> cal = pixels(32 * 28 * 28 * 3, 67);
        const dann_batch cb = dann_batch_u8_hwc(cal.data(), 32, 28, 28, 3);
        require_ok(dann_context_quantize(c.get(), &cb));
        for (size_t n : {size_t{1}, size_t{64}}) {
            const std::vector<uint8_t> x = pixels(n * 28 * 28 * 3, 11);
            const dann_batch b = dann_batch_u8_hwc(x.data(), n, 28, 28, 3);
            std::vector<float> probs(n * 10), domain(n), f(n * 768);
            const std::string what = "predict MNIST int8 batch " + std::to_string(n);
            CHECK_NO_DANN_ALLOCATIONS(what.c_str(), [&] {
                return dann_predict(c.get(), &b, probs.data(), probs.size(), domain.data(), domain.size());
            });
            const std::string fwhat = "features MNIST int8 batch " + std::to_string(n);
            CHECK_NO_DANN_ALLOCATIONS(fwhat.c_str(),
                                      [&] { return dann_features(c.get(), &b, f.data(), f.size()); });
        }
    }
    SUBCASE("conv net with domain batch-norm") {
        Model m = conv_bn();
        Context c = context(m.get());
        const size_t n = 16;
        const std::vector<float> x = values(n * 3 * 8 * 8, 13);
        const dann_batch b = dann_batch_f32_nchw(x.data(), n, 3, 8, 8);
        std::vector<float> probs(n * 5);
        CHECK_NO_DANN_ALLOCATIONS("predict conv+BN batch 16 (no domain output)", [&] {
            return dann_predict(c.get(), &b, probs.data(), probs.size(), nullptr, 0);
        });
    }
}

namespace {

// One DANN step of 8 + 8 images on the MNIST preset at `precision`.
void mnist_dann_step_allocates_nothing(const char *what, dann_precision precision) {
    Model m = mnist();
    Trainer t = trainer(m.get(), DANN_OPTIMIZER_SGD, precision);
    const std::vector<uint8_t> xs = pixels(8 * 28 * 28, 17), xt = pixels(8 * 28 * 28 * 3, 19);
    const dann_batch s = dann_batch_u8_hwc(xs.data(), 8, 28, 28, 1);
    const dann_batch tg = dann_batch_u8_hwc(xt.data(), 8, 28, 28, 3);
    const std::vector<int32_t> y = labels(8, 10);
    dann_step_result r;
    CHECK_NO_DANN_ALLOCATIONS(what, [&] {
        return dann_trainer_step(t.get(), &s, y.data(), &tg, 0.1f, 0.001f, &r);
    });
}

} // namespace

TEST_CASE("a training step allocates nothing in dann's own code") {
    dl_iterate_phdr(find_gomp, nullptr);
    SUBCASE("MNIST preset, DANN step 8 + 8") {
        mnist_dann_step_allocates_nothing("train step MNIST DANN 8+8", DANN_PRECISION_F32);
    }
    SUBCASE("MNIST preset, bf16 DANN step 8 + 8 (where the CPU runs bf16)") {
        if (!dann_precision_supported(DANN_PRECISION_BF16)) return;
        mnist_dann_step_allocates_nothing("train step MNIST DANN 8+8 bf16", DANN_PRECISION_BF16);
    }
    SUBCASE("MNIST preset, source-only step 8") {
        Model m = mnist();
        Trainer t = trainer(m.get());
        const std::vector<uint8_t> xs = pixels(8 * 28 * 28 * 3, 23);
        const dann_batch s = dann_batch_u8_hwc(xs.data(), 8, 28, 28, 3);
        const std::vector<int32_t> y = labels(8, 10);
        dann_step_result r;
        CHECK_NO_DANN_ALLOCATIONS("train step MNIST source-only 8", [&] {
            return dann_trainer_step(t.get(), &s, y.data(), nullptr, 0.0f, 0.001f, &r);
        });
    }
    SUBCASE("MLP, DANN step 32 + 32 with Adam") {
        Model m = mlp();
        Trainer t = trainer(m.get(), DANN_OPTIMIZER_ADAM);
        const std::vector<float> xs = values(32 * kMlpIn, 29), xt = values(32 * kMlpIn, 31);
        const dann_batch s = dann_batch_f32_nchw(xs.data(), 32, kMlpIn, 1, 1);
        const dann_batch tg = dann_batch_f32_nchw(xt.data(), 32, kMlpIn, 1, 1);
        const std::vector<int32_t> y = labels(32, kMlpClasses);
        dann_step_result r;
        CHECK_NO_DANN_ALLOCATIONS("train step MLP DANN 32+32 Adam", [&] {
            return dann_trainer_step(t.get(), &s, y.data(), &tg, 0.1f, 0.001f, &r);
        });
    }
    SUBCASE("conv net with domain batch-norm and dropout, DANN step 8 + 8") {
        Model m = conv_bn();
        Trainer t = trainer(m.get());
        const std::vector<float> xs = values(8 * 3 * 8 * 8, 37), xt = values(8 * 3 * 8 * 8, 41);
        const dann_batch s = dann_batch_f32_nchw(xs.data(), 8, 3, 8, 8);
        const dann_batch tg = dann_batch_f32_nchw(xt.data(), 8, 3, 8, 8);
        const std::vector<int32_t> y = labels(8, 5);
        dann_step_result r;
        CHECK_NO_DANN_ALLOCATIONS("train step conv+BN DANN 8+8", [&] {
            return dann_trainer_step(t.get(), &s, y.data(), &tg, 0.1f, 0.001f, &r);
        });
    }
}

TEST_CASE("features allocate nothing in dann's own code") {
    dl_iterate_phdr(find_gomp, nullptr);
    SUBCASE("MNIST preset") {
        Model m = mnist();
        Context c = context(m.get());
        const size_t n = 8;
        const std::vector<uint8_t> x = pixels(n * 28 * 28 * 3, 43);
        const dann_batch b = dann_batch_u8_hwc(x.data(), n, 28, 28, 3);
        std::vector<float> f(n * static_cast<size_t>(info(m.get()).feature_size));
        CHECK_NO_DANN_ALLOCATIONS("features MNIST batch 8",
                                  [&] { return dann_features(c.get(), &b, f.data(), f.size()); });
    }
    SUBCASE("MLP") {
        Model m = mlp();
        Context c = context(m.get());
        const size_t n = 64;
        const std::vector<float> x = values(n * kMlpIn, 47);
        const dann_batch b = dann_batch_f32_nchw(x.data(), n, kMlpIn, 1, 1);
        std::vector<float> f(n * static_cast<size_t>(info(m.get()).feature_size));
        CHECK_NO_DANN_ALLOCATIONS("features MLP batch 64",
                                  [&] { return dann_features(c.get(), &b, f.data(), f.size()); });
    }
}

TEST_CASE("the adapter's push, run and predict allocate nothing in dann's own code") {
    dl_iterate_phdr(find_gomp, nullptr);
    Model m = mnist();
    const size_t replay_n = 64;
    const std::vector<uint8_t> replay = pixels(replay_n * 28 * 28, 53);
    const std::vector<int32_t> replay_y = labels(replay_n, 10);
    const dann_batch rb = dann_batch_u8_hwc(replay.data(), replay_n, 28, 28, 1);
    require_ok(dann_model_set_replay(m.get(), &rb, replay_y.data()));

    dann_adapter_params p = dann_adapter_params_default();
    p.source_batch = 8;
    p.target_batch = 8;
    p.steps_per_round = 2;
    p.guard_samples = 32;
    p.capacity = 128;
    p.channels = 3;
    p.background = 0;
    dann_adapter *raw = nullptr;
    require_ok(dann_adapter_create(m.get(), &p, &raw));
    const dann_test::Adapter a(raw);

    const std::vector<uint8_t> stream = pixels(16 * 28 * 28 * 3, 59);
    const dann_batch push = dann_batch_u8_hwc(stream.data(), 16, 28, 28, 3);
    require_ok(dann_adapter_push(a.get(), &push));

    CHECK_NO_DANN_ALLOCATIONS("adapter push 16", [&] { return dann_adapter_push(a.get(), &push); });
    CHECK_NO_DANN_ALLOCATIONS("adapter run 1 round (2 steps 8+8, guard)",
                              [&] { return dann_adapter_run(a.get(), 1); });

    dann_context *rc = nullptr;
    require_ok(dann_adapter_context_create(a.get(), &rc));
    Context c(rc);
    for (size_t n : {size_t{1}, size_t{64}}) {
        const std::vector<uint8_t> x = pixels(n * 28 * 28 * 3, 61);
        const dann_batch b = dann_batch_u8_hwc(x.data(), n, 28, 28, 3);
        std::vector<float> probs(n * 10);
        const std::string what = "predict adapter context MNIST batch " + std::to_string(n);
        CHECK_NO_DANN_ALLOCATIONS(what.c_str(), [&] {
            return dann_predict(c.get(), &b, probs.data(), probs.size(), nullptr, 0);
        });
    }
}

