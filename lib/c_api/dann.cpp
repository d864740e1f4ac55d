// dann's extern "C" functions (models, contexts, trainers, files): arguments
// are checked here, and every exception becomes a status and a per-thread
// message (c_api/handles.hpp).
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "core/dnn.hpp"
#include "core/error.hpp"
#include "io/model_file.hpp"
#include "io/replay.hpp"
#include "network/context.hpp"
#include "network/input.hpp"
#include "network/model.hpp"
#include "train/trainer.hpp"

#include "c_api/handles.hpp"

namespace {

using namespace dann::capi;

dann_status create_model(const dann_model_desc &desc, uint64_t seed, dann_model **out) {
    reset_out(out);
    return guard([&] {
        need(out, "out");
        auto m = std::make_unique<dann_model>();
        m->impl = dann::Model::create(desc, seed);
        *out = m.release();
    });
}

const dann::Param &param_at(const dann_model *model, size_t index) {
    need(model, "model");
    const auto &ps = model->impl->params;
    if (index >= ps.size())
        fail(DANN_ERR_INVALID_ARGUMENT, "parameter index " + std::to_string(index) +
                                            " is out of range (the model has " +
                                            std::to_string(ps.size()) + ")");
    return ps[index];
}

dann_batch make_batch(dann_input_format format, const void *data, size_t n, int height,
                      int width, int channels) {
    dann_batch b;
    b.format = format;
    b.data = data;
    b.n = n;
    b.height = height;
    b.width = width;
    b.channels = channels;
    return b;
}

// The parameter at `index`, with `data` non-NULL and `count` its size.
const dann::Param &param_io(const dann_model *model, size_t index, const float *data,
                            size_t count) {
    const dann::Param &p = param_at(model, index);
    need(data, "data");
    if (count != p.numel)
        fail(DANN_ERR_SHAPE, p.name + " has " + std::to_string(p.numel) + " values, count is " +
                                 std::to_string(count));
    return p;
}

} // namespace

extern "C" {

const char *dann_status_string(dann_status status) {
    switch (dann::raw_enum(status)) {
    case DANN_OK: return "DANN_OK: success";
    case DANN_ERR_INVALID_ARGUMENT: return "DANN_ERR_INVALID_ARGUMENT: invalid argument";
    case DANN_ERR_SHAPE: return "DANN_ERR_SHAPE: wrong size, count or dimension";
    case DANN_ERR_NUMERIC: return "DANN_ERR_NUMERIC: NaN or Inf";
    case DANN_ERR_OUT_OF_MEMORY: return "DANN_ERR_OUT_OF_MEMORY: out of memory";
    case DANN_ERR_BACKEND: return "DANN_ERR_BACKEND: oneDNN failed";
    case DANN_ERR_IO: return "DANN_ERR_IO: input/output error";
    case DANN_ERR_FORMAT: return "DANN_ERR_FORMAT: malformed or corrupted file";
    case DANN_ERR_UNSUPPORTED: return "DANN_ERR_UNSUPPORTED: not supported by this build";
    case DANN_ERR_INTERNAL: return "DANN_ERR_INTERNAL: internal error";
    }
    return "unknown dann_status";
}

const char *dann_last_error(void) { return dann::last_error(); }

const char *dann_version_string(void) {
#define DANN_STR2(x) #x
#define DANN_STR(x) DANN_STR2(x)
    return DANN_STR(DANN_VERSION_MAJOR) "." DANN_STR(DANN_VERSION_MINOR) "." DANN_STR(
        DANN_VERSION_PATCH);
#undef DANN_STR
#undef DANN_STR2
}

unsigned dann_version_number(void) { return DANN_VERSION_NUMBER; }

static dann_layer_desc layer(dann_layer_kind kind) {
    dann_layer_desc d;
    std::memset(&d, 0, sizeof d);
    d.kind = kind;
    return d;
}

dann_layer_desc dann_layer_conv2d(int out_channels, int kernel, int stride, int pad) {
    dann_layer_desc d = layer(DANN_LAYER_CONV2D);
    d.units = out_channels;
    d.kernel_h = d.kernel_w = kernel;
    d.stride_h = d.stride_w = stride;
    d.pad_h = d.pad_w = pad;
    return d;
}

dann_layer_desc dann_layer_maxpool2d(int kernel, int stride, int pad) {
    dann_layer_desc d = layer(DANN_LAYER_MAXPOOL2D);
    d.kernel_h = d.kernel_w = kernel;
    d.stride_h = d.stride_w = stride;
    d.pad_h = d.pad_w = pad;
    return d;
}

dann_layer_desc dann_layer_dense(int units) {
    dann_layer_desc d = layer(DANN_LAYER_DENSE);
    d.units = units;
    return d;
}

dann_layer_desc dann_layer_relu(void) { return layer(DANN_LAYER_RELU); }
dann_layer_desc dann_layer_sigmoid(void) { return layer(DANN_LAYER_SIGMOID); }
dann_layer_desc dann_layer_dropout(float rate) {
    dann_layer_desc d = layer(DANN_LAYER_DROPOUT);
    d.rate = rate;
    return d;
}
dann_layer_desc dann_layer_batchnorm(void) { return layer(DANN_LAYER_BATCHNORM); }
dann_layer_desc dann_layer_flatten(void) { return layer(DANN_LAYER_FLATTEN); }

dann_status dann_model_create(const dann_model_desc *desc, uint64_t seed, dann_model **out) {
    if (!desc) {
        reset_out(out);
        return guard([] { fail(DANN_ERR_INVALID_ARGUMENT, "desc is NULL"); });
    }
    return create_model(*desc, seed, out);
}

dann_status dann_model_create_preset(dann_preset preset, uint64_t seed, dann_model **out) {
    dann_model_desc desc{};
    dann_status st = guard([&] { desc = dann::preset_desc(dann::raw_enum(preset)); });
    if (st != DANN_OK) {
        reset_out(out);
        return st;
    }
    return create_model(desc, seed, out);
}

dann_status dann_model_create_mlp(int input_dim, int hidden_units, int num_classes,
                                  uint64_t seed, dann_model **out) {
    const dann_layer_desc features[] = {dann_layer_dense(hidden_units), dann_layer_sigmoid()};
    const dann_layer_desc label[] = {dann_layer_dense(num_classes)};
    const dann_layer_desc domain[] = {dann_layer_dense(1)};
    return create_model(dann::describe(input_dim, 1, 1, features, 2, label, 1, domain, 1), seed,
                        out);
}

void dann_model_destroy(dann_model *model) { delete model; }

dann_status dann_model_clone(const dann_model *model, dann_model **out) {
    reset_out(out);
    return guard([&] {
        need(model, "model");
        need(out, "out");
        auto m = std::make_unique<dann_model>();
        m->impl = model->impl->clone();
        *out = m.release();
    });
}

dann_status dann_model_get_info(const dann_model *model, dann_model_info *out) {
    return guard([&] {
        need(model, "model");
        need(out, "out");
        const dann::Model &m = *model->impl;
        out->in_channels = m.in_c;
        out->in_height = m.in_h;
        out->in_width = m.in_w;
        out->num_classes = m.num_classes;
        out->feature_size = static_cast<int>(m.feature_size);
        out->n_params = m.params.size();
        out->n_weights = m.trainable_scalars();
    });
}

dann_status dann_model_set_input_norm(dann_model *model, float scale, const float *mean,
                                      int channels) {
    return guard([&] {
        need(model, "model");
        need(mean, "mean");
        dann::Model &m = *model->impl;
        if (channels != m.in_c)
            fail(DANN_ERR_SHAPE, "mean has " + std::to_string(channels) +
                                     " channels, the model has " + std::to_string(m.in_c));
        if (!std::isfinite(scale)) fail(DANN_ERR_NUMERIC, "scale is NaN or Inf");
        for (int c = 0; c < channels; ++c)
            if (!std::isfinite(mean[c]))
                fail(DANN_ERR_NUMERIC, "mean[" + std::to_string(c) + "] is NaN or Inf");
        m.input_scale = scale;
        m.input_mean.assign(mean, mean + channels);
    });
}

dann_status dann_model_set_threads(dann_model *model, int threads) {
    return guard([&] {
        need(model, "model");
        if (threads < 0 || threads > 4096)
            fail(DANN_ERR_INVALID_ARGUMENT,
                 "threads must be 0 (OpenMP default) or positive, got " + std::to_string(threads));
        model->impl->threads = threads;
    });
}

size_t dann_model_param_count(const dann_model *model) {
    return model ? model->impl->params.size() : 0;
}

dann_status dann_model_param_info(const dann_model *model, size_t index, dann_param_info *out) {
    return guard([&] {
        const dann::Param &p = param_at(model, index);
        need(out, "out");
        std::memset(out, 0, sizeof *out);
        out->name = p.name.c_str();
        out->ndim = static_cast<int>(p.shape.size());
        for (size_t i = 0; i < p.shape.size(); ++i) out->shape[i] = p.shape[i];
        out->numel = p.numel;
        out->trainable = p.trainable ? 1 : 0;
    });
}

dann_status dann_model_param_find(const dann_model *model, const char *name, size_t *index) {
    return guard([&] {
        need(model, "model");
        need(name, "name");
        need(index, "index");
        const auto &ps = model->impl->params;
        for (size_t i = 0; i < ps.size(); ++i)
            if (ps[i].name == name) {
                *index = i;
                return;
            }
        fail(DANN_ERR_INVALID_ARGUMENT, std::string("no parameter named '") + name + "'");
    });
}

dann_status dann_model_param_get(const dann_model *model, size_t index, float *data,
                                 size_t count) {
    return guard([&] {
        const dann::Param &p = param_io(model, index, data, count);
        std::memcpy(data, p.data.f32(), count * sizeof(float));
    });
}

dann_status dann_model_param_set(dann_model *model, size_t index, const float *data,
                                 size_t count) {
    return guard([&] {
        const dann::Param &cp = param_io(model, index, data, count);
        for (size_t i = 0; i < count; ++i)
            if (!std::isfinite(data[i]))
                fail(DANN_ERR_NUMERIC, cp.name + "[" + std::to_string(i) + "] is NaN or Inf");
        if (cp.name.find("running_var") != std::string::npos)
            for (size_t i = 0; i < count; ++i)
                if (data[i] < 0.0f)
                    fail(DANN_ERR_INVALID_ARGUMENT,
                         cp.name + "[" + std::to_string(i) + "] is negative (a variance)");
        dann::Model &m = *model->impl;
        std::memcpy(m.params[index].data.f32(), data, count * sizeof(float));
        ++m.version;
    });
}

dann_batch dann_batch_f32_nchw(const float *data, size_t n, int channels, int height,
                               int width) {
    return make_batch(DANN_INPUT_F32_NCHW, data, n, height, width, channels);
}

dann_batch dann_batch_f32_nhwc(const float *data, size_t n, int height, int width,
                               int channels) {
    return make_batch(DANN_INPUT_F32_NHWC, data, n, height, width, channels);
}

dann_batch dann_batch_u8_hwc(const uint8_t *data, size_t n, int height, int width,
                             int channels) {
    return make_batch(DANN_INPUT_U8_HWC, data, n, height, width, channels);
}

dann_status dann_context_create(const dann_model *model, dann_context **out) {
    reset_out(out);
    return guard([&] {
        need(model, "model");
        need(out, "out");
        auto c = std::make_unique<dann_context>();
        c->impl = std::make_unique<dann::Context>(*model->impl);
        *out = c.release();
    });
}

void dann_context_destroy(dann_context *ctx) { delete ctx; }

dann_status dann_context_set_domain(dann_context *ctx, dann_domain domain) {
    return guard([&] {
        need(ctx, "ctx");
        const int d = dann::raw_enum(domain);
        if (d != DANN_DOMAIN_SOURCE && d != DANN_DOMAIN_TARGET)
            fail(DANN_ERR_INVALID_ARGUMENT, "domain must be DANN_DOMAIN_SOURCE or DANN_DOMAIN_TARGET, got " + std::to_string(d));
        ctx->impl->domain = domain;
    });
}

dann_status dann_predict(dann_context *ctx, const dann_batch *batch, float *probs,
                         size_t probs_count, float *domain_probs, size_t domain_count) {
    return guard([&] {
        need(ctx, "ctx");
        need(probs, "probs");
        dann::check_batch(ctx->impl->model(), batch, "batch");
        ctx->impl->predict(*batch, probs, probs_count, domain_probs, domain_count);
    });
}

dann_status dann_context_quantize(dann_context *ctx, const dann_batch *calibration) {
    return guard([&] {
        need(ctx, "ctx");
        need(calibration, "calibration");
        dann::check_batch(ctx->impl->model(), calibration, "calibration batch");
        ctx->impl->quantize(*calibration);
    });
}

dann_train_params dann_train_params_default(void) {
    dann_train_params p;
    std::memset(&p, 0, sizeof p);
    p.momentum = 0.9f;
    p.weight_decay = 0.0f;
    p.seed = 1;
    p.optimizer = DANN_OPTIMIZER_SGD;
    p.adam_beta1 = 0.9f;
    p.adam_beta2 = 0.999f;
    p.adam_eps = 1e-8f;
    p.entropy_weight = 0.0f;
    p.precision = DANN_PRECISION_F32;
    return p;
}

int dann_precision_supported(dann_precision precision) {
    switch (static_cast<int>(precision)) {
    case DANN_PRECISION_F32: return 1;
    case DANN_PRECISION_BF16:
        try {
            return dann::dnn::bf16_native() ? 1 : 0;
        } catch (...) {
            return 0;
        }
    case DANN_PRECISION_INT8:
        try {
            return dann::dnn::int8_native() ? 1 : 0;
        } catch (...) {
            return 0;
        }
    default: return 0;
    }
}

dann_status dann_trainer_create(dann_model *model, const dann_train_params *params,
                                dann_trainer **out) {
    reset_out(out);
    return guard([&] {
        need(model, "model");
        need(params, "params");
        need(out, "out");
        dann::check_train_params(*params, "");
        auto t = std::make_unique<dann_trainer>();
        t->impl = std::make_unique<dann::Trainer>(*model->impl, *params);
        *out = t.release();
    });
}

void dann_trainer_destroy(dann_trainer *trainer) { delete trainer; }

dann_status dann_trainer_step(dann_trainer *trainer, const dann_batch *source,
                              const int32_t *labels, const dann_batch *target, float lambda,
                              float lr, dann_step_result *out) {
    if (out) std::memset(out, 0, sizeof *out);
    return guard([&] {
        need(trainer, "trainer");
        const dann::Model &m = trainer->impl->model();
        dann::check_batch(m, source, "source batch");
        if (target) dann::check_batch(m, target, "target batch");
        dann_step_result r = trainer->impl->step(*source, labels, target, lambda, lr);
        if (out) *out = r;
    });
}

dann_status dann_trainer_adapt_batchnorm(dann_trainer *trainer, const dann_batch *target,
                                         size_t batch_size) {
    return guard([&] {
        need(trainer, "trainer");
        dann::check_batch(trainer->impl->model(), target, "target batch");
        trainer->impl->adapt_batchnorm(*target, batch_size);
    });
}

uint64_t dann_trainer_steps(const dann_trainer *trainer) {
    return trainer ? trainer->impl->steps() : 0;
}

dann_status dann_features(dann_context *ctx, const dann_batch *batch, float *features,
                          size_t count) {
    return guard([&] {
        need(ctx, "ctx");
        need(features, "features");
        dann::check_batch(ctx->impl->model(), batch, "batch");
        ctx->impl->features(*batch, features, count);
    });
}

dann_status dann_model_save(const dann_model *model, const char *path) {
    return guard([&] {
        need(model, "model");
        need(path, "path");
        dann::save_model_file(path, *model->impl, nullptr);
    });
}

dann_status dann_model_load(const char *path, dann_model **out) {
    reset_out(out);
    return guard([&] {
        need(path, "path");
        need(out, "out");
        auto m = std::make_unique<dann_model>();
        m->impl = dann::load_model_file(path).model;
        *out = m.release();
    });
}

dann_status dann_trainer_save(const dann_trainer *trainer, const char *path) {
    return guard([&] {
        need(trainer, "trainer");
        need(path, "path");
        const dann::OptimizerState state = trainer->impl->save_state();
        dann::save_model_file(path, trainer->impl->model(), &state);
    });
}

dann_status dann_trainer_load(dann_trainer *trainer, const char *path) {
    return guard([&] {
        need(trainer, "trainer");
        need(path, "path");
        dann::LoadedModel f = dann::load_model_file(path);
        if (!f.has_optimizer)
            fail(DANN_ERR_FORMAT, std::string(path) + ": a model file, not a checkpoint (no optimizer state)");
        dann::Model &m = trainer->impl->model();
        // Check everything before changing anything.
        const dann::OptimizerState before = trainer->impl->save_state();
        std::vector<std::vector<float>> weights;
        for (const auto &p : m.params) weights.emplace_back(p.data.f32(), p.data.f32() + p.numel);
        dann::copy_weights(*f.model, m);
        try {
            trainer->impl->load_state(f.optimizer);
        } catch (...) {
            for (size_t i = 0; i < m.params.size(); ++i)
                std::memcpy(m.params[i].data.f32(), weights[i].data(), weights[i].size() * sizeof(float));
            trainer->impl->load_state(before);
            throw;
        }
    });
}

dann_status dann_model_set_replay(dann_model *model, const dann_batch *samples,
                                  const int32_t *labels) {
    return guard([&] {
        need(model, "model");
        dann::Model &m = *model->impl;
        if (!samples || samples->n == 0) {
            m.replay = dann::ReplaySet();
            return;
        }
        // Built whole before it replaces the old set: a refused call changes nothing.
        dann::ReplaySet r = dann::io::make_replay_set(m, *samples, labels);
        m.replay = std::move(r);
    });
}

dann_status dann_model_replay_info(const dann_model *model, dann_replay_info *out) {
    if (out) std::memset(out, 0, sizeof *out);
    return guard([&] {
        need(model, "model");
        need(out, "out");
        const dann::ReplaySet &r = model->impl->replay;
        out->n = r.n;
        out->format = r.format;
        out->channels = r.channels;
        out->height = r.height;
        out->width = r.width;
        out->bytes = r.data.size() + r.labels.size() * sizeof(int32_t);
    });
}

dann_status dann_model_get_replay(const dann_model *model, size_t first, size_t count, void *data,
                                  size_t data_bytes, int32_t *labels) {
    return guard([&] {
        need(model, "model");
        const dann::ReplaySet &r = model->impl->replay;
        if (first > r.n || count > r.n - first)
            fail(DANN_ERR_INVALID_ARGUMENT, "samples [" + std::to_string(first) + ", " +
                                                std::to_string(first) + " + " + std::to_string(count) +
                                                ") are out of range: the replay set holds " +
                                                std::to_string(r.n));
        if (count == 0) return;
        need(data, "data");
        const size_t bytes = count * r.sample_bytes();
        if (data_bytes < bytes)
            fail(DANN_ERR_SHAPE, "data_bytes is " + std::to_string(data_bytes) + ", " +
                                     std::to_string(count) + " samples take " + std::to_string(bytes));
        std::memcpy(data, r.data.data() + first * r.sample_bytes(), bytes);
        if (labels) std::memcpy(labels, r.labels.data() + first, count * sizeof(int32_t));
    });
}

float dann_schedule_lr(float p, float mu0, float alpha, float beta) {
    return static_cast<float>(double(mu0) / std::pow(1.0 + double(alpha) * double(p), double(beta)));
}

float dann_schedule_lambda(float p, float gamma) {
    return static_cast<float>(2.0 / (1.0 + std::exp(-double(gamma) * double(p))) - 1.0);
}

} // extern "C"
