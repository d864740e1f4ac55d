// The public C API as a user sees it: argument checking (status, message,
// out-pointers, an untouched model), model descriptions, the parameter API,
// initialisation, prediction across input formats, training steps and
// threads. Only include/dann.h is used.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dann.h"
#include "api_handles.hpp"

namespace {

// ---------------------------------------------------------------------------
// Handles

using dann_test::Context;
using dann_test::Model;
using dann_test::Trainer;

Model make_preset(dann_preset preset, uint64_t seed) {
    dann_model *m = nullptr;
    const dann_status st = dann_model_create_preset(preset, seed, &m);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    REQUIRE(m != nullptr);
    return Model(m);
}

Model make_mnist(uint64_t seed = 42) { return make_preset(DANN_PRESET_MNIST, seed); }

// The shallow network: 4 inputs -> 8 sigmoid -> 3 classes.
constexpr int kMlpIn = 4, kMlpHidden = 8, kMlpClasses = 3;
Model make_mlp(uint64_t seed = 42) {
    dann_model *m = nullptr;
    const dann_status st = dann_model_create_mlp(kMlpIn, kMlpHidden, kMlpClasses, seed, &m);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    REQUIRE(m != nullptr);
    return Model(m);
}

Context make_context(const dann_model *m) {
    dann_context *c = nullptr;
    const dann_status st = dann_context_create(m, &c);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    REQUIRE(c != nullptr);
    return Context(c);
}

Trainer make_trainer(dann_model *m) {
    dann_trainer *t = nullptr;
    const dann_train_params params = dann_train_params_default();
    const dann_status st = dann_trainer_create(m, &params, &t);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    REQUIRE(t != nullptr);
    return Trainer(t);
}

// A non-NULL pointer that a failing create must overwrite with NULL (never
// dereferenced or destroyed).
template <typename T> T *garbage_handle() {
    return reinterpret_cast<T *>(static_cast<uintptr_t>(0x10));
}

// ---------------------------------------------------------------------------
// Failures: status, message, keyword

// A value outside an enum's list, as a C caller may legally pass one (in C an
// enum argument is an integer).
template <typename E> E unknown_enum(int value) { return static_cast<E>(value); }

constexpr unsigned bit(dann_status s) { return 1u << static_cast<unsigned>(s); }
constexpr unsigned ARG = bit(DANN_ERR_INVALID_ARGUMENT);
constexpr unsigned SHAPE = bit(DANN_ERR_SHAPE);
constexpr unsigned NUMERIC = bit(DANN_ERR_NUMERIC);

std::string lower(std::string s) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool mentions_any(const std::string &message, std::initializer_list<const char *> keywords) {
    const std::string m = lower(message);
    for (const char *k : keywords)
        if (m.find(lower(k)) != std::string::npos) return true;
    return false;
}

// Checks a failed call: its status is one of `allowed`, and dann_last_error()
// is non-empty and contains at least one of the keywords (case-insensitive).
void expect_failure(dann_status st, unsigned allowed, std::initializer_list<const char *> keywords) {
    const std::string message = dann_last_error();
    std::string wanted;
    for (const char *k : keywords) wanted += std::string(wanted.empty() ? "" : " | ") + k;
    INFO("status: ", std::string(dann_status_string(st)), "; message: \"", message, "\"; keywords: ", wanted);
    CHECK(st != DANN_OK);
    CHECK((bit(st) & allowed) != 0);
    CHECK(!message.empty());
    CHECK(mentions_any(message, keywords));
}

#define EXPECT_FAIL(call, allowed, ...)                                                            \
    do {                                                                                           \
        INFO("call: " #call);                                                                      \
        expect_failure((call), (allowed), {__VA_ARGS__});                                          \
    } while (0)

// ---------------------------------------------------------------------------
// Parameters

using Params = std::vector<std::vector<float>>;

dann_param_info param_info(const dann_model *m, size_t i) {
    dann_param_info info{};
    const dann_status st = dann_model_param_info(m, i, &info);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    return info;
}

std::vector<float> param_values(const dann_model *m, size_t i) {
    const dann_param_info info = param_info(m, i);
    std::vector<float> v(info.numel);
    const dann_status st = dann_model_param_get(m, i, v.data(), v.size());
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    return v;
}

size_t param_index(const dann_model *m, const char *name) {
    size_t index = 0;
    const dann_status st = dann_model_param_find(m, name, &index);
    INFO(name, ": ", dann_last_error());
    REQUIRE(st == DANN_OK);
    return index;
}

std::vector<float> param_values(const dann_model *m, const char *name) {
    return param_values(m, param_index(m, name));
}

Params all_params(const dann_model *m) {
    Params p(dann_model_param_count(m));
    for (size_t i = 0; i < p.size(); ++i) p[i] = param_values(m, i);
    return p;
}

// "" if the model's parameters equal `before` exactly, else the first name that differs.
std::string changed_param(const dann_model *m, const Params &before) {
    const Params now = all_params(m);
    if (now.size() != before.size()) return "(parameter count changed)";
    for (size_t i = 0; i < now.size(); ++i)
        if (now[i] != before[i]) return param_info(m, i).name;
    return "";
}

// Names of the parameters whose values differ from `before`.
std::set<std::string> changed_params(const dann_model *m, const Params &before) {
    std::set<std::string> names;
    const Params now = all_params(m);
    REQUIRE(now.size() == before.size());
    for (size_t i = 0; i < now.size(); ++i)
        if (now[i] != before[i]) names.insert(param_info(m, i).name);
    return names;
}

bool starts_with(const std::string &s, const std::string &prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

// ---------------------------------------------------------------------------
// Data

// SplitMix64: the same numbers everywhere.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
};

std::vector<float> random_floats(size_t n, uint64_t seed, float lo = 0.0f, float hi = 1.0f) {
    Rng r(seed);
    std::vector<float> v(n);
    for (float &x : v) x = lo + (hi - lo) * r.uniform();
    return v;
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
    Rng r(seed);
    std::vector<uint8_t> v(n);
    for (uint8_t &x : v) x = static_cast<uint8_t>(r.next() >> 56);
    return v;
}

constexpr int kC = 3, kH = 28, kW = 28, kClasses = 10;
constexpr size_t kImage = static_cast<size_t>(kC) * kH * kW;

std::vector<float> predict(dann_context *ctx, const dann_batch &batch, size_t classes,
                           std::vector<float> *domain = nullptr) {
    std::vector<float> probs(batch.n * classes, -1.0f);
    if (domain) domain->assign(batch.n, -1.0f);
    const dann_status st = dann_predict(ctx, &batch, probs.data(), probs.size(),
                                        domain ? domain->data() : nullptr, domain ? batch.n : 0);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    return probs;
}

float max_abs_diff(const std::vector<float> &a, const std::vector<float> &b) {
    REQUIRE(a.size() == b.size());
    float d = 0.0f;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

bool all_finite(const dann_step_result &r) {
    return std::isfinite(r.label_loss) && std::isfinite(r.domain_loss) &&
           std::isfinite(r.domain_accuracy);
}

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Names of the functions dann.h declares with DANN_API (preprocessor lines skipped).
std::vector<std::string> declared_functions(const std::string &header) {
    std::string code;
    std::istringstream lines(header);
    for (std::string line; std::getline(lines, line);) {
        const size_t first = line.find_first_not_of(" \t");
        if (first != std::string::npos && line[first] == '#') continue;
        code += line + '\n';
    }
    std::vector<std::string> names;
    for (size_t at = code.find("DANN_API"); at != std::string::npos;
         at = code.find("DANN_API", at + 8)) {
        const size_t paren = code.find('(', at);
        if (paren == std::string::npos) break;
        size_t end = paren;
        while (end > at && std::isspace(static_cast<unsigned char>(code[end - 1]))) --end;
        size_t begin = end;
        while (begin > at && (std::isalnum(static_cast<unsigned char>(code[begin - 1])) ||
                              code[begin - 1] == '_'))
            --begin;
        names.push_back(code.substr(begin, end - begin));
    }
    return names;
}

dann_model_desc desc_of(int c, int h, int w, const std::vector<dann_layer_desc> &features,
                        const std::vector<dann_layer_desc> &label,
                        const std::vector<dann_layer_desc> &domain) {
    dann_model_desc d{};
    d.in_channels = c;
    d.in_height = h;
    d.in_width = w;
    d.features = features.empty() ? nullptr : features.data();
    d.n_features = features.size();
    d.label_head = label.empty() ? nullptr : label.data();
    d.n_label_head = label.size();
    d.domain_head = domain.empty() ? nullptr : domain.data();
    d.n_domain_head = domain.size();
    return d;
}

// A rejected description: the status is INVALID_ARGUMENT or SHAPE (as documented),
// the message names `layer`, and the out-pointer is NULL.
void expect_rejected(const dann_model_desc &desc, unsigned allowed, const char *layer) {
    dann_model *m = garbage_handle<dann_model>();
    const dann_status st = dann_model_create(&desc, 1, &m);
    expect_failure(st, allowed, {layer});
    CHECK(m == nullptr);
    if (st == DANN_OK) dann_model_destroy(m);
}

} // namespace

// ===========================================================================
// Status, errors, version

TEST_CASE("dann_status_string names every status after its enum value") {
    const std::pair<dann_status, const char *> statuses[] = {
        {DANN_OK, "DANN_OK"},
        {DANN_ERR_INVALID_ARGUMENT, "DANN_ERR_INVALID_ARGUMENT"},
        {DANN_ERR_SHAPE, "DANN_ERR_SHAPE"},
        {DANN_ERR_NUMERIC, "DANN_ERR_NUMERIC"},
        {DANN_ERR_OUT_OF_MEMORY, "DANN_ERR_OUT_OF_MEMORY"},
        {DANN_ERR_BACKEND, "DANN_ERR_BACKEND"},
        {DANN_ERR_IO, "DANN_ERR_IO"},
        {DANN_ERR_FORMAT, "DANN_ERR_FORMAT"},
        {DANN_ERR_UNSUPPORTED, "DANN_ERR_UNSUPPORTED"},
        {DANN_ERR_INTERNAL, "DANN_ERR_INTERNAL"},
    };
    std::set<std::string> seen;
    for (const auto &s : statuses) {
        const char *text = dann_status_string(s.first);
        REQUIRE(text != nullptr);
        INFO(text);
        CHECK(starts_with(text, s.second));
        seen.insert(text);
    }
    CHECK(seen.size() == std::size(statuses));
}

TEST_CASE("dann_status_string returns a non-NULL string for an unknown status") {
    const char *unknown = dann_status_string(unknown_enum<dann_status>(1000));
    REQUIRE(unknown != nullptr);
    CHECK(std::strlen(unknown) > 0);
    CHECK(dann_status_string(unknown_enum<dann_status>(-1)) != nullptr);
}

TEST_CASE("the version macros match dann_version_number and dann_version_string") {
    CHECK(dann_version_number() == static_cast<unsigned>(DANN_VERSION_NUMBER));
    CHECK(DANN_VERSION_NUMBER ==
          DANN_VERSION_MAJOR * 10000 + DANN_VERSION_MINOR * 100 + DANN_VERSION_PATCH);
    const std::string expected = std::to_string(DANN_VERSION_MAJOR) + "." +
                                 std::to_string(DANN_VERSION_MINOR) + "." +
                                 std::to_string(DANN_VERSION_PATCH);
    REQUIRE(dann_version_string() != nullptr);
    CHECK(std::string(dann_version_string()) == expected);
}

TEST_CASE("the last error message belongs to the thread that caused it") {
    REQUIRE(dann_model_create_preset(DANN_PRESET_MNIST, 1, nullptr) != DANN_OK);
    const std::string main_message = dann_last_error();
    REQUIRE(!main_message.empty());

    std::string thread_before, thread_after;
    std::thread other([&] {
        thread_before = dann_last_error();
        (void)dann_model_set_threads(nullptr, 1);
        thread_after = dann_last_error();
    });
    other.join();

    CHECK(thread_before.empty());
    CHECK(!thread_after.empty());
    CHECK(thread_after != main_message);
    CHECK(std::string(dann_last_error()) == main_message);
}

TEST_CASE("every function declared in dann.h is listed in tests/link_all.c") {
    const std::string header = read_file(DANN_FIXTURE_DIR "/../../include/dann.h");
    const std::string link_all = read_file(DANN_FIXTURE_DIR "/../link_all.c");
    REQUIRE(!header.empty());
    REQUIRE(!link_all.empty());
    const std::vector<std::string> names = declared_functions(header);
    CHECK(names.size() >= 30);
    size_t listed = 0;
    for (const std::string &name : names) {
        INFO("add DANN_FN(", name, ") to tests/link_all.c");
        CHECK(starts_with(name, "dann_"));
        const bool found = link_all.find("DANN_FN(" + name + ")") != std::string::npos;
        CHECK(found);
        listed += found;
    }
    // No stale entries either: as many DANN_FN( uses as declarations, plus the macro's own definition.
    size_t uses = 0;
    for (size_t at = link_all.find("DANN_FN("); at != std::string::npos;
         at = link_all.find("DANN_FN(", at + 1))
        ++uses;
    CHECK(uses == names.size() + 1);
    CHECK(listed == names.size());
}

TEST_CASE("every destroy function accepts NULL") {
    dann_model_destroy(nullptr);
    dann_context_destroy(nullptr);
    dann_trainer_destroy(nullptr);
    CHECK(true);
}

// ===========================================================================
// Small value constructors

TEST_CASE("the layer constructors describe the layer they name") {
    const dann_layer_desc conv = dann_layer_conv2d(32, 5, 2, 1);
    CHECK(conv.kind == DANN_LAYER_CONV2D);
    CHECK(conv.units == 32);
    CHECK(conv.kernel_h == 5);
    CHECK((conv.kernel_w == 5 || conv.kernel_w == 0));
    CHECK(conv.stride_h == 2);
    CHECK((conv.stride_w == 2 || conv.stride_w == 0));
    CHECK(conv.pad_h == 1);
    CHECK((conv.pad_w == 1 || conv.pad_w == 0));

    const dann_layer_desc pool = dann_layer_maxpool2d(3, 2, 1);
    CHECK(pool.kind == DANN_LAYER_MAXPOOL2D);
    CHECK(pool.kernel_h == 3);
    CHECK(pool.stride_h == 2);
    CHECK(pool.pad_h == 1);

    const dann_layer_desc dense = dann_layer_dense(100);
    CHECK(dense.kind == DANN_LAYER_DENSE);
    CHECK(dense.units == 100);

    CHECK(dann_layer_relu().kind == DANN_LAYER_RELU);
    CHECK(dann_layer_sigmoid().kind == DANN_LAYER_SIGMOID);
    CHECK(dann_layer_batchnorm().kind == DANN_LAYER_BATCHNORM);
    CHECK(dann_layer_flatten().kind == DANN_LAYER_FLATTEN);
    const dann_layer_desc dropout = dann_layer_dropout(0.25f);
    CHECK(dropout.kind == DANN_LAYER_DROPOUT);
    CHECK(dropout.rate == 0.25f);
}

TEST_CASE("the batch constructors record format, count and dimensions in their argument order") {
    const float f[1] = {0.0f};
    const uint8_t b[1] = {0};
    const dann_batch nchw = dann_batch_f32_nchw(f, 5, 3, 28, 27);
    CHECK(nchw.format == DANN_INPUT_F32_NCHW);
    CHECK(nchw.data == f);
    CHECK(nchw.n == 5);
    CHECK(nchw.channels == 3);
    CHECK(nchw.height == 28);
    CHECK(nchw.width == 27);
    const dann_batch nhwc = dann_batch_f32_nhwc(f, 4, 28, 27, 3);
    CHECK(nhwc.format == DANN_INPUT_F32_NHWC);
    CHECK(nhwc.data == f);
    CHECK(nhwc.n == 4);
    CHECK(nhwc.height == 28);
    CHECK(nhwc.width == 27);
    CHECK(nhwc.channels == 3);
    const dann_batch hwc = dann_batch_u8_hwc(b, 2, 28, 27, 1);
    CHECK(hwc.format == DANN_INPUT_U8_HWC);
    CHECK(hwc.data == b);
    CHECK(hwc.n == 2);
    CHECK(hwc.height == 28);
    CHECK(hwc.width == 27);
    CHECK(hwc.channels == 1);
}

TEST_CASE("dann_train_params_default gives the documented defaults") {
    const dann_train_params p = dann_train_params_default();
    CHECK(p.momentum == 0.9f);
    CHECK(p.weight_decay == 0.0f);
    CHECK(p.seed == 1u);
}

// ===========================================================================
// Model creation

TEST_CASE("model creation rejects NULL arguments and sets the out-pointer to NULL") {
    dann_model *m = garbage_handle<dann_model>();
    EXPECT_FAIL(dann_model_create(nullptr, 1, &m), ARG, "null", "desc");
    CHECK(m == nullptr);

    const auto desc = [] {
        static const std::vector<dann_layer_desc> f = {dann_layer_dense(8), dann_layer_relu()};
        static const std::vector<dann_layer_desc> l = {dann_layer_dense(3)};
        static const std::vector<dann_layer_desc> d = {dann_layer_dense(1)};
        return desc_of(4, 1, 1, f, l, d);
    }();
    EXPECT_FAIL(dann_model_create(&desc, 1, nullptr), ARG, "null", "out");
    EXPECT_FAIL(dann_model_create_preset(DANN_PRESET_MNIST, 1, nullptr), ARG, "null", "out");
    EXPECT_FAIL(dann_model_create_mlp(2, 15, 2, 1, nullptr), ARG, "null", "out");

    m = garbage_handle<dann_model>();
    EXPECT_FAIL(dann_model_create_preset(unknown_enum<dann_preset>(17), 1, &m), ARG, "preset");
    CHECK(m == nullptr);
}

TEST_CASE("dann_model_create_mlp rejects non-positive sizes") {
    const int bad[][3] = {{0, 15, 2}, {-2, 15, 2}, {2, 0, 2}, {2, -1, 2}, {2, 15, 1}, {2, 15, 0}};
    for (const auto &b : bad) {
        INFO("mlp(", b[0], ", ", b[1], ", ", b[2], ")");
        dann_model *m = garbage_handle<dann_model>();
        EXPECT_FAIL(dann_model_create_mlp(b[0], b[1], b[2], 1, &m), ARG | SHAPE, "input", "hidden",
                    "class", "unit", "dim", "channel", "label_head", "features");
        CHECK(m == nullptr);
    }
}

TEST_CASE("a valid custom description with every layer kind is accepted") {
    const std::vector<dann_layer_desc> f = {
        dann_layer_conv2d(4, 3, 1, 1), dann_layer_batchnorm(), dann_layer_relu(),
        dann_layer_maxpool2d(2, 2, 0), dann_layer_sigmoid(),   dann_layer_flatten()};
    const std::vector<dann_layer_desc> l = {dann_layer_dense(6), dann_layer_dropout(0.5f),
                                            dann_layer_dense(3)};
    const std::vector<dann_layer_desc> d = {dann_layer_dense(5), dann_layer_relu(),
                                            dann_layer_dense(1)};
    for (int domain_bn = 0; domain_bn <= 1; ++domain_bn) {
        INFO("domain_batchnorm = ", domain_bn);
        dann_model_desc desc = desc_of(2, 6, 6, f, l, d);
        desc.domain_batchnorm = domain_bn;
        dann_model *raw = nullptr;
        const dann_status st = dann_model_create(&desc, 3, &raw);
        INFO(dann_last_error());
        REQUIRE(st == DANN_OK);
        Model m(raw);
        dann_model_info info{};
        REQUIRE(dann_model_get_info(m.get(), &info) == DANN_OK);
        CHECK(info.in_channels == 2);
        CHECK(info.in_height == 6);
        CHECK(info.in_width == 6);
        CHECK(info.num_classes == 3);
        CHECK(info.feature_size == 4 * 3 * 3);
        CHECK(info.n_params == dann_model_param_count(m.get()));
        // conv 4*2*9+4, bn 4+4, dense 6*36+6, dense 3*6+3, domain 5*36+5, 1*5+1
        CHECK(info.n_weights == 76 + 8 + 222 + 21 + 185 + 6);
        size_t trainable = 0, buffers = 0;
        for (size_t i = 0; i < info.n_params; ++i) {
            const dann_param_info p = param_info(m.get(), i);
            (p.trainable ? trainable : buffers) += p.numel;
        }
        CHECK(trainable == info.n_weights);
        CHECK(buffers >= 8); // batch-norm running mean and variance
        // The description was copied: the vectors may go away, the model stays usable.
        Context ctx = make_context(m.get());
        const std::vector<float> x = random_floats(2 * 2 * 6 * 6, 5);
        const std::vector<float> probs = predict(ctx.get(), dann_batch_f32_nchw(x.data(), 2, 2, 6, 6), 3);
        CHECK(std::isfinite(probs[0]));
    }
}

TEST_CASE("invalid model descriptions are rejected with a message naming the layer") {
    const dann_layer_desc relu = dann_layer_relu();
    const dann_layer_desc flat = dann_layer_flatten();
    const std::vector<dann_layer_desc> f_ok = {dann_layer_conv2d(4, 3, 1, 0), relu};
    const std::vector<dann_layer_desc> l_ok = {dann_layer_dense(8), relu, dann_layer_dense(3)};
    const std::vector<dann_layer_desc> d_ok = {dann_layer_dense(8), relu, dann_layer_dense(1)};

    SUBCASE("the reference description itself is valid") {
        const dann_model_desc desc = desc_of(3, 8, 8, f_ok, l_ok, d_ok);
        dann_model *m = nullptr;
        INFO(dann_last_error());
        CHECK(dann_model_create(&desc, 1, &m) == DANN_OK);
        dann_model_destroy(m);
    }
    SUBCASE("a label head ending in RELU") {
        expect_rejected(desc_of(3, 8, 8, f_ok, {dann_layer_dense(8), relu}, d_ok), ARG | SHAPE,
                        "label_head");
    }
    SUBCASE("a label head ending in DENSE with 1 unit") {
        expect_rejected(desc_of(3, 8, 8, f_ok, {dann_layer_dense(8), relu, dann_layer_dense(1)}, d_ok),
                        ARG | SHAPE, "label_head");
    }
    SUBCASE("an empty label head") {
        expect_rejected(desc_of(3, 8, 8, f_ok, {}, d_ok), ARG | SHAPE, "label_head");
    }
    SUBCASE("a domain head ending in DENSE with 2 units") {
        expect_rejected(desc_of(3, 8, 8, f_ok, l_ok, {dann_layer_dense(8), relu, dann_layer_dense(2)}),
                        ARG | SHAPE, "domain_head");
    }
    SUBCASE("a domain head ending in SIGMOID") {
        expect_rejected(
            desc_of(3, 8, 8, f_ok, l_ok, {dann_layer_dense(1), dann_layer_sigmoid()}), ARG | SHAPE,
            "domain_head");
    }
    SUBCASE("a conv kernel larger than the padded input") {
        // 8x8 padded by 1 is 10x10; an 11x11 kernel does not fit.
        expect_rejected(desc_of(3, 8, 8, {relu, dann_layer_conv2d(4, 11, 1, 1)}, l_ok, d_ok), SHAPE,
                        "features.1");
    }
    SUBCASE("a pooling window larger than its input") {
        expect_rejected(desc_of(3, 8, 8, {dann_layer_conv2d(4, 5, 1, 0), dann_layer_maxpool2d(5, 5, 0)},
                                l_ok, d_ok),
                        SHAPE, "features.1");
    }
    SUBCASE("a conv after a flatten") {
        expect_rejected(
            desc_of(3, 8, 8, {dann_layer_conv2d(4, 3, 1, 0), relu, flat, dann_layer_conv2d(4, 1, 1, 0)},
                    l_ok, d_ok),
            ARG | SHAPE, "features.3");
    }
    SUBCASE("a dropout rate of 1") {
        expect_rejected(
            desc_of(3, 8, 8, f_ok, {dann_layer_dense(8), relu, dann_layer_dropout(1.0f), dann_layer_dense(3)},
                    d_ok),
            ARG, "label_head.2");
    }
    SUBCASE("a negative dropout rate") {
        expect_rejected(desc_of(3, 8, 8, f_ok, l_ok, {dann_layer_dropout(-0.1f), dann_layer_dense(1)}), ARG,
                        "domain_head.0");
    }
    SUBCASE("a NaN dropout rate") {
        expect_rejected(desc_of(3, 8, 8, {relu, dann_layer_dropout(std::nanf(""))}, l_ok, d_ok),
                        ARG | NUMERIC, "features.1");
    }
    SUBCASE("a conv with zero output channels") {
        expect_rejected(desc_of(3, 8, 8, {dann_layer_conv2d(0, 3, 1, 0)}, l_ok, d_ok), ARG | SHAPE,
                        "features.0");
    }
    SUBCASE("a conv with a zero kernel") {
        expect_rejected(desc_of(3, 8, 8, {relu, relu, dann_layer_conv2d(4, 0, 1, 0)}, l_ok, d_ok),
                        ARG | SHAPE, "features.2");
    }
    SUBCASE("a conv with a negative stride") {
        expect_rejected(desc_of(3, 8, 8, {dann_layer_conv2d(4, 3, -1, 0)}, l_ok, d_ok), ARG | SHAPE,
                        "features.0");
    }
    SUBCASE("a conv with negative padding") {
        expect_rejected(desc_of(3, 8, 8, {dann_layer_conv2d(4, 3, 1, -1)}, l_ok, d_ok), ARG | SHAPE,
                        "features.0");
    }
    SUBCASE("a dense layer with negative units") {
        expect_rejected(desc_of(3, 8, 8, f_ok, {dann_layer_dense(-5), relu, dann_layer_dense(3)}, d_ok),
                        ARG | SHAPE, "label_head.0");
    }
    SUBCASE("a dense layer with zero units") {
        expect_rejected(desc_of(3, 8, 8, f_ok, l_ok, {dann_layer_dense(0), relu, dann_layer_dense(1)}),
                        ARG | SHAPE, "domain_head.0");
    }
    SUBCASE("an unknown layer kind") {
        dann_layer_desc bogus = dann_layer_relu();
        bogus.kind = unknown_enum<dann_layer_kind>(42);
        expect_rejected(desc_of(3, 8, 8, {relu, bogus}, l_ok, d_ok), ARG, "features.1");
    }
    SUBCASE("a NULL feature array with a nonzero count") {
        dann_model_desc desc = desc_of(3, 8, 8, f_ok, l_ok, d_ok);
        desc.features = nullptr;
        expect_rejected(desc, ARG, "features");
    }
    SUBCASE("a NULL label head array with a nonzero count") {
        dann_model_desc desc = desc_of(3, 8, 8, f_ok, l_ok, d_ok);
        desc.label_head = nullptr;
        expect_rejected(desc, ARG, "label_head");
    }
    SUBCASE("a NULL domain head array with a nonzero count") {
        dann_model_desc desc = desc_of(3, 8, 8, f_ok, l_ok, d_ok);
        desc.domain_head = nullptr;
        expect_rejected(desc, ARG, "domain_head");
    }
    SUBCASE("a zero or negative input size") {
        dann_model *m = garbage_handle<dann_model>();
        dann_model_desc desc = desc_of(0, 8, 8, f_ok, l_ok, d_ok);
        EXPECT_FAIL(dann_model_create(&desc, 1, &m), ARG | SHAPE, "input", "in_");
        CHECK(m == nullptr);
        desc = desc_of(3, -8, 8, f_ok, l_ok, d_ok);
        EXPECT_FAIL(dann_model_create(&desc, 1, &m), ARG | SHAPE, "input", "in_");
        desc = desc_of(3, 8, 0, f_ok, l_ok, d_ok);
        EXPECT_FAIL(dann_model_create(&desc, 1, &m), ARG | SHAPE, "input", "in_");
    }
}

// ===========================================================================
// Model queries and settings

TEST_CASE("dann_model_get_info describes the MNIST preset") {
    Model m = make_mnist();
    dann_model_info info{};
    REQUIRE(dann_model_get_info(m.get(), &info) == DANN_OK);
    CHECK(info.in_channels == 3);
    CHECK(info.in_height == 28);
    CHECK(info.in_width == 28);
    CHECK(info.num_classes == 10);
    CHECK(info.feature_size == 768);
    CHECK(info.n_params == 14);
    // conv 32*3*25+32, conv 48*32*25+48, 100*768+100, 100*100+100, 10*100+10; 100*768+100, 1*100+1
    CHECK(info.n_weights == 2432u + 38448u + 76900u + 10100u + 1010u + 76900u + 101u);

    EXPECT_FAIL(dann_model_get_info(nullptr, &info), ARG, "null", "model");
    EXPECT_FAIL(dann_model_get_info(m.get(), nullptr), ARG, "null", "out", "info");
}

TEST_CASE("the presets have the paper's input shapes, classes and feature sizes") {
    const struct {
        dann_preset preset;
        int c, h, w, classes, feature;
    } presets[] = {{DANN_PRESET_MNIST, 3, 28, 28, 10, 768},
                   {DANN_PRESET_SVHN, 3, 32, 32, 10, 8192},
                   {DANN_PRESET_GTSRB, 3, 40, 40, 43, 1024}};
    for (const auto &p : presets) {
        INFO("preset ", static_cast<int>(p.preset));
        Model m = make_preset(p.preset, 1);
        dann_model_info info{};
        REQUIRE(dann_model_get_info(m.get(), &info) == DANN_OK);
        CHECK(info.in_channels == p.c);
        CHECK(info.in_height == p.h);
        CHECK(info.in_width == p.w);
        CHECK(info.num_classes == p.classes);
        CHECK(info.feature_size == p.feature);
    }
}

TEST_CASE("dann_model_set_threads rejects negative counts and accepts 0 and 1") {
    Model m = make_mlp();
    EXPECT_FAIL(dann_model_set_threads(m.get(), -1), ARG, "thread");
    EXPECT_FAIL(dann_model_set_threads(nullptr, 1), ARG, "null", "model");
    CHECK(dann_model_set_threads(m.get(), 1) == DANN_OK);
    CHECK(dann_model_set_threads(m.get(), 0) == DANN_OK);
}

TEST_CASE("dann_model_set_input_norm rejects NULL, a wrong channel count and NaN or Inf") {
    Model m = make_mnist();
    const float mean[3] = {0.1f, 0.2f, 0.3f};
    const float nan_mean[3] = {0.1f, std::nanf(""), 0.3f};
    const float inf_mean[3] = {0.1f, 0.2f, std::numeric_limits<float>::infinity()};
    EXPECT_FAIL(dann_model_set_input_norm(nullptr, 1.0f / 255, mean, 3), ARG, "null", "model");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), 1.0f / 255, nullptr, 3), ARG, "null", "mean");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), 1.0f / 255, mean, 1), ARG | SHAPE, "channel");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), 1.0f / 255, mean, 0), ARG | SHAPE, "channel");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), std::nanf(""), mean, 3), ARG | NUMERIC, "nan",
                "inf", "finite");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), std::numeric_limits<float>::infinity(), mean, 3),
                ARG | NUMERIC, "nan", "inf", "finite");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), 1.0f / 255, nan_mean, 3), ARG | NUMERIC, "nan", "inf",
                "finite");
    EXPECT_FAIL(dann_model_set_input_norm(m.get(), 1.0f / 255, inf_mean, 3), ARG | NUMERIC, "nan", "inf",
                "finite");
    CHECK(dann_model_set_input_norm(m.get(), 1.0f / 255, mean, 3) == DANN_OK);
}

// ===========================================================================
// Parameter API

TEST_CASE("the MNIST preset's parameters have PyTorch names and shapes") {
    Model m = make_mnist();
    const struct {
        const char *name;
        std::vector<int64_t> shape;
    } expected[] = {
        {"features.0.weight", {32, 3, 5, 5}},  {"features.0.bias", {32}},
        {"features.3.weight", {48, 32, 5, 5}}, {"features.3.bias", {48}},
        {"label_head.0.weight", {100, 768}},   {"label_head.0.bias", {100}},
        {"label_head.2.weight", {100, 100}},   {"label_head.2.bias", {100}},
        {"label_head.4.weight", {10, 100}},    {"label_head.4.bias", {10}},
        {"domain_head.0.weight", {100, 768}},  {"domain_head.0.bias", {100}},
        {"domain_head.2.weight", {1, 100}},    {"domain_head.2.bias", {1}},
    };
    REQUIRE(dann_model_param_count(m.get()) == std::size(expected));
    std::set<std::string> names;
    for (size_t i = 0; i < dann_model_param_count(m.get()); ++i) names.insert(param_info(m.get(), i).name);
    for (const auto &e : expected) {
        INFO(e.name);
        CHECK(names.count(e.name) == 1);
        const size_t index = param_index(m.get(), e.name);
        const dann_param_info info = param_info(m.get(), index);
        CHECK(std::string(info.name) == e.name);
        REQUIRE(info.ndim == static_cast<int>(e.shape.size()));
        size_t numel = 1;
        for (int d = 0; d < info.ndim; ++d) {
            CHECK(info.shape[d] == e.shape[static_cast<size_t>(d)]);
            numel *= static_cast<size_t>(e.shape[static_cast<size_t>(d)]);
        }
        CHECK(info.numel == numel);
        CHECK(info.trainable == 1);
    }
}

TEST_CASE("the parameter API rejects NULL pointers, unknown names and out-of-range indices") {
    Model m = make_mlp();
    const size_t count = dann_model_param_count(m.get());
    REQUIRE(count == 6);
    CHECK(dann_model_param_count(nullptr) == 0);

    dann_param_info info{};
    EXPECT_FAIL(dann_model_param_info(nullptr, 0, &info), ARG, "null", "model");
    EXPECT_FAIL(dann_model_param_info(m.get(), 0, nullptr), ARG, "null", "out", "info");
    EXPECT_FAIL(dann_model_param_info(m.get(), count, &info), ARG | SHAPE, "index", "range");

    size_t index = 0;
    EXPECT_FAIL(dann_model_param_find(nullptr, "features.0.weight", &index), ARG, "null", "model");
    EXPECT_FAIL(dann_model_param_find(m.get(), nullptr, &index), ARG, "null", "name");
    EXPECT_FAIL(dann_model_param_find(m.get(), "features.0.weight", nullptr), ARG, "null", "index");
    EXPECT_FAIL(dann_model_param_find(m.get(), "features.7.weight", &index), ARG, "features.7.weight");

    std::vector<float> buf(1024);
    EXPECT_FAIL(dann_model_param_get(nullptr, 0, buf.data(), 32), ARG, "null", "model");
    EXPECT_FAIL(dann_model_param_get(m.get(), 0, nullptr, 32), ARG, "null", "data");
    EXPECT_FAIL(dann_model_param_get(m.get(), count, buf.data(), 32), ARG | SHAPE, "index", "range");
    EXPECT_FAIL(dann_model_param_set(nullptr, 0, buf.data(), 32), ARG, "null", "model");
    EXPECT_FAIL(dann_model_param_set(m.get(), count, buf.data(), 32), ARG | SHAPE, "index", "range");
}

TEST_CASE("the MLP preset's parameters follow the shallow network's layout") {
    Model m = make_mlp();
    const struct {
        const char *name;
        std::vector<int64_t> shape;
    } expected[] = {
        {"features.0.weight", {kMlpHidden, kMlpIn}}, {"features.0.bias", {kMlpHidden}},
        {"label_head.0.weight", {kMlpClasses, kMlpHidden}}, {"label_head.0.bias", {kMlpClasses}},
        {"domain_head.0.weight", {1, kMlpHidden}}, {"domain_head.0.bias", {1}},
    };
    for (const auto &e : expected) {
        INFO(e.name);
        const dann_param_info info = param_info(m.get(), param_index(m.get(), e.name));
        REQUIRE(info.ndim == static_cast<int>(e.shape.size()));
        for (int d = 0; d < info.ndim; ++d) CHECK(info.shape[d] == e.shape[static_cast<size_t>(d)]);
    }
    dann_model_info info{};
    REQUIRE(dann_model_get_info(m.get(), &info) == DANN_OK);
    CHECK(info.in_channels == kMlpIn);
    CHECK(info.in_height == 1);
    CHECK(info.in_width == 1);
    CHECK(info.num_classes == kMlpClasses);
    CHECK(info.feature_size == kMlpHidden);
}

TEST_CASE("param_get after param_set returns exactly the values set") {
    Model m = make_mnist();
    for (size_t i = 0; i < dann_model_param_count(m.get()); ++i) {
        const dann_param_info info = param_info(m.get(), i);
        INFO(info.name);
        std::vector<float> v = param_values(m.get(), i);
        for (size_t k = 0; k < v.size(); ++k) v[k] = v[k] * 1.5f + 1e-3f * static_cast<float>(k % 7) - 0.25f;
        v[0] = std::numeric_limits<float>::denorm_min();
        v[v.size() - 1] = -std::numeric_limits<float>::max();
        REQUIRE(dann_model_param_set(m.get(), i, v.data(), v.size()) == DANN_OK);
        CHECK(param_values(m.get(), i) == v);
    }
}

TEST_CASE("a rejected param_set leaves every parameter unchanged") {
    Model m = make_mlp();
    const Params before = all_params(m.get());
    const size_t w = param_index(m.get(), "features.0.weight");
    const size_t numel = param_info(m.get(), w).numel;
    std::vector<float> v(numel + 1, 0.5f);

    EXPECT_FAIL(dann_model_param_set(m.get(), w, v.data(), numel - 1), SHAPE, "count", "numel", "size",
                "element", "float");
    EXPECT_FAIL(dann_model_param_set(m.get(), w, v.data(), numel + 1), SHAPE, "count", "numel", "size",
                "element", "float");
    EXPECT_FAIL(dann_model_param_get(m.get(), w, v.data(), numel - 1), SHAPE, "count", "numel", "size",
                "element", "float");
    EXPECT_FAIL(dann_model_param_set(m.get(), w, nullptr, numel), ARG, "null", "data");

    v[numel / 2] = std::nanf("");
    EXPECT_FAIL(dann_model_param_set(m.get(), w, v.data(), numel), NUMERIC, "nan", "inf", "finite");
    v[numel / 2] = 0.5f;
    v[numel - 1] = -std::numeric_limits<float>::infinity();
    EXPECT_FAIL(dann_model_param_set(m.get(), w, v.data(), numel), NUMERIC, "nan", "inf", "finite");

    CHECK(changed_param(m.get(), before) == "");
}

// ===========================================================================
// Initialisation

TEST_CASE("initial weights and biases lie within plus or minus 1/sqrt(fan_in) and are spread out") {
    Model m = make_mnist(123);
    for (size_t i = 0; i < dann_model_param_count(m.get()); ++i) {
        const dann_param_info info = param_info(m.get(), i);
        INFO(info.name);
        const std::string name = info.name;
        const std::string prefix = name.substr(0, name.rfind('.') + 1);
        const dann_param_info weight = param_info(m.get(), param_index(m.get(), (prefix + "weight").c_str()));
        int64_t fan_in = 1;
        for (int d = 1; d < weight.ndim; ++d) fan_in *= weight.shape[d];
        const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
        const std::vector<float> v = param_values(m.get(), i);
        const double lo = static_cast<double>(*std::min_element(v.begin(), v.end()));
        const double hi = static_cast<double>(*std::max_element(v.begin(), v.end()));
        INFO("fan_in ", fan_in, ", bound ", bound, ", range [", lo, ", ", hi, "]");
        CHECK(lo >= -bound * (1 + 1e-6));
        CHECK(hi <= bound * (1 + 1e-6));
        if (v.size() >= 10) CHECK(lo < hi);
        if (v.size() >= 100) {
            // A uniform draw over the whole interval, not a narrower one.
            CHECK(lo < -0.8 * bound);
            CHECK(hi > 0.8 * bound);
        }
    }
}

TEST_CASE("the same seed gives identical weights and a different seed different ones") {
    Model a = make_mnist(7), b = make_mnist(7), c = make_mnist(8);
    const Params pa = all_params(a.get()), pb = all_params(b.get()), pc = all_params(c.get());
    REQUIRE(pa.size() == pc.size());
    CHECK(pa == pb);
    for (size_t i = 0; i < pa.size(); ++i) {
        INFO(param_info(a.get(), i).name);
        if (pa[i].size() > 1) CHECK(pa[i] != pc[i]);
    }
    Model m1 = make_mlp(7), m2 = make_mlp(7), m3 = make_mlp(9);
    CHECK(all_params(m1.get()) == all_params(m2.get()));
    CHECK(all_params(m1.get()) != all_params(m3.get()));
}

// ===========================================================================
// Prediction

TEST_CASE("predicted class probabilities lie in [0, 1] and each row sums to 1") {
    Model m = make_mnist();
    Context ctx = make_context(m.get());
    const size_t n = 3;
    const std::vector<float> x = random_floats(n * kImage, 11, -0.5f, 1.0f);
    std::vector<float> domain;
    const std::vector<float> probs =
        predict(ctx.get(), dann_batch_f32_nchw(x.data(), n, kC, kH, kW), kClasses, &domain);
    for (size_t i = 0; i < n; ++i) {
        double sum = 0.0;
        for (int k = 0; k < kClasses; ++k) {
            const float p = probs[i * kClasses + static_cast<size_t>(k)];
            CHECK(p >= 0.0f);
            CHECK(p <= 1.0f);
            sum += static_cast<double>(p);
        }
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
        INFO("domain prob ", domain[i]);
        CHECK(domain[i] > 0.0f);
        CHECK(domain[i] < 1.0f);
    }
    // Different images, different outputs.
    CHECK(probs[0] != probs[kClasses]);
}

TEST_CASE("float NCHW, float NHWC and uint8 HWC inputs give the same probabilities") {
    Model m = make_mnist(5);
    const float mean[3] = {0.1f, 0.45f, 0.3f};
    const float scale = 1.0f / 255.0f;
    REQUIRE(dann_model_set_input_norm(m.get(), scale, mean, kC) == DANN_OK);
    Context ctx = make_context(m.get());

    const size_t n = 2;
    const std::vector<uint8_t> pixels = random_bytes(n * kImage, 21);
    std::vector<float> nchw(n * kImage), nhwc(n * kImage);
    for (size_t i = 0; i < n; ++i)
        for (int y = 0; y < kH; ++y)
            for (int x = 0; x < kW; ++x)
                for (int c = 0; c < kC; ++c) {
                    const size_t hwc = i * kImage + (static_cast<size_t>(y) * kW + x) * kC + c;
                    const size_t chw = i * kImage + (static_cast<size_t>(c) * kH + y) * kW + x;
                    const float v = static_cast<float>(pixels[hwc]) * scale - mean[c];
                    nhwc[hwc] = v;
                    nchw[chw] = v;
                }

    std::vector<float> d_u8, d_nchw, d_nhwc;
    const std::vector<float> p_u8 =
        predict(ctx.get(), dann_batch_u8_hwc(pixels.data(), n, kH, kW, kC), kClasses, &d_u8);
    const std::vector<float> p_nchw =
        predict(ctx.get(), dann_batch_f32_nchw(nchw.data(), n, kC, kH, kW), kClasses, &d_nchw);
    const std::vector<float> p_nhwc =
        predict(ctx.get(), dann_batch_f32_nhwc(nhwc.data(), n, kH, kW, kC), kClasses, &d_nhwc);
    CHECK(max_abs_diff(p_nchw, p_nhwc) <= 1e-5f);
    CHECK(max_abs_diff(p_nchw, p_u8) <= 1e-5f);
    CHECK(max_abs_diff(d_nchw, d_nhwc) <= 1e-5f);
    CHECK(max_abs_diff(d_nchw, d_u8) <= 1e-5f);
}

TEST_CASE("a grayscale batch gives the same result as that channel replicated to three") {
    Model m = make_mnist(6);
    const float mean[3] = {0.2f, 0.5f, 0.35f};
    REQUIRE(dann_model_set_input_norm(m.get(), 1.0f / 255.0f, mean, kC) == DANN_OK);
    Context ctx = make_context(m.get());
    const size_t n = 2, plane = static_cast<size_t>(kH) * kW;

    SUBCASE("float NCHW") {
        const std::vector<float> gray = random_floats(n * plane, 31);
        std::vector<float> rgb(n * kImage);
        for (size_t i = 0; i < n; ++i)
            for (int c = 0; c < kC; ++c)
                std::copy_n(gray.begin() + static_cast<std::ptrdiff_t>(i * plane), plane,
                            rgb.begin() + static_cast<std::ptrdiff_t>(i * kImage + c * plane));
        std::vector<float> d1, d3;
        const auto p1 = predict(ctx.get(), dann_batch_f32_nchw(gray.data(), n, 1, kH, kW), kClasses, &d1);
        const auto p3 = predict(ctx.get(), dann_batch_f32_nchw(rgb.data(), n, kC, kH, kW), kClasses, &d3);
        CHECK(max_abs_diff(p1, p3) <= 1e-5f);
        CHECK(max_abs_diff(d1, d3) <= 1e-5f);
    }
    SUBCASE("float NHWC") {
        const std::vector<float> gray = random_floats(n * plane, 32);
        std::vector<float> rgb(n * kImage);
        for (size_t i = 0; i < n * plane; ++i)
            for (int c = 0; c < kC; ++c) rgb[i * kC + static_cast<size_t>(c)] = gray[i];
        const auto p1 = predict(ctx.get(), dann_batch_f32_nhwc(gray.data(), n, kH, kW, 1), kClasses);
        const auto p3 = predict(ctx.get(), dann_batch_f32_nhwc(rgb.data(), n, kH, kW, kC), kClasses);
        CHECK(max_abs_diff(p1, p3) <= 1e-5f);
    }
    SUBCASE("uint8 HWC, normalised with each channel's own mean") {
        const std::vector<uint8_t> gray = random_bytes(n * plane, 33);
        std::vector<uint8_t> rgb(n * kImage);
        for (size_t i = 0; i < n * plane; ++i)
            for (int c = 0; c < kC; ++c) rgb[i * kC + static_cast<size_t>(c)] = gray[i];
        std::vector<float> d1, d3;
        const auto p1 = predict(ctx.get(), dann_batch_u8_hwc(gray.data(), n, kH, kW, 1), kClasses, &d1);
        const auto p3 = predict(ctx.get(), dann_batch_u8_hwc(rgb.data(), n, kH, kW, kC), kClasses, &d3);
        CHECK(max_abs_diff(p1, p3) <= 1e-5f);
        CHECK(max_abs_diff(d1, d3) <= 1e-5f);
    }
}

TEST_CASE("dann_context_create and dann_context_set_domain reject bad arguments") {
    Model m = make_mlp();
    dann_context *c = garbage_handle<dann_context>();
    EXPECT_FAIL(dann_context_create(nullptr, &c), ARG, "null", "model");
    CHECK(c == nullptr);
    EXPECT_FAIL(dann_context_create(m.get(), nullptr), ARG, "null", "out");

    Context ctx = make_context(m.get());
    EXPECT_FAIL(dann_context_set_domain(nullptr, DANN_DOMAIN_SOURCE), ARG, "null", "ctx", "context");
    EXPECT_FAIL(dann_context_set_domain(ctx.get(), unknown_enum<dann_domain>(2)), ARG, "domain");
    CHECK(dann_context_set_domain(ctx.get(), DANN_DOMAIN_SOURCE) == DANN_OK);
    CHECK(dann_context_set_domain(ctx.get(), DANN_DOMAIN_TARGET) == DANN_OK);
}

TEST_CASE("dann_predict rejects NULL pointers, wrong shapes, small buffers and NaN or Inf input") {
    Model m = make_mnist();
    Context ctx = make_context(m.get());
    const size_t n = 2;
    std::vector<float> x = random_floats(n * kImage, 41);
    std::vector<float> probs(n * kClasses), domain(n);
    const dann_batch good = dann_batch_f32_nchw(x.data(), n, kC, kH, kW);

    EXPECT_FAIL(dann_predict(nullptr, &good, probs.data(), probs.size(), nullptr, 0), ARG, "null", "ctx",
                "context");
    EXPECT_FAIL(dann_predict(ctx.get(), nullptr, probs.data(), probs.size(), nullptr, 0), ARG, "null",
                "batch");
    EXPECT_FAIL(dann_predict(ctx.get(), &good, nullptr, probs.size(), nullptr, 0), ARG, "null", "probs");
    {
        dann_batch b = good;
        b.data = nullptr;
        EXPECT_FAIL(dann_predict(ctx.get(), &b, probs.data(), probs.size(), nullptr, 0), ARG, "null", "data");
    }
    {
        dann_batch b = good;
        b.format = unknown_enum<dann_input_format>(9);
        EXPECT_FAIL(dann_predict(ctx.get(), &b, probs.data(), probs.size(), nullptr, 0), ARG, "format");
    }
    EXPECT_FAIL(dann_predict(ctx.get(), &good, probs.data(), probs.size() - 1, nullptr, 0), SHAPE, "probs",
                "count");
    EXPECT_FAIL(dann_predict(ctx.get(), &good, probs.data(), probs.size(), domain.data(), n - 1), SHAPE,
                "domain", "count");
    {
        dann_batch b = good;
        b.n = 0;
        EXPECT_FAIL(dann_predict(ctx.get(), &b, probs.data(), probs.size(), nullptr, 0), ARG | SHAPE, "empty",
                    "zero", "n =", "n=", "size", "batch", "count", "sample");
    }
    {
        const dann_batch b = dann_batch_f32_nchw(x.data(), n, kC, kH - 1, kW);
        EXPECT_FAIL(dann_predict(ctx.get(), &b, probs.data(), probs.size(), nullptr, 0), SHAPE, "height", "image", "size");
    }
    {
        const dann_batch b = dann_batch_f32_nhwc(x.data(), n, kH, kW + 4, kC);
        EXPECT_FAIL(dann_predict(ctx.get(), &b, probs.data(), probs.size(), nullptr, 0), SHAPE, "width", "image", "size");
    }
    for (int channels : {2, 4, 0, -1}) {
        INFO("channels ", channels);
        const dann_batch b = dann_batch_f32_nchw(x.data(), 1, channels, kH, kW);
        EXPECT_FAIL(dann_predict(ctx.get(), &b, probs.data(), probs.size(), nullptr, 0), ARG | SHAPE, "channel");
    }
    x[kImage + 5] = std::nanf("");
    EXPECT_FAIL(dann_predict(ctx.get(), &good, probs.data(), probs.size(), nullptr, 0), NUMERIC, "nan", "inf",
                "finite");
    x[kImage + 5] = 0.0f;
    x[7] = std::numeric_limits<float>::infinity();
    const dann_batch nhwc = dann_batch_f32_nhwc(x.data(), n, kH, kW, kC);
    EXPECT_FAIL(dann_predict(ctx.get(), &nhwc, probs.data(), probs.size(), nullptr, 0), NUMERIC, "nan", "inf",
                "finite");
    x[7] = 0.0f;

    // The context still works after all those rejections.
    const auto p = predict(ctx.get(), good, kClasses);
    CHECK(std::isfinite(p[0]));
}

TEST_CASE("one context predicts several batch sizes in a row with the same per-sample results") {
    Model m = make_mnist(9);
    const size_t max_n = 4;
    const std::vector<float> x = random_floats(max_n * kImage, 51);

    std::vector<std::vector<float>> single(max_n);
    {
        Context ref = make_context(m.get());
        for (size_t i = 0; i < max_n; ++i)
            single[i] = predict(ref.get(), dann_batch_f32_nchw(x.data() + i * kImage, 1, kC, kH, kW), kClasses);
    }
    Context ctx = make_context(m.get());
    for (size_t n : {size_t(4), size_t(1), size_t(3), size_t(2), size_t(4), size_t(1)}) {
        INFO("batch of ", n);
        const std::vector<float> probs = predict(ctx.get(), dann_batch_f32_nchw(x.data(), n, kC, kH, kW), kClasses);
        for (size_t i = 0; i < n; ++i) {
            const std::vector<float> row(probs.begin() + static_cast<std::ptrdiff_t>(i * kClasses),
                                         probs.begin() + static_cast<std::ptrdiff_t>((i + 1) * kClasses));
            CHECK(max_abs_diff(row, single[i]) <= 1e-5f);
        }
    }
}

TEST_CASE("two contexts predicting at once on two threads match a single thread exactly") {
    Model m = make_mnist(10);
    const size_t n = 2;
    const std::vector<float> xa = random_floats(n * kImage, 61), xb = random_floats(n * kImage, 62);
    std::vector<float> ref_a, ref_b, dom_a, dom_b;
    {
        Context ctx = make_context(m.get());
        ref_a = predict(ctx.get(), dann_batch_f32_nchw(xa.data(), n, kC, kH, kW), kClasses, &dom_a);
        ref_b = predict(ctx.get(), dann_batch_f32_nchw(xb.data(), n, kC, kH, kW), kClasses, &dom_b);
    }
    Context ca = make_context(m.get()), cb = make_context(m.get());
    constexpr int kRounds = 4;
    std::atomic<int> ready{0};
    struct Outcome {
        std::vector<std::vector<float>> probs, domain;
        std::vector<dann_status> status;
    } out_a, out_b;
    auto worker = [&](dann_context *ctx, const std::vector<float> *x, Outcome *out) {
        ready.fetch_add(1);
        while (ready.load() < 2) std::this_thread::yield();
        for (int r = 0; r < kRounds; ++r) {
            std::vector<float> probs(n * kClasses), domain(n);
            const dann_batch b = dann_batch_f32_nchw(x->data(), n, kC, kH, kW);
            out->status.push_back(dann_predict(ctx, &b, probs.data(), probs.size(), domain.data(), n));
            out->probs.push_back(probs);
            out->domain.push_back(domain);
        }
    };
    std::thread ta(worker, ca.get(), &xa, &out_a), tb(worker, cb.get(), &xb, &out_b);
    ta.join();
    tb.join();
    for (int r = 0; r < kRounds; ++r) {
        INFO("round ", r);
        CHECK(out_a.status[static_cast<size_t>(r)] == DANN_OK);
        CHECK(out_b.status[static_cast<size_t>(r)] == DANN_OK);
        CHECK(out_a.probs[static_cast<size_t>(r)] == ref_a);
        CHECK(out_b.probs[static_cast<size_t>(r)] == ref_b);
        CHECK(out_a.domain[static_cast<size_t>(r)] == dom_a);
        CHECK(out_b.domain[static_cast<size_t>(r)] == dom_b);
    }
}

TEST_CASE("predictions with dann_model_set_threads(1) equal those with the default") {
    Model m = make_mnist(12);
    const std::vector<float> x = random_floats(2 * kImage, 71);
    const dann_batch b = dann_batch_f32_nchw(x.data(), 2, kC, kH, kW);
    Context c0 = make_context(m.get());
    const auto p0 = predict(c0.get(), b, kClasses);
    REQUIRE(dann_model_set_threads(m.get(), 1) == DANN_OK);
    Context c1 = make_context(m.get());
    const auto p1 = predict(c1.get(), b, kClasses);
    CHECK(max_abs_diff(p0, p1) <= 1e-6f);
}

// ===========================================================================
// Training

TEST_CASE("dann_trainer_create rejects NULL arguments and sets the out-pointer to NULL") {
    Model m = make_mlp();
    const dann_train_params params = dann_train_params_default();
    dann_trainer *t = garbage_handle<dann_trainer>();
    EXPECT_FAIL(dann_trainer_create(nullptr, &params, &t), ARG, "null", "model");
    CHECK(t == nullptr);
    EXPECT_FAIL(dann_trainer_create(m.get(), &params, nullptr), ARG, "null", "out");
    t = garbage_handle<dann_trainer>();
    EXPECT_FAIL(dann_trainer_create(m.get(), nullptr, &t), ARG, "null", "params");
    CHECK(t == nullptr);

    dann_train_params bad = params;
    bad.momentum = std::nanf("");
    t = garbage_handle<dann_trainer>();
    EXPECT_FAIL(dann_trainer_create(m.get(), &bad, &t), ARG | NUMERIC, "momentum");
    CHECK(t == nullptr);
    bad = params;
    bad.weight_decay = -1.0f;
    t = garbage_handle<dann_trainer>();
    EXPECT_FAIL(dann_trainer_create(m.get(), &bad, &t), ARG, "weight_decay", "weight decay");
    CHECK(t == nullptr);
}

TEST_CASE("a DANN step at initialisation returns finite losses and a domain loss near ln 2") {
    Model m = make_mnist(13);
    Trainer t = make_trainer(m.get());
    const size_t n = 2;
    const std::vector<float> src = random_floats(n * kImage, 81), tgt = random_floats(n * kImage, 82);
    const int32_t labels[n] = {3, 7};
    const dann_batch s = dann_batch_f32_nchw(src.data(), n, kC, kH, kW);
    const dann_batch g = dann_batch_f32_nchw(tgt.data(), n, kC, kH, kW);
    const Params before = all_params(m.get());

    dann_step_result r{-1.0f, -1.0f, -1.0f, -1.0f};
    const dann_status st = dann_trainer_step(t.get(), &s, labels, &g, 0.1f, 0.01f, &r);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    INFO("label loss ", r.label_loss, ", domain loss ", r.domain_loss, ", domain accuracy ", r.domain_accuracy);
    CHECK(all_finite(r));
    CHECK(static_cast<double>(r.label_loss) == doctest::Approx(std::log(10.0)).epsilon(0.25));
    CHECK(std::fabs(r.domain_loss - std::log(2.0f)) < 0.1f);
    CHECK(r.domain_accuracy >= 0.0f);
    CHECK(r.domain_accuracy <= 1.0f);
    // Four samples: the accuracy is a multiple of 1/4.
    CHECK(std::fabs(r.domain_accuracy * 4.0f - std::round(r.domain_accuracy * 4.0f)) < 1e-5f);

    // Every trainable parameter moved.
    const std::set<std::string> changed = changed_params(m.get(), before);
    CHECK(changed.size() == before.size());
}

TEST_CASE("a source-only step leaves the domain head unchanged and reports domain loss 0") {
    Model m = make_mlp(14);
    Trainer t = make_trainer(m.get());
    const size_t n = 4;
    const std::vector<float> src = random_floats(n * kMlpIn, 91, -1.0f, 1.0f);
    const int32_t labels[n] = {0, 1, 2, 1};
    const dann_batch s = dann_batch_f32_nchw(src.data(), n, kMlpIn, 1, 1);
    const Params before = all_params(m.get());

    dann_step_result r{-1.0f, -1.0f, -1.0f, -1.0f};
    const dann_status st = dann_trainer_step(t.get(), &s, labels, nullptr, 1.0f, 0.1f, &r);
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
    CHECK(std::isfinite(r.label_loss));
    CHECK(r.label_loss > 0.0f);
    CHECK(r.domain_loss == 0.0f);
    CHECK(r.domain_accuracy == 0.0f);
    const std::set<std::string> changed = changed_params(m.get(), before);
    CHECK(changed.count("features.0.weight") == 1);
    CHECK(changed.count("label_head.0.weight") == 1);
    CHECK(changed.count("domain_head.0.weight") == 0);
    CHECK(changed.count("domain_head.0.bias") == 0);

    // A second source-only step after momentum has built up: still untouched.
    REQUIRE(dann_trainer_step(t.get(), &s, labels, nullptr, 1.0f, 0.1f, &r) == DANN_OK);
    CHECK(param_values(m.get(), "domain_head.0.weight") == before[param_index(m.get(), "domain_head.0.weight")]);
}

TEST_CASE("a rejected trainer step leaves the model unchanged and names the problem") {
    Model m = make_mnist(15);
    Trainer t = make_trainer(m.get());
    const size_t n = 2;
    std::vector<float> src = random_floats(n * kImage, 101), tgt = random_floats(n * kImage, 102);
    int32_t labels[n] = {1, 2};
    const dann_batch s = dann_batch_f32_nchw(src.data(), n, kC, kH, kW);
    const dann_batch g = dann_batch_f32_nchw(tgt.data(), n, kC, kH, kW);
    dann_step_result r{};
    // One good step first, so the optimizer has momentum to (not) apply.
    REQUIRE(dann_trainer_step(t.get(), &s, labels, &g, 0.5f, 0.01f, &r) == DANN_OK);
    const Params before = all_params(m.get());

    SUBCASE("NULL trainer, source, labels or data") {
        EXPECT_FAIL(dann_trainer_step(nullptr, &s, labels, &g, 0.5f, 0.01f, &r), ARG, "null", "trainer");
        EXPECT_FAIL(dann_trainer_step(t.get(), nullptr, labels, &g, 0.5f, 0.01f, &r), ARG, "null", "source");
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, nullptr, &g, 0.5f, 0.01f, &r), ARG, "null", "labels");
        dann_batch b = s;
        b.data = nullptr;
        EXPECT_FAIL(dann_trainer_step(t.get(), &b, labels, &g, 0.5f, 0.01f, &r), ARG, "null", "data", "source");
        b = g;
        b.data = nullptr;
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &b, 0.5f, 0.01f, &r), ARG, "null", "data", "target");
    }
    SUBCASE("labels out of range") {
        labels[1] = kClasses;
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &g, 0.5f, 0.01f, &r), ARG, "label");
        labels[1] = -1;
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &g, 0.5f, 0.01f, &r), ARG, "label");
    }
    SUBCASE("NaN or Inf in the source or target") {
        src[3] = std::nanf("");
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &g, 0.5f, 0.01f, &r), NUMERIC, "nan", "inf", "finite");
        src[3] = 0.0f;
        tgt[kImage + 9] = -std::numeric_limits<float>::infinity();
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &g, 0.5f, 0.01f, &r), NUMERIC, "nan", "inf", "finite");
        tgt[kImage + 9] = 0.0f;
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, nullptr, 0.5f, std::nanf(""), &r), ARG | NUMERIC,
                    "nan", "inf", "finite", "lr", "learning rate");
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &g, std::numeric_limits<float>::infinity(), 0.01f, &r),
                    ARG | NUMERIC, "nan", "inf", "finite", "lambda");
    }
    SUBCASE("an empty batch") {
        dann_batch b = s;
        b.n = 0;
        EXPECT_FAIL(dann_trainer_step(t.get(), &b, labels, &g, 0.5f, 0.01f, &r), ARG | SHAPE, "empty", "zero",
                    "n =", "n=", "size", "batch", "count", "sample");
        b = g;
        b.n = 0;
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &b, 0.5f, 0.01f, &r), ARG | SHAPE, "empty", "zero",
                    "n =", "n=", "size", "batch", "count", "sample");
    }
    SUBCASE("a height, width or channel count that does not match the model") {
        const dann_batch tall = dann_batch_f32_nchw(src.data(), 1, kC, kH + 1, kW);
        EXPECT_FAIL(dann_trainer_step(t.get(), &tall, labels, &g, 0.5f, 0.01f, &r), SHAPE, "height", "image", "size");
        const dann_batch narrow = dann_batch_f32_nhwc(tgt.data(), 1, kH, kW - 2, kC);
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &narrow, 0.5f, 0.01f, &r), SHAPE, "width", "image", "size");
        const dann_batch two = dann_batch_f32_nchw(src.data(), 1, 2, kH, kW);
        EXPECT_FAIL(dann_trainer_step(t.get(), &two, labels, &g, 0.5f, 0.01f, &r), ARG | SHAPE, "channel");
        const dann_batch four = dann_batch_u8_hwc(reinterpret_cast<const uint8_t *>(tgt.data()), 1, kH, kW, 4);
        EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &four, 0.5f, 0.01f, &r), ARG | SHAPE, "channel");
    }
    SUBCASE("an unknown input format") {
        dann_batch b = s;
        b.format = unknown_enum<dann_input_format>(-3);
        EXPECT_FAIL(dann_trainer_step(t.get(), &b, labels, &g, 0.5f, 0.01f, &r), ARG, "format");
    }
    CHECK(changed_param(m.get(), before) == "");
}

TEST_CASE("a step whose loss is not finite is rejected and not applied") {
    Model m = make_mlp(16);
    const size_t w = param_index(m.get(), "label_head.0.weight");
    std::vector<float> huge(param_info(m.get(), w).numel);
    // Rows of +-3e38: the logits overflow to +Inf and -Inf, the softmax to NaN.
    for (size_t i = 0; i < huge.size(); ++i) huge[i] = ((i / kMlpHidden) % 2 ? -1.0f : 1.0f) * 3e38f;
    REQUIRE(dann_model_param_set(m.get(), w, huge.data(), huge.size()) == DANN_OK);
    Trainer t = make_trainer(m.get());
    const Params before = all_params(m.get());
    const std::vector<float> src = random_floats(2 * kMlpIn, 111, -1.0f, 1.0f);
    const int32_t labels[2] = {0, 2};
    const dann_batch s = dann_batch_f32_nchw(src.data(), 2, kMlpIn, 1, 1);
    dann_step_result r{};
    EXPECT_FAIL(dann_trainer_step(t.get(), &s, labels, &s, 1.0f, 0.1f, &r), NUMERIC, "nan", "inf", "finite",
                "loss");
    CHECK(changed_param(m.get(), before) == "");
}

TEST_CASE("a rejected step does not disturb the optimizer state of the next one") {
    Model a = make_mlp(17), b = make_mlp(17);
    Trainer ta = make_trainer(a.get()), tb = make_trainer(b.get());
    const size_t n = 4;
    const std::vector<float> src = random_floats(n * kMlpIn, 121, -1.0f, 1.0f);
    const std::vector<float> tgt = random_floats(n * kMlpIn, 122, -1.0f, 1.0f);
    const int32_t labels[n] = {2, 0, 1, 1};
    int32_t bad_labels[n] = {2, 0, 7, 1};
    const dann_batch s = dann_batch_f32_nchw(src.data(), n, kMlpIn, 1, 1);
    const dann_batch g = dann_batch_f32_nchw(tgt.data(), n, kMlpIn, 1, 1);
    dann_step_result ra{}, rb{};
    REQUIRE(dann_trainer_step(ta.get(), &s, labels, &g, 0.3f, 0.05f, &ra) == DANN_OK);
    REQUIRE(dann_trainer_step(tb.get(), &s, labels, &g, 0.3f, 0.05f, &rb) == DANN_OK);
    CHECK(dann_trainer_step(ta.get(), &s, bad_labels, &g, 0.3f, 0.05f, &ra) != DANN_OK);
    REQUIRE(dann_trainer_step(ta.get(), &s, labels, &g, 0.3f, 0.05f, &ra) == DANN_OK);
    REQUIRE(dann_trainer_step(tb.get(), &s, labels, &g, 0.3f, 0.05f, &rb) == DANN_OK);
    CHECK(all_params(a.get()) == all_params(b.get()));
    CHECK(ra.label_loss == rb.label_loss);
    CHECK(ra.domain_loss == rb.domain_loss);
}

TEST_CASE("one trainer steps several batch sizes in a row") {
    Model m = make_mlp(18);
    Trainer t = make_trainer(m.get());
    const std::vector<float> x = random_floats(8 * kMlpIn, 131, -1.0f, 1.0f);
    const int32_t labels[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    const size_t sizes[][2] = {{4, 4}, {2, 3}, {8, 1}, {4, 4}, {1, 0}};
    for (const auto &sz : sizes) {
        INFO("source ", sz[0], ", target ", sz[1]);
        const dann_batch s = dann_batch_f32_nchw(x.data(), sz[0], kMlpIn, 1, 1);
        const dann_batch g = dann_batch_f32_nchw(x.data() + kMlpIn, sz[1], kMlpIn, 1, 1);
        dann_step_result r{};
        const dann_status st = dann_trainer_step(t.get(), &s, labels, sz[1] ? &g : nullptr, 0.2f, 0.05f, &r);
        INFO(dann_last_error());
        CHECK(st == DANN_OK);
        CHECK(all_finite(r));
    }
    // The model still predicts afterwards.
    Context ctx = make_context(m.get());
    const auto p = predict(ctx.get(), dann_batch_f32_nchw(x.data(), 5, kMlpIn, 1, 1), kMlpClasses);
    CHECK(std::isfinite(p[0]));
}
