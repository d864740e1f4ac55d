#include "network/model.hpp"

#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace dann {
namespace {

// Generous limits that keep every size and offset far from overflow.
constexpr int64_t kMaxDim = 1 << 16;
constexpr int64_t kMaxUnits = 1 << 20;
constexpr int64_t kMaxElements = int64_t(1) << 28; // per sample, per tensor

const char *kind_name(dann_layer_kind k) {
    switch (k) {
    case DANN_LAYER_CONV2D: return "CONV2D";
    case DANN_LAYER_MAXPOOL2D: return "MAXPOOL2D";
    case DANN_LAYER_DENSE: return "DENSE";
    case DANN_LAYER_RELU: return "RELU";
    case DANN_LAYER_SIGMOID: return "SIGMOID";
    case DANN_LAYER_DROPOUT: return "DROPOUT";
    case DANN_LAYER_BATCHNORM: return "BATCHNORM";
    case DANN_LAYER_FLATTEN: return "FLATTEN";
    }
    return "?";
}

[[noreturn]] void bad(const std::string &layer, const std::string &what,
                      dann_status st = DANN_ERR_INVALID_ARGUMENT) {
    fail(st, "layer " + layer + ": " + what);
}

std::string shape_str(const Shape &s) {
    if (s.flat) return std::to_string(s.c) + " features";
    return std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
}

// Checks the values (defaults already filled) and infers the output shape.
Shape infer(dann_layer_desc &d, const Shape &in, const std::string &name) {
    d = with_defaults(d);
    Shape out = in;
    switch (d.kind) {
    case DANN_LAYER_CONV2D:
    case DANN_LAYER_MAXPOOL2D: {
        const bool conv = d.kind == DANN_LAYER_CONV2D;
        const char *k = kind_name(d.kind);
        if (in.flat)
            bad(name, std::string(k) + " needs an image input (C x H x W), got a flat vector of " +
                          std::to_string(in.c) + " features",
                DANN_ERR_SHAPE);
        if (d.kernel_h <= 0 || d.kernel_w <= 0 || d.kernel_h > kMaxDim || d.kernel_w > kMaxDim)
            bad(name, std::string(k) + " kernel must be positive, got " +
                          std::to_string(d.kernel_h) + "x" + std::to_string(d.kernel_w));
        if (d.stride_h < 0 || d.stride_w < 0 || d.stride_h > kMaxDim || d.stride_w > kMaxDim)
            bad(name, std::string(k) + " stride must be positive");
        if (d.pad_h < 0 || d.pad_w < 0 || d.pad_h > kMaxDim || d.pad_w > kMaxDim)
            bad(name, std::string(k) + " padding must be >= 0");
        if (!conv && (2 * d.pad_h > d.kernel_h || 2 * d.pad_w > d.kernel_w))
            bad(name, "MAXPOOL2D padding must be at most half the kernel");
        if (conv && (d.units <= 0 || d.units > kMaxUnits))
            bad(name, "CONV2D needs 1 to " + std::to_string(kMaxUnits) +
                          " output channels (units), got " + std::to_string(d.units));
        const int64_t ph = in.h + 2 * d.pad_h, pw = in.w + 2 * d.pad_w;
        if (ph < d.kernel_h || pw < d.kernel_w)
            bad(name,
                std::string(k) + " kernel " + std::to_string(d.kernel_h) + "x" +
                    std::to_string(d.kernel_w) + " is larger than the padded input " +
                    std::to_string(ph) + "x" + std::to_string(pw) + " (input " +
                    shape_str(in) + ")",
                DANN_ERR_SHAPE);
        out.c = conv ? d.units : in.c;
        out.h = (ph - d.kernel_h) / d.stride_h + 1;
        out.w = (pw - d.kernel_w) / d.stride_w + 1;
        break;
    }
    case DANN_LAYER_DENSE:
        if (d.units <= 0 || d.units > kMaxUnits)
            bad(name, "DENSE needs 1 to " + std::to_string(kMaxUnits) + " units, got " +
                          std::to_string(d.units));
        out = Shape{d.units, 1, 1, true};
        break;
    case DANN_LAYER_RELU:
    case DANN_LAYER_SIGMOID: break;
    case DANN_LAYER_DROPOUT:
        if (!(d.rate >= 0.0f && d.rate < 1.0f))
            bad(name, "DROPOUT rate must be in [0, 1), got " + std::to_string(d.rate));
        break;
    case DANN_LAYER_BATCHNORM:
        if (!(d.eps > 0.0f && std::isfinite(d.eps)))
            bad(name, "BATCHNORM eps must be positive");
        if (!(d.momentum > 0.0f && d.momentum <= 1.0f))
            bad(name, "BATCHNORM momentum must be in (0, 1]");
        break;
    case DANN_LAYER_FLATTEN: out = Shape{in.size(), 1, 1, true}; break;
    }
    if (out.size() > kMaxElements)
        bad(name, "output of " + shape_str(out) + " values per sample is too large", DANN_ERR_SHAPE);
    return out;
}

void add_param(Model &m, LayerSpec &spec, const char *suffix, std::vector<int64_t> shape,
               bool trainable) {
    Param p;
    p.name = spec.name + "." + suffix;
    p.shape = std::move(shape);
    p.numel = 1;
    for (int64_t s : p.shape) p.numel *= static_cast<size_t>(s);
    p.trainable = trainable;
    p.stack = spec.stack;
    p.data.resize(p.numel * sizeof(float));
    if (spec.first_param < 0) spec.first_param = static_cast<int>(m.params.size());
    m.params.push_back(std::move(p));
}

void build_stack(Model &m, Stack stack, const char *prefix, const dann_layer_desc *layers,
                 size_t count, Shape &shape) {
    if (count > 0 && !layers)
        fail(DANN_ERR_INVALID_ARGUMENT, std::string(prefix) + ": layer array is NULL but count is " +
                                            std::to_string(count));
    if (count > 4096) fail(DANN_ERR_INVALID_ARGUMENT, std::string(prefix) + ": too many layers");
    std::vector<LayerSpec> &out = stack == Stack::features ? m.features
                                  : stack == Stack::label  ? m.label_head
                                                           : m.domain_head;
    for (size_t i = 0; i < count; ++i) {
        LayerSpec spec;
        spec.name = std::string(prefix) + "." + std::to_string(i);
        const int kind = raw_enum(layers[i].kind);
        if (kind < DANN_LAYER_CONV2D || kind > DANN_LAYER_FLATTEN)
            bad(spec.name, "unknown layer kind " + std::to_string(kind));
        spec.desc = layers[i];
        spec.stack = stack;
        spec.index = static_cast<int>(i);
        spec.in = shape;
        spec.out = infer(spec.desc, shape, spec.name);
        shape = spec.out;
        out.push_back(spec);
    }
    for (LayerSpec &spec : out) {
        const auto &d = spec.desc;
        if (d.kind == DANN_LAYER_CONV2D) {
            add_param(m, spec, "weight", {d.units, spec.in.c, d.kernel_h, d.kernel_w}, true);
            add_param(m, spec, "bias", {d.units}, true);
        } else if (d.kind == DANN_LAYER_DENSE) {
            add_param(m, spec, "weight", {d.units, spec.in.size()}, true);
            add_param(m, spec, "bias", {d.units}, true);
        } else if (d.kind == DANN_LAYER_BATCHNORM) {
            const int64_t c = spec.in.c;
            add_param(m, spec, "weight", {c}, true);
            add_param(m, spec, "bias", {c}, true);
            add_param(m, spec, "running_mean", {c}, false);
            add_param(m, spec, "running_var", {c}, false);
            if (m.domain_bn) {
                add_param(m, spec, "running_mean_target", {c}, false);
                add_param(m, spec, "running_var_target", {c}, false);
            }
        }
    }
}

void check_head_end(const std::vector<LayerSpec> &head, const char *prefix, bool label) {
    if (head.empty() || head.back().desc.kind != DANN_LAYER_DENSE)
        fail(DANN_ERR_INVALID_ARGUMENT,
             std::string(prefix) + " must end with a DENSE layer (" +
                 (label ? "one unit per class" : "one unit: the target logit") + ")");
    const int units = head.back().desc.units;
    if (label && units < 2)
        fail(DANN_ERR_INVALID_ARGUMENT, "layer " + head.back().name +
                                            ": the label head needs at least 2 classes, got " +
                                            std::to_string(units));
    if (!label && units != 1)
        fail(DANN_ERR_INVALID_ARGUMENT, "layer " + head.back().name +
                                            ": the domain head must end with 1 unit, got " +
                                            std::to_string(units));
}

} // namespace

dann_layer_desc with_defaults(const dann_layer_desc &layer) {
    dann_layer_desc d = layer;
    if (d.kind == DANN_LAYER_CONV2D || d.kind == DANN_LAYER_MAXPOOL2D) {
        const bool conv = d.kind == DANN_LAYER_CONV2D;
        if (d.kernel_w == 0) { // square shorthand: the _w values follow the _h ones
            d.kernel_w = d.kernel_h;
            if (d.stride_w == 0) d.stride_w = d.stride_h;
            if (d.pad_w == 0) d.pad_w = d.pad_h;
        }
        if (d.stride_h == 0) d.stride_h = conv ? 1 : d.kernel_h;
        if (d.stride_w == 0) d.stride_w = conv ? 1 : d.kernel_w;
    } else if (d.kind == DANN_LAYER_BATCHNORM) {
        if (d.eps == 0.0f) d.eps = 1e-5f;
        if (d.momentum == 0.0f) d.momentum = 0.1f;
    }
    return d;
}

std::unique_ptr<Model> Model::create(const dann_model_desc &desc, uint64_t seed) {
    auto m = std::make_unique<Model>();
    if (desc.in_channels <= 0 || desc.in_height <= 0 || desc.in_width <= 0 ||
        desc.in_channels > kMaxDim || desc.in_height > kMaxDim || desc.in_width > kMaxDim)
        fail(DANN_ERR_SHAPE, "input shape must be positive (channels x height x width), got " +
                                 std::to_string(desc.in_channels) + "x" +
                                 std::to_string(desc.in_height) + "x" +
                                 std::to_string(desc.in_width));
    m->in_c = desc.in_channels;
    m->in_h = desc.in_height;
    m->in_w = desc.in_width;
    m->domain_bn = desc.domain_batchnorm != 0;
    Shape shape{m->in_c, m->in_h, m->in_w, false};
    if (shape.size() > kMaxElements) fail(DANN_ERR_SHAPE, "input is too large");
    build_stack(*m, Stack::features, "features", desc.features, desc.n_features, shape);
    m->feature_size = shape.size();
    const Shape feature{m->feature_size, 1, 1, true};
    Shape label = feature, domain = feature;
    build_stack(*m, Stack::label, "label_head", desc.label_head, desc.n_label_head, label);
    build_stack(*m, Stack::domain, "domain_head", desc.domain_head, desc.n_domain_head, domain);
    check_head_end(m->label_head, "label_head", true);
    check_head_end(m->domain_head, "domain_head", false);
    m->num_classes = m->label_head.back().desc.units;
    m->input_mean.assign(static_cast<size_t>(m->in_c), 0.0f);

    // Every weight and bias uniform in +-1/sqrt(fan_in), as PyTorch initialises
    // Conv2d and Linear; batch-norm scale 1, shift 0, running mean 0, var 1.
    SplitMix64 rng(seed);
    for (Param &p : m->params) {
        if (p.trainable) continue;
        const float fill = p.name.find("running_var") != std::string::npos ? 1.0f : 0.0f;
        for (size_t i = 0; i < p.numel; ++i) p.data.f32()[i] = fill;
    }
    for (const auto *stack : {&m->features, &m->label_head, &m->domain_head}) {
        for (const LayerSpec &spec : *stack) {
            if (spec.first_param < 0) continue;
            Param &w = m->params[static_cast<size_t>(spec.first_param)];
            Param &b = m->params[static_cast<size_t>(spec.first_param) + 1];
            if (spec.desc.kind == DANN_LAYER_BATCHNORM) {
                for (size_t i = 0; i < w.numel; ++i) w.data.f32()[i] = 1.0f;
                for (size_t i = 0; i < b.numel; ++i) b.data.f32()[i] = 0.0f;
                continue;
            }
            const size_t fan_in = w.numel / static_cast<size_t>(w.shape[0]);
            const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
            for (Param *p : {&w, &b})
                for (size_t i = 0; i < p->numel; ++i)
                    p->data.f32()[i] = (2.0f * rng.uniform() - 1.0f) * bound;
        }
    }
    return m;
}

const std::vector<LayerSpec> &Model::stack(Stack s) const {
    return s == Stack::features ? features : s == Stack::label ? label_head : domain_head;
}

size_t Model::trainable_scalars() const {
    size_t n = 0;
    for (const Param &p : params)
        if (p.trainable) n += p.numel;
    return n;
}

ParamBinding Model::binding(const LayerSpec &spec, float *const *grads) const {
    ParamBinding b;
    if (spec.first_param < 0) return b;
    const size_t i = static_cast<size_t>(spec.first_param);
    auto data = [&](size_t k) { return params[i + k].data.f32(); };
    auto grad = [&](size_t k) { return grads ? grads[i + k] : nullptr; };
    b.weight = data(0);
    b.bias = data(1);
    b.grad_weight = grad(0);
    b.grad_bias = grad(1);
    if (spec.desc.kind == DANN_LAYER_BATCHNORM) {
        b.running_mean = data(2);
        b.running_var = data(3);
        if (domain_bn) {
            b.running_mean_target = data(4);
            b.running_var_target = data(5);
        }
    }
    return b;
}

} // namespace dann

namespace dann {

std::unique_ptr<Model> Model::clone() const {
    std::vector<dann_layer_desc> f, l, d;
    for (const LayerSpec &s : features) f.push_back(s.desc);
    for (const LayerSpec &s : label_head) l.push_back(s.desc);
    for (const LayerSpec &s : domain_head) d.push_back(s.desc);
    dann_model_desc desc = describe(in_c, in_h, in_w, f.data(), f.size(), l.data(), l.size(),
                                    d.data(), d.size());
    desc.domain_batchnorm = domain_bn ? 1 : 0;
    std::unique_ptr<Model> m = create(desc, 0);
    m->copy_params_from(*this);
    m->input_scale = input_scale;
    m->input_mean = input_mean;
    m->threads = threads;
    m->replay = replay;
    return m;
}

void Model::copy_params_from(const Model &src) {
    for (size_t i = 0; i < params.size(); ++i)
        std::memcpy(params[i].data.data(), src.params[i].data.data(),
                    params[i].numel * sizeof(float));
    ++version;
}

} // namespace dann
