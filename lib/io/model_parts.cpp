#include "io/model_parts.hpp"

#include <cmath>
#include <cstring>

namespace dann::io {
namespace {

uint64_t add_sat(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
uint64_t mul_sat(uint64_t a, uint64_t b) { return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

struct Dims {
    uint64_t c = 0, h = 1, w = 1;
    bool flat = false;
    uint64_t size() const { return mul_sat(mul_sat(c, h), w); }
};

// Adds the parameter values of one stack to `total` and advances `s`; false
// (adding nothing, as Model::create allocates nothing for a stack it
// rejects) when a layer is one Model::create refuses.
bool count_stack(const dann_layer_desc *layers, size_t n, bool domain_bn, Dims &s, uint64_t &total) {
    uint64_t stack = 0;
    for (size_t i = 0; i < n; ++i) {
        const dann_layer_desc d = with_defaults(layers[i]);
        switch (d.kind) {
        case DANN_LAYER_CONV2D:
        case DANN_LAYER_MAXPOOL2D: {
            if (s.flat || d.kernel_h <= 0 || d.kernel_w <= 0 || d.stride_h <= 0 || d.stride_w <= 0 ||
                d.pad_h < 0 || d.pad_w < 0)
                return false;
            const uint64_t ph = s.h + 2 * uint64_t(d.pad_h), pw = s.w + 2 * uint64_t(d.pad_w);
            if (ph < uint64_t(d.kernel_h) || pw < uint64_t(d.kernel_w)) return false;
            const uint64_t oh = (ph - uint64_t(d.kernel_h)) / uint64_t(d.stride_h) + 1;
            const uint64_t ow = (pw - uint64_t(d.kernel_w)) / uint64_t(d.stride_w) + 1;
            if (d.kind == DANN_LAYER_CONV2D) {
                if (d.units <= 0) return false;
                const uint64_t units = uint64_t(d.units);
                stack = add_sat(stack, add_sat(mul_sat(mul_sat(units, s.c),
                                                       mul_sat(uint64_t(d.kernel_h), uint64_t(d.kernel_w))),
                                               units));
                s.c = units;
            }
            s.h = oh;
            s.w = ow;
            break;
        }
        case DANN_LAYER_DENSE: {
            if (d.units <= 0) return false;
            const uint64_t units = uint64_t(d.units);
            stack = add_sat(stack, add_sat(mul_sat(units, s.size()), units));
            s = Dims{units, 1, 1, true};
            break;
        }
        case DANN_LAYER_BATCHNORM: stack = add_sat(stack, mul_sat(s.c, domain_bn ? 6 : 4)); break;
        case DANN_LAYER_FLATTEN: s = Dims{s.size(), 1, 1, true}; break;
        default: break;
        }
    }
    total = add_sat(total, stack);
    return true;
}

} // namespace

void write_layers(ByteWriter &w, const std::vector<LayerSpec> &layers) {
    w.u32(static_cast<uint32_t>(layers.size()));
    for (const LayerSpec &s : layers) {
        const dann_layer_desc &d = s.desc;
        w.i32(raw_enum(d.kind));
        for (int v : {d.units, d.kernel_h, d.kernel_w, d.stride_h, d.stride_w, d.pad_h, d.pad_w})
            w.i32(v);
        w.f32(d.rate);
        w.f32(d.eps);
        w.f32(d.momentum);
    }
}

std::vector<dann_layer_desc> read_layers(ByteReader &r, const char *stack) {
    constexpr size_t kLayerBytes = 11 * 4;
    const uint32_t n = r.u32("layer count");
    if (n > 4096) r.bad(std::string(stack) + ": " + std::to_string(n) + " layers is too many");
    r.need_items(n, kLayerBytes, std::string(stack) + " layers");
    std::vector<dann_layer_desc> out(n);
    for (dann_layer_desc &d : out) {
        std::memset(&d, 0, sizeof d);
        const int32_t kind = r.i32("layer kind");
        if (kind < DANN_LAYER_CONV2D || kind > DANN_LAYER_FLATTEN)
            r.bad(std::string(stack) + ": unknown layer kind " + std::to_string(kind));
        d.kind = static_cast<dann_layer_kind>(kind);
        for (int *v : {&d.units, &d.kernel_h, &d.kernel_w, &d.stride_h, &d.stride_w, &d.pad_h, &d.pad_w})
            *v = r.i32("layer field");
        d.rate = r.f32("dropout rate");
        d.eps = r.f32("batch-norm eps");
        d.momentum = r.f32("batch-norm momentum");
    }
    return out;
}

uint64_t architecture_values(const dann_model_desc &desc) {
    if (desc.in_channels <= 0 || desc.in_height <= 0 || desc.in_width <= 0) return 0;
    Dims s{uint64_t(desc.in_channels), uint64_t(desc.in_height), uint64_t(desc.in_width), false};
    const bool dbn = desc.domain_batchnorm != 0;
    uint64_t total = 0;
    if (!count_stack(desc.features, desc.n_features, dbn, s, total)) return total;
    const Dims feature{s.size(), 1, 1, true};
    Dims label = feature, domain = feature;
    if (!count_stack(desc.label_head, desc.n_label_head, dbn, label, total)) return total;
    count_stack(desc.domain_head, desc.n_domain_head, dbn, domain, total);
    return total;
}

std::unique_ptr<Model> create_checked(const dann_model_desc &desc, uint64_t param_bytes_available,
                                      const ByteReader &r) {
    const uint64_t values = architecture_values(desc);
    if (values > param_bytes_available / 4)
        r.bad("the architecture has " + (values == UINT64_MAX ? std::string("too many") : std::to_string(values)) +
              " parameter values, more than the " + std::to_string(param_bytes_available) +
              " bytes of parameters in the file hold");
    try {
        return Model::create(desc, 0);
    } catch (const Error &e) {
        r.bad(std::string("the architecture is invalid: ") + e.what());
    }
}

void write_params(ByteWriter &w, const Model &m) {
    w.u32(static_cast<uint32_t>(m.params.size()));
    for (const Param &q : m.params) {
        w.str(q.name);
        w.u32(static_cast<uint32_t>(q.shape.size()));
        for (int64_t s : q.shape) w.u64(static_cast<uint64_t>(s));
        w.floats(q.data.f32(), q.numel);
    }
}

void read_params(ByteReader &r, Model &m) {
    const uint32_t count = r.u32("parameter count");
    if (count != m.params.size())
        r.bad("holds " + std::to_string(count) + " parameters, the architecture has " +
              std::to_string(m.params.size()));
    for (Param &q : m.params) {
        const std::string name = r.str("parameter name", 4096);
        if (name != q.name) r.bad("parameter '" + name + "' where '" + q.name + "' was expected");
        const uint32_t ndim = r.u32("parameter rank");
        if (ndim != q.shape.size())
            r.bad(name + ": rank " + std::to_string(ndim) + " does not match the architecture's " +
                  std::to_string(q.shape.size()));
        for (int64_t s : q.shape)
            if (r.u64("parameter shape") != static_cast<uint64_t>(s))
                r.bad(name + ": shape does not match the architecture");
        r.floats(q.data.f32(), q.numel, name);
        for (size_t i = 0; i < q.numel; ++i)
            if (!std::isfinite(q.data.f32()[i]))
                r.bad(name + "[" + std::to_string(i) + "] holds NaN or Inf");
    }
}

void write_optimizer(ByteWriter &w, const Model &m, const OptimizerState &s) {
    w.u32(static_cast<uint32_t>(s.optimizer));
    w.u64(s.steps);
    for (size_t i = 0; i < m.params.size(); ++i) {
        w.u64(s.param_steps[i]);
        w.u64(s.slot1[i].size());
        w.floats(s.slot1[i].data(), s.slot1[i].size());
        w.u64(s.slot2[i].size());
        w.floats(s.slot2[i].data(), s.slot2[i].size());
    }
}

void read_optimizer(ByteReader &r, const Model &m, OptimizerState &s) {
    s.optimizer = static_cast<int>(r.u32("optimizer"));
    if (s.optimizer != DANN_OPTIMIZER_SGD && s.optimizer != DANN_OPTIMIZER_ADAM)
        r.bad("unknown optimizer " + std::to_string(s.optimizer));
    s.steps = r.u64("step count");
    for (const Param &q : m.params) {
        s.param_steps.push_back(r.u64("parameter step count"));
        for (auto *slot : {&s.slot1, &s.slot2}) {
            const uint64_t n = r.u64("optimizer state size");
            const bool second = slot == &s.slot2;
            const uint64_t want = !q.trainable ? 0
                                  : second     ? (s.optimizer == DANN_OPTIMIZER_ADAM ? q.numel : 0)
                                               : q.numel;
            if (n != want)
                r.bad(q.name + ": optimizer state has " + std::to_string(n) + " values, expected " +
                      std::to_string(want));
            slot->emplace_back(static_cast<size_t>(n));
            r.floats(slot->back().data(), n, q.name + " optimizer state");
            for (float v : slot->back())
                if (!std::isfinite(v)) r.bad(q.name + ": optimizer state holds NaN or Inf");
        }
    }
}

void check_norm(const ByteReader &r, float scale, const std::vector<float> &mean) {
    if (!std::isfinite(scale)) r.bad("input scale is not finite");
    for (size_t c = 0; c < mean.size(); ++c)
        if (!std::isfinite(mean[c])) r.bad("input mean of channel " + std::to_string(c) + " is not finite");
}

} // namespace dann::io
