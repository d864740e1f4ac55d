// Parity with PyTorch: three DANN training steps on small networks and on the
// paper's MNIST network, against fixtures written by tests/torch/make_fixtures.py
// (see tests/torch/README.md). Initial weights and inputs come from a SplitMix64
// generator that the script and this file both implement, so the fixtures hold
// only seeds and results.
//
// The public API has no gradient getter: the gradient of step k is recovered
// from the weights, v_k = (w_{k-1} - w_k) / lr_k and g_k = v_k - m v_{k-1}
// (PyTorch's momentum form), with a tolerance that includes the cancellation
// error of that difference (float32 rounding of w_k, divided by lr_k).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dann.h"

namespace {

// --- The generator shared with make_fixtures.py ------------------------------

struct SplitMix64 {
    uint64_t state;
    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next() {
        state += 0x9E3779B97F4A7C15ULL;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // 24 random bits: exact in float and double.
    double uniform() { return static_cast<double>(next() >> 40) * (1.0 / 16777216.0); }
};

std::vector<float> fill_affine(uint64_t seed, size_t count, double a, double b) {
    SplitMix64 g(seed);
    std::vector<float> v(count);
    for (auto &x : v) x = static_cast<float>(a + b * (2.0 * g.uniform() - 1.0));
    return v;
}

std::vector<float> fill_inputs(uint64_t seed, size_t count) {
    SplitMix64 g(seed);
    std::vector<float> v(count);
    for (auto &x : v) x = static_cast<float>(g.uniform() - 0.5);
    return v;
}

__attribute__((format(printf, 1, 2))) std::string format(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

// --- Fixture -------------------------------------------------------------------

struct LayerSpec {
    std::string kind;
    std::vector<int> args;
};

struct ParamSpec {
    size_t index = 0;
    std::string name;
    bool trainable = false;
    size_t numel = 0;
    std::vector<int64_t> shape;
    double a = 0.0, b = 0.0;
};

// An array as stored: all elements, or selected flat indices; plus its L2 norm.
struct ArrayRec {
    bool full = false;
    std::vector<size_t> index;
    std::vector<double> value;
    double norm = -1.0;
};

struct StepRec {
    double lambda = 0.0, lr = 0.0;
    double label_loss = NAN, domain_loss = NAN, accuracy = NAN;
    std::map<std::string, ArrayRec> grad, value;
};

struct Fixture {
    std::string network, builder;
    int in_c = 0, in_h = 0, in_w = 0, classes = 0, feature_size = 0;
    int domain_batchnorm = 0;
    int mlp_in = 0, mlp_hidden = 0, mlp_classes = 0;
    std::map<std::string, std::vector<LayerSpec>> heads;
    size_t ns = 0, nt = 0;
    uint64_t param_seed = 0, input_seed = 0;
    double source_sum = NAN, target_sum = NAN;
    std::vector<ParamSpec> params;
    std::vector<StepRec> steps;  // [0]: initial values only; [k]: step k
};

double to_double(const std::string &s) {
    char *end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0') throw std::runtime_error("bad number '" + s + "'");
    return v;
}

// Throws std::runtime_error naming the line on malformed input.
Fixture load_fixture(const std::string &file) {
    std::ifstream in(std::string(DANN_FIXTURE_DIR) + "/" + file);
    if (!in) throw std::runtime_error("cannot open fixture " + file);
    Fixture fx;
    std::string line;
    int lineno = 0;
    auto step = [&fx](size_t k) -> StepRec & {
        if (fx.steps.size() <= k) fx.steps.resize(k + 1);
        return fx.steps[k];
    };
    while (std::getline(in, line)) {
        ++lineno;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ls(line);
        std::vector<std::string> t;
        for (std::string w; ls >> w;) t.push_back(w);
        try {
            auto num = [&t](size_t i) { return to_double(t.at(i)); };
            auto inum = [&t](size_t i) { return std::stoll(t.at(i)); };
            const std::string &key = t.at(0);
            if (key == "network") fx.network = t.at(1);
            else if (key == "builder") fx.builder = t.at(1);
            else if (key == "input") {
                fx.in_c = static_cast<int>(inum(1));
                fx.in_h = static_cast<int>(inum(2));
                fx.in_w = static_cast<int>(inum(3));
            } else if (key == "classes") fx.classes = static_cast<int>(inum(1));
            else if (key == "feature_size") fx.feature_size = static_cast<int>(inum(1));
            else if (key == "domain_batchnorm") fx.domain_batchnorm = static_cast<int>(inum(1));
            else if (key == "mlp") {
                fx.mlp_in = static_cast<int>(inum(1));
                fx.mlp_hidden = static_cast<int>(inum(2));
                fx.mlp_classes = static_cast<int>(inum(3));
            } else if (key == "layer") {
                auto &head = fx.heads[t.at(1)];
                if (static_cast<size_t>(inum(2)) != head.size())
                    throw std::runtime_error("layers out of order");
                LayerSpec l;
                l.kind = t.at(3);
                for (size_t i = 4; i < t.size(); ++i) l.args.push_back(static_cast<int>(inum(i)));
                head.push_back(l);
            } else if (key == "ns") fx.ns = static_cast<size_t>(inum(1));
            else if (key == "nt") fx.nt = static_cast<size_t>(inum(1));
            else if (key == "param_seed_base") fx.param_seed = static_cast<uint64_t>(inum(1));
            else if (key == "input_seed") fx.input_seed = static_cast<uint64_t>(inum(1));
            else if (key == "input_sum") {
                (t.at(1) == "source" ? fx.source_sum : fx.target_sum) = num(2);
            } else if (key == "steps") {
                step(static_cast<size_t>(inum(1)));
            } else if (key == "param") {
                ParamSpec p;
                p.index = static_cast<size_t>(inum(1));
                p.name = t.at(2);
                p.trainable = inum(3) != 0;
                p.numel = static_cast<size_t>(inum(4));
                const size_t ndim = static_cast<size_t>(inum(5));
                for (size_t i = 0; i < ndim; ++i) p.shape.push_back(inum(6 + i));
                p.a = num(6 + ndim);
                p.b = num(7 + ndim);
                if (p.index != fx.params.size()) throw std::runtime_error("params out of order");
                fx.params.push_back(p);
            } else if (key == "step") {
                auto &s = step(static_cast<size_t>(inum(1)));
                s.lambda = num(2);
                s.lr = num(3);
            } else if (key == "label_loss") step(static_cast<size_t>(inum(1))).label_loss = num(2);
            else if (key == "domain_loss") step(static_cast<size_t>(inum(1))).domain_loss = num(2);
            else if (key == "domain_accuracy") step(static_cast<size_t>(inum(1))).accuracy = num(2);
            else if (key == "grad" || key == "value" || key == "grad_sample" ||
                     key == "value_sample" || key == "grad_norm" || key == "value_norm") {
                auto &s = step(static_cast<size_t>(inum(1)));
                const bool is_grad = key.compare(0, 4, "grad") == 0;
                ArrayRec &rec = (is_grad ? s.grad : s.value)[t.at(2)];
                if (key == "grad_norm" || key == "value_norm") {
                    rec.norm = num(3);
                } else if (key == "grad" || key == "value") {
                    const size_t count = static_cast<size_t>(inum(3));
                    if (t.size() != 4 + count) throw std::runtime_error("count mismatch");
                    rec.full = true;
                    rec.index.resize(count);
                    rec.value.resize(count);
                    for (size_t i = 0; i < count; ++i) {
                        rec.index[i] = i;
                        rec.value[i] = num(4 + i);
                    }
                } else {
                    const size_t count = static_cast<size_t>(inum(3));
                    if (t.size() != 4 + 2 * count) throw std::runtime_error("count mismatch");
                    for (size_t i = 0; i < count; ++i) {
                        rec.index.push_back(static_cast<size_t>(inum(4 + 2 * i)));
                        rec.value.push_back(num(5 + 2 * i));
                    }
                }
            } else {
                throw std::runtime_error("unknown key '" + key + "'");
            }
        } catch (const std::exception &e) {
            throw std::runtime_error(file + ":" + std::to_string(lineno) + ": " + e.what());
        }
    }
    if (fx.steps.size() < 2 || fx.params.empty() || fx.ns == 0 || fx.nt == 0)
        throw std::runtime_error(file + ": incomplete fixture");
    return fx;
}

// --- Model from the fixture --------------------------------------------------

struct ModelDeleter {
    void operator()(dann_model *m) const { dann_model_destroy(m); }
};
struct TrainerDeleter {
    void operator()(dann_trainer *t) const { dann_trainer_destroy(t); }
};
using ModelPtr = std::unique_ptr<dann_model, ModelDeleter>;
using TrainerPtr = std::unique_ptr<dann_trainer, TrainerDeleter>;

dann_layer_desc to_desc(const LayerSpec &l) {
    const auto &a = l.args;
    if (l.kind == "conv2d") return dann_layer_conv2d(a.at(0), a.at(1), a.at(2), a.at(3));
    if (l.kind == "maxpool2d") return dann_layer_maxpool2d(a.at(0), a.at(1), a.at(2));
    if (l.kind == "dense") return dann_layer_dense(a.at(0));
    if (l.kind == "relu") return dann_layer_relu();
    if (l.kind == "sigmoid") return dann_layer_sigmoid();
    if (l.kind == "flatten") return dann_layer_flatten();
    if (l.kind == "batchnorm") return dann_layer_batchnorm();
    throw std::runtime_error("unknown layer kind " + l.kind);
}

ModelPtr build_model(const Fixture &fx) {
    dann_model *raw = nullptr;
    dann_status st = DANN_ERR_INTERNAL;
    if (fx.builder == "desc") {
        std::map<std::string, std::vector<dann_layer_desc>> d;
        for (const auto &h : fx.heads)
            for (const auto &l : h.second) d[h.first].push_back(to_desc(l));
        dann_model_desc desc{};
        desc.in_channels = fx.in_c;
        desc.in_height = fx.in_h;
        desc.in_width = fx.in_w;
        desc.features = d["features"].data();
        desc.n_features = d["features"].size();
        desc.label_head = d["label_head"].data();
        desc.n_label_head = d["label_head"].size();
        desc.domain_head = d["domain_head"].data();
        desc.n_domain_head = d["domain_head"].size();
        desc.domain_batchnorm = fx.domain_batchnorm;
        st = dann_model_create(&desc, 7, &raw);
    } else if (fx.builder == "mlp") {
        st = dann_model_create_mlp(fx.mlp_in, fx.mlp_hidden, fx.mlp_classes, 7, &raw);
    } else if (fx.builder == "preset_mnist") {
        st = dann_model_create_preset(DANN_PRESET_MNIST, 7, &raw);
    } else {
        FAIL("unknown builder " << fx.builder);
    }
    REQUIRE_MESSAGE(st == DANN_OK, "building " << fx.network << ": " << dann_last_error());
    REQUIRE(raw != nullptr);
    return ModelPtr(raw);
}

std::string shape_string(const std::vector<int64_t> &s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + ")";
}

std::vector<float> get_param(const dann_model *m, size_t index, size_t numel) {
    std::vector<float> v(numel);
    const dann_status st = dann_model_param_get(m, index, v.data(), numel);
    REQUIRE_MESSAGE(st == DANN_OK, "param_get " << index << ": " << dann_last_error());
    return v;
}

// "features.0.weight" -> "features.0"
std::string module_of(const std::string &param) { return param.substr(0, param.rfind('.')); }

double l2(const std::vector<double> &v) {
    double s = 0.0;
    for (double x : v) s += x * x;
    return std::sqrt(s);
}

// Largest error seen per network, for the report.
struct Worst {
    double err = 0.0;   // absolute error, or error relative to a scale
    double ratio = 0.0; // error / tolerance
    std::string where;
    void see(double e, double r, const std::string &w) {
        if (r > ratio) {
            ratio = r;
            where = w;
        }
        err = std::max(err, e);
    }
};

// Tolerances. Losses and accuracy: |d| <= 1e-7 + 1e-6 |ref|. Trainable
// parameters after each step: |d| <= 1e-5 + 1e-4 |ref| per element (the
// recovered gradients below check them far more tightly); batch-norm running
// statistics, checked only here: |d| <= 1e-6 + 1e-5 |ref| (a biased instead of
// unbiased batch variance misses it by 40x or more); norms |d| <= 1e-6 + 1e-5 |ref|. Gradients (recovered from the weights):
// |d| <= 4 c_i + 1e-4 gmax per element, where c_i bounds the cancellation
// error of the recovery and gmax is the largest |gradient| of that layer's
// weight and bias in the fixture; norms |d| <= 4 |c| + 1e-4 gmax_norm, with
// gmax_norm the largest gradient norm of the layer's parameters.
constexpr double kLossAbs = 1e-7, kLossRel = 1e-6;
constexpr double kValueAbs = 1e-5, kValueRel = 1e-4;
constexpr double kStatAbs = 1e-6, kStatRel = 1e-5;
constexpr double kNormAbs = 1e-6, kNormRel = 1e-5;
constexpr double kGradScaleRel = 1e-4, kCancelFactor = 4.0;
constexpr double kFloatEps = 1.0 / 16777216.0;  // 2^-24, float rounding

void run_parity(const char *file) {
    Fixture fx;
    try {
        fx = load_fixture(file);
    } catch (const std::exception &e) {
        FAIL(std::string(e.what()));
    }
    const std::string where = fx.network + " (" + file + ")";
    INFO("network " << where);
    ModelPtr model = build_model(fx);

    dann_model_info info{};
    REQUIRE(dann_model_get_info(model.get(), &info) == DANN_OK);
    CHECK(info.in_channels == fx.in_c);
    CHECK(info.in_height == fx.in_h);
    CHECK(info.in_width == fx.in_w);
    CHECK(info.num_classes == fx.classes);
    CHECK(info.feature_size == fx.feature_size);
    CHECK_MESSAGE(dann_model_param_count(model.get()) == fx.params.size(),
                  "dann lists " << dann_model_param_count(model.get())
                                << " parameters, PyTorch's state has " << fx.params.size());

    // Every parameter: same name, position, shape and trainability; then the
    // generator's values, whose first elements the fixture pins.
    std::vector<size_t> dann_index(fx.params.size());
    std::vector<std::vector<float>> w_prev(fx.params.size());
    for (const ParamSpec &p : fx.params) {
        size_t idx = 0;
        REQUIRE_MESSAGE(dann_model_param_find(model.get(), p.name.c_str(), &idx) == DANN_OK,
                        "parameter " << p.name << " not found: " << dann_last_error());
        CHECK_MESSAGE(idx == p.index, p.name << " is parameter " << idx << " in dann, "
                                             << p.index << " in PyTorch's state order");
        dann_param_info pi{};
        REQUIRE(dann_model_param_info(model.get(), idx, &pi) == DANN_OK);
        std::vector<int64_t> shape(pi.shape, pi.shape + std::max(0, std::min(pi.ndim, 4)));
        CHECK_MESSAGE(shape == p.shape, p.name << ": dann shape " << shape_string(shape)
                                               << ", PyTorch " << shape_string(p.shape));
        REQUIRE_MESSAGE(pi.numel == p.numel, p.name << ": numel " << pi.numel << " vs " << p.numel);
        CHECK_MESSAGE((pi.trainable != 0) == p.trainable, p.name << ": trainable flag");
        CHECK(std::string(pi.name) == p.name);

        const std::vector<float> v = fill_affine(fx.param_seed + 1000 * p.index, p.numel, p.a, p.b);
        const ArrayRec &init = fx.steps[0].value.at(p.name);
        for (size_t j = 0; j < init.index.size(); ++j)
            REQUIRE_MESSAGE(v[init.index[j]] == static_cast<float>(init.value[j]),
                            "the generator disagrees with make_fixtures.py for " << p.name);
        REQUIRE_MESSAGE(dann_model_param_set(model.get(), idx, v.data(), v.size()) == DANN_OK,
                        p.name << ": " << dann_last_error());
        CHECK(get_param(model.get(), idx, p.numel) == v);
        dann_index[p.index] = idx;
        w_prev[p.index] = v;
    }

    const size_t per_sample = static_cast<size_t>(fx.in_c) * fx.in_h * fx.in_w;
    const std::vector<float> xs = fill_inputs(fx.input_seed, fx.ns * per_sample);
    const std::vector<float> xt = fill_inputs(fx.input_seed + 1, fx.nt * per_sample);
    double ssum = 0.0, tsum = 0.0;
    for (float x : xs) ssum += static_cast<double>(x);
    for (float x : xt) tsum += static_cast<double>(x);
    REQUIRE(std::fabs(ssum - fx.source_sum) <= 1e-9 * (1.0 + std::fabs(fx.source_sum)));
    REQUIRE(std::fabs(tsum - fx.target_sum) <= 1e-9 * (1.0 + std::fabs(fx.target_sum)));
    std::vector<int32_t> labels(fx.ns);
    for (size_t i = 0; i < fx.ns; ++i) labels[i] = static_cast<int32_t>((i * 7 + 3) % fx.classes);
    const dann_batch src = dann_batch_f32_nchw(xs.data(), fx.ns, fx.in_c, fx.in_h, fx.in_w);
    const dann_batch tgt = dann_batch_f32_nchw(xt.data(), fx.nt, fx.in_c, fx.in_h, fx.in_w);

    const dann_train_params tp = dann_train_params_default();
    REQUIRE(tp.momentum == 0.9f);
    REQUIRE(tp.weight_decay == 0.0f);
    dann_trainer *raw_trainer = nullptr;
    REQUIRE_MESSAGE(dann_trainer_create(model.get(), &tp, &raw_trainer) == DANN_OK,
                    dann_last_error());
    TrainerPtr trainer(raw_trainer);
    const double momentum = static_cast<double>(tp.momentum);

    Worst worst_loss, worst_value, worst_grad;
    // Per parameter: the recovered velocity of the previous step and the bound
    // on its cancellation error.
    std::vector<std::vector<double>> vel_prev(fx.params.size()), cancel_prev(fx.params.size());

    for (size_t k = 1; k < fx.steps.size(); ++k) {
        const StepRec &s = fx.steps[k];
        dann_step_result r{};
        const dann_status st = dann_trainer_step(trainer.get(), &src, labels.data(), &tgt,
                                                 static_cast<float>(s.lambda),
                                                 static_cast<float>(s.lr), &r);
        REQUIRE_MESSAGE(st == DANN_OK, "step " << k << ": " << dann_last_error());

        struct Scalar {
            const char *name;
            double dann, torch;
        } scalars[] = {{"label loss", static_cast<double>(r.label_loss), s.label_loss},
                       {"domain loss", static_cast<double>(r.domain_loss), s.domain_loss},
                       {"domain accuracy", static_cast<double>(r.domain_accuracy), s.accuracy}};
        for (const Scalar &sc : scalars) {
            const double err = std::fabs(sc.dann - sc.torch);
            const double tol = kLossAbs + kLossRel * std::fabs(sc.torch);
            worst_loss.see(err / std::max(std::fabs(sc.torch), 1e-30), err / tol,
                           format("step %zu %s", k, sc.name));
            CHECK_MESSAGE(err <= tol, format("step %zu %s: dann %.9g, PyTorch %.9g (|err| %.3g, tol %.3g)",
                                             k, sc.name, sc.dann, sc.torch, err, tol));
        }

        // The scale of a gradient's rounding error is that of the terms it sums,
        // not of its result: a conv bias in front of batch norm has an exactly
        // zero gradient made of rounding noise. So the scale term of the
        // tolerance uses the largest gradient of the layer, weight and bias.
        std::map<std::string, double> layer_gmax, layer_gnorm;
        for (const ParamSpec &p : fx.params) {
            if (!p.trainable) continue;
            const ArrayRec &gr = s.grad.at(p.name);
            double g = 0.0;
            for (double x : gr.value) g = std::max(g, std::fabs(x));
            if (!gr.full && p.numel > 0)
                g = std::max(g, gr.norm / std::sqrt(static_cast<double>(p.numel)));
            double &m = layer_gmax[module_of(p.name)];
            m = std::max(m, g);
            double &n = layer_gnorm[module_of(p.name)];
            n = std::max(n, gr.norm);
        }

        for (const ParamSpec &p : fx.params) {
            const std::vector<float> w = get_param(model.get(), dann_index[p.index], p.numel);
            const std::vector<float> &w0 = w_prev[p.index];

            // Values after the step.
            const ArrayRec &val = s.value.at(p.name);
            const double vabs = p.trainable ? kValueAbs : kStatAbs;
            const double vrel = p.trainable ? kValueRel : kStatRel;
            double vmax = 0.0, vratio = 0.0;
            size_t vat = 0;
            for (size_t j = 0; j < val.index.size(); ++j) {
                const double d = static_cast<double>(w[val.index[j]]);
                const double err = std::fabs(d - val.value[j]);
                const double ratio = err / (vabs + vrel * std::fabs(val.value[j]));
                vmax = std::max(vmax, err);
                if (ratio > vratio) {
                    vratio = ratio;
                    vat = j;
                }
            }
            worst_value.see(vmax, vratio, format("step %zu %s", k, p.name.c_str()));
            CHECK_MESSAGE(vratio <= 1.0,
                          format("step %zu %s after the step: max |err| %.3g; worst [%zu] dann %.9g, "
                                 "PyTorch %.9g (tol %.3g abs + %.3g rel)",
                                 k, p.name.c_str(), vmax, val.index[vat],
                                 static_cast<double>(w[val.index[vat]]), val.value[vat], vabs, vrel));
            std::vector<double> wd(w.begin(), w.end());
            const double wnorm = l2(wd);
            CHECK_MESSAGE(std::fabs(wnorm - val.norm) <= kNormAbs + kNormRel * val.norm,
                          format("step %zu %s: L2 norm dann %.9g, PyTorch %.9g", k, p.name.c_str(),
                                 wnorm, val.norm));

            if (p.trainable) {
                // Recover this step's gradient from the weights.
                std::vector<double> vel(p.numel), grad(p.numel), cancel(p.numel);
                for (size_t i = 0; i < p.numel; ++i) {
                    const double a = static_cast<double>(w0[i]), b = static_cast<double>(w[i]);
                    vel[i] = (a - b) / s.lr;
                    cancel[i] = kFloatEps * (std::fabs(a) + std::fabs(b)) / s.lr;
                    grad[i] = vel[i];
                    if (k > 1) {
                        grad[i] -= momentum * vel_prev[p.index][i];
                        cancel[i] += momentum * cancel_prev[p.index][i];
                    }
                }
                const ArrayRec &gr = s.grad.at(p.name);
                const double gmax = layer_gmax.at(module_of(p.name));
                double gerr = 0.0, gratio = 0.0;
                size_t gat = 0;
                for (size_t j = 0; j < gr.index.size(); ++j) {
                    const size_t i = gr.index[j];
                    const double err = std::fabs(grad[i] - gr.value[j]);
                    const double tol = kCancelFactor * cancel[i] + kGradScaleRel * gmax + 1e-30;
                    gerr = std::max(gerr, err);
                    if (err / tol > gratio) {
                        gratio = err / tol;
                        gat = j;
                    }
                }
                worst_grad.see(gmax > 0.0 ? gerr / gmax : gerr, gratio,
                               format("step %zu %s", k, p.name.c_str()));
                const size_t gi = gr.index[gat];
                CHECK_MESSAGE(gratio <= 1.0,
                              format("step %zu gradient of %s (recovered from the weights): max "
                                     "|err| %.3g (layer's max |g| %.3g); worst [%zu] dann %.9g, PyTorch %.9g, "
                                     "tol %.3g",
                                     k, p.name.c_str(), gerr, gmax, gi, grad[gi], gr.value[gat],
                                     kCancelFactor * cancel[gi] + kGradScaleRel * gmax));
                const double gnorm = l2(grad);
                const double ntol = kCancelFactor * l2(cancel) +
                                    kGradScaleRel * layer_gnorm.at(module_of(p.name)) + 1e-30;
                CHECK_MESSAGE(std::fabs(gnorm - gr.norm) <= ntol,
                              format("step %zu gradient of %s: L2 norm dann %.9g, PyTorch %.9g "
                                     "(tol %.3g)",
                                     k, p.name.c_str(), gnorm, gr.norm, ntol));
                vel_prev[p.index] = std::move(vel);
                cancel_prev[p.index] = std::move(cancel);
            }
            w_prev[p.index] = w;
        }
    }
    MESSAGE(format("%s: max rel error of losses/accuracy %.3g (worst vs tol: %.3g at %s); max "
                   "|err| of weights and running stats %.3g (worst vs tol: %.3g at %s); max "
                   "gradient |err| / layer's max |g| %.3g (worst vs tol: %.3g at %s)",
                   fx.network.c_str(), worst_loss.err, worst_loss.ratio, worst_loss.where.c_str(),
                   worst_value.err,
                   worst_value.ratio, worst_value.where.c_str(), worst_grad.err, worst_grad.ratio,
                   worst_grad.where.c_str()));
}

}  // namespace

TEST_CASE("A DANN step on the tiny conv net matches PyTorch: losses, gradients and weights over "
          "three steps") {
    run_parity("torch_tiny_conv.txt");
}

TEST_CASE("A DANN step on the tiny conv net with batch norm matches PyTorch: losses, gradients, "
          "weights and running statistics over three steps") {
    run_parity("torch_tiny_conv_bn.txt");
}

TEST_CASE("A DANN step with per-domain batch norm matches PyTorch normalising the source and "
          "target parts separately: losses, gradients, weights and both domains' running "
          "statistics over three steps") {
    run_parity("torch_tiny_conv_domain_bn.txt");
}

TEST_CASE("A DANN step on the shallow MLP preset matches PyTorch: losses, gradients and weights "
          "over three steps") {
    run_parity("torch_mlp.txt");
}

TEST_CASE("A DANN step on the paper's MNIST preset matches PyTorch: losses, sampled gradients "
          "and weights, and their norms over three steps") {
    run_parity("torch_mnist.txt");
}
