// Int8 inference (dann_context_quantize): a convolution and a dense layer
// against a scalar reference of the quantized arithmetic (tests/reference/
// int8.hpp), the MNIST network against its f32 predictions, weights that
// change after quantizing, and the refusals. Cases that need int8 dot
// products skip with a message where dann_precision_supported says no.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "api_handles.hpp"
#include "dann.h"
#include "layer_test_util.hpp"
#include "reference/int8.hpp"

namespace {

using dann_test::Context;
using dann_test::Model;

void require_ok(dann_status st) {
    INFO(dann_last_error());
    REQUIRE(st == DANN_OK);
}

bool int8_or_skip() {
    if (dann_precision_supported(DANN_PRECISION_INT8)) return true;
    MESSAGE("int8 inference is not supported on this CPU: skipped");
    return false;
}

Model create(const dann_layer_desc *features, size_t nf, const dann_layer_desc *label, size_t nl,
             int c, int h, int w) {
    const dann_layer_desc domain[] = {dann_layer_dense(1)};
    dann_model_desc d;
    std::memset(&d, 0, sizeof d);
    d.in_channels = c;
    d.in_height = h;
    d.in_width = w;
    d.features = features;
    d.n_features = nf;
    d.label_head = label;
    d.n_label_head = nl;
    d.domain_head = domain;
    d.n_domain_head = 1;
    dann_model *m = nullptr;
    require_ok(dann_model_create(&d, 5, &m));
    return Model(m);
}

Context context(const dann_model *m) {
    dann_context *c = nullptr;
    require_ok(dann_context_create(m, &c));
    return Context(c);
}

std::vector<float> param(const dann_model *m, const char *name) {
    size_t i = 0;
    require_ok(dann_model_param_find(m, name, &i));
    dann_param_info info;
    require_ok(dann_model_param_info(m, i, &info));
    std::vector<float> v(info.numel);
    require_ok(dann_model_param_get(m, i, v.data(), v.size()));
    return v;
}

void set_param(dann_model *m, const char *name, const std::vector<float> &v) {
    size_t i = 0;
    require_ok(dann_model_param_find(m, name, &i));
    require_ok(dann_model_param_set(m, i, v.data(), v.size()));
}

std::vector<float> features(dann_context *c, const dann_batch &b, size_t per_sample) {
    std::vector<float> f(b.n * per_sample);
    require_ok(dann_features(c, &b, f.data(), f.size()));
    return f;
}

// Compares outputs with the reference: equal up to the rounding of the f32
// steps after the exact integer sum (a few ulps), and reports how many match
// bit for bit.
void check_close(const std::vector<float> &got, const std::vector<float> &want) {
    REQUIRE(got.size() == want.size());
    size_t exact = 0, off = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] == want[i]) ++exact;
        const float tol = 4.0f * std::numeric_limits<float>::epsilon() *
                          std::max(1.0f, std::fabs(want[i]));
        if (!(std::fabs(got[i] - want[i]) <= tol)) {
            if (off++ < 5) MESSAGE("value " << i << ": " << got[i] << ", reference " << want[i]);
        }
    }
    MESSAGE(exact << " of " << got.size() << " values equal the reference bit for bit");
    CHECK(off == 0);
}

} // namespace

TEST_CASE("DANN_PRECISION_INT8 is for inference: a trainer refuses it, naming the precision") {
    CHECK(dann_precision_supported(DANN_PRECISION_INT8) >= 0);
    dann_model *m = nullptr;
    require_ok(dann_model_create_mlp(4, 6, 3, 1, &m));
    const Model owned(m);
    dann_train_params tp = dann_train_params_default();
    tp.precision = DANN_PRECISION_INT8;
    dann_trainer *t = nullptr;
    CHECK(dann_trainer_create(m, &tp, &t) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("precision") != std::string::npos);
    CHECK(t == nullptr);
}

TEST_CASE("An int8 convolution computes the quantized arithmetic of the reference") {
    if (!int8_or_skip()) return;
    // s8 source (the input has both signs), f32 output (no ReLU), padded.
    const int n = 3, c = 5, h = 7, w = 6, oc = 6;
    const dann_layer_desc feats[] = {dann_layer_conv2d(oc, 3, 1, 1)};
    const dann_layer_desc label[] = {dann_layer_dense(3)};
    Model m = create(feats, 1, label, 1, c, h, w);
    layer_test::Rng rng(11);
    const std::vector<float> x = layer_test::uniform_floats(size_t(n) * c * h * w, rng, -1.5f, 2.0f);
    const dann_batch b = dann_batch_f32_nchw(x.data(), n, c, h, w);
    Context ctx = context(m.get());
    require_ok(dann_context_quantize(ctx.get(), &b));
    const std::vector<float> got = features(ctx.get(), b, size_t(oc) * h * w);

    float lo = 0.0f, hi = 0.0f;
    ref::int8::range_of(x, lo, hi);
    const ref::int8::Quantized q = ref::int8::quantize(x, lo, hi);
    CHECK_FALSE(q.is_unsigned);
    const ref::int8::Weights wq =
        ref::int8::quantize_weights(param(m.get(), "features.0.weight"), oc);
    const ref::Conv2dShape s = ref::conv2d_shape({n, c, h, w}, oc, {3, 3, 1, 1, 1, 1});
    check_close(got, ref::int8::conv2d_forward(s, q, wq, param(m.get(), "features.0.bias"), 0.0f,
                                               false));
}

TEST_CASE("An int8 dense layer with a fused ReLU writes u8 at the scale of its calibrated "
          "output, as the reference computes") {
    if (!int8_or_skip()) return;
    const int n = 9, d = 20, units = 12;
    const dann_layer_desc feats[] = {dann_layer_dense(units), dann_layer_relu()};
    const dann_layer_desc label[] = {dann_layer_dense(3)};
    Model m = create(feats, 2, label, 1, d, 1, 1);
    layer_test::Rng rng(12);
    const std::vector<float> x = layer_test::uniform_floats(size_t(n) * d, rng, -1.0f, 1.0f);
    const dann_batch b = dann_batch_f32_nchw(x.data(), n, d, 1, 1);
    // The output range is what the f32 plan computes on the calibration batch.
    Context f32 = context(m.get());
    const std::vector<float> y32 = features(f32.get(), b, units);
    float out_lo = 0.0f, out_hi = 0.0f;
    ref::int8::range_of(y32, out_lo, out_hi);
    REQUIRE(out_hi > 0.0f);
    const float dst_scale = ref::int8::scale_for(0.0f, out_hi).scale;

    Context ctx = context(m.get());
    require_ok(dann_context_quantize(ctx.get(), &b));
    const std::vector<float> got = features(ctx.get(), b, units);

    float lo = 0.0f, hi = 0.0f;
    ref::int8::range_of(x, lo, hi);
    const ref::int8::Quantized q = ref::int8::quantize(x, lo, hi);
    const ref::int8::Weights wq =
        ref::int8::quantize_weights(param(m.get(), "features.0.weight"), units);
    const std::vector<float> u8 = ref::int8::dense_forward(
        ref::dense_shape({n, d}, units), q, wq, param(m.get(), "features.0.bias"), dst_scale, true);
    // The features leave the int8 plan as f32: q * (1 / dst_scale).
    std::vector<float> want(u8.size());
    for (size_t i = 0; i < u8.size(); ++i) want[i] = u8[i] * (1.0f / dst_scale);
    check_close(got, want);
}

namespace {

constexpr int kSide = 28, kChannels = 3, kClasses = 10;

// Images of the MNIST network's shape with a learnable structure: class k is
// a bright bar (horizontal for even k, vertical for odd k) at a place that
// depends on k, in a random colour, over a darker noisy background.
struct Structured {
    std::vector<uint8_t> pixels;
    std::vector<int32_t> labels;
    size_t n;
    Structured(size_t count, uint64_t seed) : pixels(count * kSide * kSide * kChannels), labels(count), n(count) {
        layer_test::Rng rng(seed);
        for (size_t i = 0; i < n; ++i) {
            const int k = static_cast<int>(rng.below(kClasses));
            labels[i] = k;
            const int at = 3 + (k / 2) * 5 + static_cast<int>(rng.below(2));
            uint8_t colour[kChannels];
            for (auto &v : colour) v = static_cast<uint8_t>(150 + rng.below(106));
            uint8_t *img = pixels.data() + i * kSide * kSide * kChannels;
            for (int y = 0; y < kSide; ++y)
                for (int x = 0; x < kSide; ++x) {
                    const bool bar = (k % 2 == 0) ? std::abs(y - at) <= 1 : std::abs(x - at) <= 1;
                    for (int ch = 0; ch < kChannels; ++ch)
                        img[(y * kSide + x) * kChannels + ch] =
                            bar ? colour[ch] : static_cast<uint8_t>(rng.below(90));
                }
        }
    }
    dann_batch batch() const { return dann_batch_u8_hwc(pixels.data(), n, kSide, kSide, kChannels); }
};

// The paper's MNIST network after a few source-only steps on structured
// images, so that its predictions are confident and mean something.
Model trained_mnist() {
    dann_model *m = nullptr;
    require_ok(dann_model_create_preset(DANN_PRESET_MNIST, 42, &m));
    Model model(m);
    dann_train_params tp = dann_train_params_default();
    dann_trainer *t = nullptr;
    require_ok(dann_trainer_create(m, &tp, &t));
    const dann_test::Trainer trainer(t);
    for (int step = 0; step < 45; ++step) {
        const Structured s(32, 1000 + static_cast<uint64_t>(step));
        const dann_batch b = s.batch();
        dann_step_result r;
        require_ok(dann_trainer_step(t, &b, s.labels.data(), nullptr, 0.0f, 0.05f, &r));
    }
    return model;
}

int argmax(const float *p) { return static_cast<int>(std::max_element(p, p + kClasses) - p); }

} // namespace

TEST_CASE("On the MNIST network int8 predictions agree with f32 on at least 97% of a "
          "structured batch, probabilities within 0.1 (0.005 on average)") {
    if (!int8_or_skip()) return;
    Model m = trained_mnist();
    const Structured calibration(128, 7), test(256, 8);
    const dann_batch cb = calibration.batch(), tb = test.batch();
    Context f32 = context(m.get()), i8 = context(m.get());
    require_ok(dann_context_quantize(i8.get(), &cb));
    std::vector<float> p32(test.n * kClasses), p8(test.n * kClasses), d32(test.n), d8(test.n);
    require_ok(dann_predict(f32.get(), &tb, p32.data(), p32.size(), d32.data(), d32.size()));
    require_ok(dann_predict(i8.get(), &tb, p8.data(), p8.size(), d8.data(), d8.size()));
    size_t agree = 0, right32 = 0, right8 = 0;
    double max_dp = 0.0, sum_dp = 0.0, max_dd = 0.0;
    for (size_t i = 0; i < test.n; ++i) {
        const int a = argmax(&p32[i * kClasses]), b = argmax(&p8[i * kClasses]);
        agree += a == b;
        right32 += a == test.labels[i];
        right8 += b == test.labels[i];
        for (int k = 0; k < kClasses; ++k) {
            const double dp = std::fabs(double(p32[i * kClasses + k]) - double(p8[i * kClasses + k]));
            max_dp = std::max(max_dp, dp);
            sum_dp += dp;
        }
        max_dd = std::max(max_dd, std::fabs(double(d32[i]) - double(d8[i])));
    }
    MESSAGE("argmax agreement " << agree << "/" << test.n << "; accuracy f32 " << right32
            << ", int8 " << right8 << "; |p8 - p32| max " << max_dp << ", mean "
            << sum_dp / double(test.n * kClasses) << "; domain P(target) max diff " << max_dd);
    CHECK(right32 >= test.n / 2); // the training took (chance is 1 in 10)
    CHECK(agree * 100 >= test.n * 97);
    CHECK(max_dp <= 0.1);
    CHECK(sum_dp / double(test.n * kClasses) <= 0.005);
    CHECK(max_dd <= 0.05);

    // Features: the quantization error relative to their size (root mean
    // squares over the batch).
    const size_t fs = 768;
    const std::vector<float> f32f = features(f32.get(), tb, fs), f8 = features(i8.get(), tb, fs);
    double sum_f = 0.0, sum_err = 0.0, max_err = 0.0;
    for (size_t i = 0; i < f32f.size(); ++i) {
        const double e = double(f32f[i]) - double(f8[i]);
        sum_f += double(f32f[i]) * double(f32f[i]);
        sum_err += e * e;
        max_err = std::max(max_err, std::fabs(e));
    }
    const double rel = std::sqrt(sum_err / sum_f);
    MESSAGE("features: relative RMS error " << rel << ", max |f8 - f32| " << max_err);
    CHECK(rel <= 0.02);
}

TEST_CASE("New weights after quantizing are quantized again with the calibrated activation "
          "scales") {
    if (!int8_or_skip()) return;
    dann_model *raw = nullptr;
    require_ok(dann_model_create_preset(DANN_PRESET_MNIST, 3, &raw));
    Model a(raw);
    dann_model *raw_b = nullptr;
    require_ok(dann_model_clone(a.get(), &raw_b));
    Model b(raw_b);
    const Structured calibration(64, 21), test(16, 22);
    const dann_batch cb = calibration.batch(), tb = test.batch();
    // Both contexts calibrate on the same weights; a's plans are built
    // before the change, b's after it.
    Context ca = context(a.get()), cb_ctx = context(b.get());
    require_ok(dann_context_quantize(ca.get(), &cb));
    require_ok(dann_context_quantize(cb_ctx.get(), &cb));
    std::vector<float> before(test.n * kClasses), pa(before.size()), pb(before.size());
    require_ok(dann_predict(ca.get(), &tb, before.data(), before.size(), nullptr, 0));

    std::vector<float> w = param(a.get(), "label_head.4.weight");
    for (size_t i = 0; i < w.size(); ++i) w[i] *= (i % 3 == 0) ? -2.0f : 1.5f;
    set_param(a.get(), "label_head.4.weight", w);
    set_param(b.get(), "label_head.4.weight", w);
    require_ok(dann_predict(ca.get(), &tb, pa.data(), pa.size(), nullptr, 0));
    require_ok(dann_predict(cb_ctx.get(), &tb, pb.data(), pb.size(), nullptr, 0));
    CHECK(pa != before);
    CHECK(pa == pb);
}

TEST_CASE("A calibration batch longer than one part counts every sample: its order does not "
          "matter") {
    if (!int8_or_skip()) return;
    const dann_layer_desc feats[] = {dann_layer_conv2d(8, 3, 1, 1), dann_layer_relu(),
                                     dann_layer_maxpool2d(2, 2, 0)};
    const dann_layer_desc label[] = {dann_layer_dense(16), dann_layer_relu(), dann_layer_dense(4)};
    Model m = create(feats, 3, label, 3, 3, 8, 8);
    const size_t n = 300, per = 3 * 8 * 8;
    layer_test::Rng rng(31);
    std::vector<float> x = layer_test::uniform_floats(n * per, rng, 0.0f, 1.0f);
    // The largest values sit in the last samples, beyond the first part.
    for (size_t i = (n - 4) * per; i < n * per; ++i) x[i] *= 3.0f;
    std::vector<float> rotated(x.size());
    const size_t shift = 100 * per;
    std::copy(x.begin() + static_cast<std::ptrdiff_t>(shift), x.end(), rotated.begin());
    std::copy(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(shift),
              rotated.begin() + static_cast<std::ptrdiff_t>(x.size() - shift));
    const dann_batch b1 = dann_batch_f32_nchw(x.data(), n, 3, 8, 8);
    const dann_batch b2 = dann_batch_f32_nchw(rotated.data(), n, 3, 8, 8);
    Context c1 = context(m.get()), c2 = context(m.get());
    require_ok(dann_context_quantize(c1.get(), &b1));
    require_ok(dann_context_quantize(c2.get(), &b2));
    const dann_batch test = dann_batch_f32_nchw(x.data() + (n - 8) * per, 8, 3, 8, 8);
    std::vector<float> p1(8 * 4), p2(8 * 4);
    require_ok(dann_predict(c1.get(), &test, p1.data(), p1.size(), nullptr, 0));
    require_ok(dann_predict(c2.get(), &test, p2.data(), p2.size(), nullptr, 0));
    CHECK(p1 == p2);
}

TEST_CASE("dann_context_quantize refuses NULL, empty, misshapen and NaN calibration batches "
          "and leaves the context as it was") {
    dann_model *raw = nullptr;
    require_ok(dann_model_create_mlp(4, 6, 3, 1, &raw));
    Model m(raw);
    Context ctx = context(m.get());
    std::vector<float> x = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, 0.6f, -0.7f, 0.8f};
    const dann_batch good = dann_batch_f32_nchw(x.data(), 2, 4, 1, 1);
    std::vector<float> before(6), after(6);
    require_ok(dann_predict(ctx.get(), &good, before.data(), before.size(), nullptr, 0));

    CHECK(dann_context_quantize(nullptr, &good) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("ctx") != std::string::npos);
    CHECK(dann_context_quantize(ctx.get(), nullptr) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("calibration") != std::string::npos);
    dann_batch empty = good;
    empty.n = 0;
    CHECK(dann_context_quantize(ctx.get(), &empty) == DANN_ERR_SHAPE);
    CHECK(std::string(dann_last_error()).find("calibration") != std::string::npos);
    const dann_batch wrong = dann_batch_f32_nchw(x.data(), 1, 8, 1, 1);
    CHECK(dann_context_quantize(ctx.get(), &wrong) == DANN_ERR_SHAPE);
    if (dann_precision_supported(DANN_PRECISION_INT8)) {
        x[5] = std::nanf("");
        CHECK(dann_context_quantize(ctx.get(), &good) == DANN_ERR_NUMERIC);
        CHECK(std::string(dann_last_error()).find("calibration batch: sample 1") != std::string::npos);
        x[5] = 0.6f;
    } else {
        CHECK(dann_context_quantize(ctx.get(), &good) == DANN_ERR_UNSUPPORTED);
        CHECK(std::string(dann_last_error()).find("int8") != std::string::npos);
    }
    require_ok(dann_predict(ctx.get(), &good, after.data(), after.size(), nullptr, 0));
    CHECK(after == before); // still f32
}
