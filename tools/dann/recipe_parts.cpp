#include "recipe_parts.hpp"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace dann::tool::recipe_parts {

void fail(const std::string &what) { throw std::runtime_error(what); }

void check(dann_status status, const std::string &what) {
    if (status != DANN_OK) fail(what + ": " + dann_last_error());
}

dann_batch view_of(const Dataset &d, size_t start, size_t n) {
    if (d.format == DANN_INPUT_U8_HWC)
        return dann_batch_u8_hwc(d.u8.data() + start * d.sample_size(), n, d.height, d.width,
                                 d.channels);
    return dann_batch_f32_nchw(d.f32.data() + start * d.sample_size(), n, d.channels, d.height,
                               d.width);
}

void gather(const Dataset &d, const std::vector<size_t> &idx, const int32_t *labels, Batch &b) {
    const size_t n = idx.size(), size = d.sample_size();
    if (d.format == DANN_INPUT_U8_HWC) {
        b.u8.resize(n * size);
        for (size_t i = 0; i < n; ++i)
            std::copy_n(d.u8.data() + idx[i] * size, size, b.u8.data() + i * size);
        b.view = dann_batch_u8_hwc(b.u8.data(), n, d.height, d.width, d.channels);
    } else {
        b.f32.resize(n * size);
        for (size_t i = 0; i < n; ++i)
            std::copy_n(d.f32.data() + idx[i] * size, size, b.f32.data() + i * size);
        b.view = dann_batch_f32_nchw(b.f32.data(), n, d.channels, d.height, d.width);
    }
    b.labels.resize(n);
    for (size_t i = 0; i < n; ++i) b.labels[i] = labels ? labels[idx[i]] : 0;
}

void check_dataset(const Dataset &d, const char *what, bool need_labels) {
    const std::string name(what);
    if (d.n == 0) fail(name + " has no samples");
    if (d.height <= 0 || d.width <= 0 || d.channels <= 0)
        fail(name + ": bad sample shape " + std::to_string(d.height) + "x" +
             std::to_string(d.width) + "x" + std::to_string(d.channels));
    const size_t want = d.n * d.sample_size();
    const size_t have = d.format == DANN_INPUT_U8_HWC ? d.u8.size() : d.f32.size();
    if (d.format != DANN_INPUT_U8_HWC && d.format != DANN_INPUT_F32_NCHW)
        fail(name + ": samples must be uint8 HWC or float NCHW");
    if (have != want)
        fail(name + ": expected " + std::to_string(want) + " values, got " + std::to_string(have));
    if (need_labels && d.labels.size() != d.n)
        fail(name + ": expected " + std::to_string(d.n) + " labels, got " +
             std::to_string(d.labels.size()));
    for (const int32_t y : need_labels ? d.labels : std::vector<int32_t>{})
        if (y < 0) fail(name + ": negative label " + std::to_string(y));
}

int count_classes(const Dataset &labelled) {
    int32_t top = 1;
    for (const int32_t y : labelled.labels) top = std::max(top, y);
    return int(top) + 1;
}

Arch parse_arch(const std::string &text) {
    Arch a;
    if (text == "mnist")
        a.preset = DANN_PRESET_MNIST;
    else if (text == "svhn")
        a.preset = DANN_PRESET_SVHN;
    else if (text == "gtsrb")
        a.preset = DANN_PRESET_GTSRB;
    else if (text.rfind("mlp:", 0) == 0) {
        a.mlp = true;
        std::string list = text.substr(4);
        for (const char *suffix : {":relu", ":sigmoid"}) {
            const std::string s(suffix);
            if (list.size() > s.size() && list.compare(list.size() - s.size(), s.size(), s) == 0) {
                a.relu = s == ":relu";
                list.resize(list.size() - s.size());
            }
        }
        size_t pos = 0;
        while (pos <= list.size()) {
            const size_t comma = std::min(list.find(',', pos), list.size());
            const std::string item = list.substr(pos, comma - pos);
            char *end = nullptr;
            const long units = item.empty() ? 0 : std::strtol(item.c_str(), &end, 10);
            if (item.empty() || *end != '\0' || units < 1 || units > 65536)
                fail("--arch " + text + ": hidden layer sizes must be integers in [1, 65536]");
            a.hidden.push_back(int(units));
            pos = comma + 1;
        }
    } else {
        fail("unknown architecture '" + text + "' (mnist, svhn, gtsrb or mlp:H[,H...][:relu])");
    }
    return a;
}

ImageShape preset_shape(dann_preset p) {
    switch (p) {
    case DANN_PRESET_MNIST: return {28, 10};
    case DANN_PRESET_SVHN: return {32, 10};
    case DANN_PRESET_GTSRB: return {40, 43};
    }
    return {0, 0};
}

std::vector<dann_layer_desc> best_features(dann_preset p) {
    const auto conv = [](int units, int k, int pad) { return dann_layer_conv2d(units, k, 1, pad); };
    const dann_layer_desc bn = dann_layer_batchnorm(), relu = dann_layer_relu();
    switch (p) {
    case DANN_PRESET_MNIST:
        return {conv(32, 5, 0), bn, relu, dann_layer_maxpool2d(2, 2, 0),
                conv(48, 5, 0), bn, relu, dann_layer_maxpool2d(2, 2, 0)};
    case DANN_PRESET_SVHN:
        return {conv(64, 5, 2),  bn, relu, dann_layer_maxpool2d(3, 2, 1),
                conv(64, 5, 2),  bn, relu, dann_layer_maxpool2d(3, 2, 1),
                conv(128, 5, 2), bn, relu};
    case DANN_PRESET_GTSRB:
        return {conv(96, 5, 0),  bn, relu, dann_layer_maxpool2d(2, 2, 0),
                conv(144, 3, 0), bn, relu, dann_layer_maxpool2d(2, 2, 0),
                conv(256, 5, 0), bn, relu, dann_layer_maxpool2d(2, 2, 0)};
    }
    return {};
}

std::vector<dann_layer_desc> dense_stack(const std::vector<int> &hidden, dann_layer_desc act,
                                         float dropout, int out) {
    std::vector<dann_layer_desc> layers;
    for (const int h : hidden) {
        layers.push_back(dann_layer_dense(h));
        layers.push_back(act);
        if (dropout > 0.0f) layers.push_back(dann_layer_dropout(dropout));
    }
    layers.push_back(dann_layer_dense(out));
    return layers;
}

Stepper::Stepper(dann_model *model, const dann_train_params &params, std::string scratch)
    : model_(model), params_(params), scratch_(std::move(scratch)) {}

Stepper::~Stepper() {
    if (used_) std::remove(scratch_.c_str());
}

namespace {

std::string scratch_path() {
    static std::atomic<unsigned> counter{0};
    const auto dir = std::filesystem::temp_directory_path();
    return (dir /
            ("dann-recipe-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + ".ckpt"))
        .string();
}

} // namespace

dann_trainer *Stepper::get(float entropy_weight) {
    if (trainer_ && entropy_weight == params_.entropy_weight) return trainer_.get();
    if (trainer_) {
        if (scratch_.empty()) scratch_ = scratch_path();
        used_ = true;
        check(dann_trainer_save(trainer_.get(), scratch_.c_str()), "switching trainers");
    }
    params_.entropy_weight = entropy_weight;
    dann_trainer *t = nullptr;
    check(dann_trainer_create(model_, &params_, &t), "dann_trainer_create");
    TrainerPtr next(t);
    if (trainer_) {
        trainer_.reset();
        check(dann_trainer_load(next.get(), scratch_.c_str()), "switching trainers");
    }
    trainer_ = std::move(next);
    return trainer_.get();
}

namespace {

constexpr uint64_t kMagic = 0x3147564141444E44ull; // "DNDAAVG1"

// FNV-1a over the bytes of the average's file, as they are written or read.
void fnv(const void *data, size_t n, uint64_t &hash) {
    const auto *p = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 0x100000001B3ull;
}
bool write_hashed(std::FILE *f, const void *data, size_t n, uint64_t &hash) {
    fnv(data, n, hash);
    return std::fwrite(data, 1, n, f) == n;
}
bool read_hashed(std::FILE *f, void *data, size_t n, uint64_t &hash) {
    if (std::fread(data, 1, n, f) != n) return false;
    fnv(data, n, hash);
    return true;
}

} // namespace

WeightAverage::WeightAverage(const dann_model *model, float decay) : decay_(decay) {
    const size_t count = dann_model_param_count(model);
    for (size_t i = 0; i < count; ++i) {
        dann_param_info info;
        check(dann_model_param_info(model, i, &info), "dann_model_param_info");
        if (!info.trainable) continue;
        index_.push_back(i);
        avg_.emplace_back(info.numel);
        check(dann_model_param_get(model, i, avg_.back().data(), info.numel),
              "dann_model_param_get");
    }
}

void WeightAverage::update(const dann_model *model, uint64_t t) {
    const float d = std::min(decay_, float(double(1 + t) / double(10 + t)));
    for (size_t j = 0; j < index_.size(); ++j) {
        std::vector<float> &a = avg_[j];
        scratch_.resize(a.size());
        check(dann_model_param_get(model, index_[j], scratch_.data(), a.size()),
              "dann_model_param_get");
        for (size_t k = 0; k < a.size(); ++k) a[k] = d * a[k] + (1.0f - d) * scratch_[k];
    }
}

void WeightAverage::apply(dann_model *model) const {
    for (size_t j = 0; j < index_.size(); ++j)
        check(dann_model_param_set(model, index_[j], avg_[j].data(), avg_[j].size()),
              "dann_model_param_set");
}

void WeightAverage::save(const std::string &path, uint64_t step) const {
    std::vector<uint64_t> words = {kMagic, step, uint64_t(avg_.size())};
    const std::string tmp = path + ".tmp";
    std::FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail("cannot write " + tmp);
    uint64_t hash = 0xCBF29CE484222325ull;
    bool ok = write_hashed(f, words.data(), words.size() * sizeof(uint64_t), hash);
    for (const auto &a : avg_) {
        const uint64_t n = a.size();
        ok = ok && write_hashed(f, &n, sizeof n, hash) &&
             write_hashed(f, a.data(), n * sizeof(float), hash);
    }
    uint64_t h = hash;
    ok = ok && std::fwrite(&h, sizeof h, 1, f) == 1 && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail("writing " + path + " failed");
    }
}

void WeightAverage::load(const std::string &path, uint64_t step) {
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) fail("the checkpoint's weight average " + path + " is missing");
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> closer(f, std::fclose);
    uint64_t hash = 0xCBF29CE484222325ull, head[3] = {0, 0, 0};
    bool ok = read_hashed(f, head, sizeof head, hash) && head[0] == kMagic && head[1] == step &&
              head[2] == avg_.size();
    for (size_t j = 0; ok && j < avg_.size(); ++j) {
        uint64_t n = 0;
        ok = read_hashed(f, &n, sizeof n, hash) && n == avg_[j].size() &&
             read_hashed(f, avg_[j].data(), n * sizeof(float), hash);
    }
    uint64_t stored = 0;
    ok = ok && std::fread(&stored, sizeof stored, 1, f) == 1 && stored == hash;
    if (!ok) fail(path + ": not the weight average of this run at step " + std::to_string(step));
}

std::vector<float> predict_all(const dann_model *model, const Dataset &d, dann_domain domain) {
    dann_model_info info;
    check(dann_model_get_info(model, &info), "dann_model_get_info");
    const size_t classes = size_t(info.num_classes), chunk = 500;
    dann_context *c = nullptr;
    check(dann_context_create(model, &c), "dann_context_create");
    ContextPtr ctx(c);
    check(dann_context_set_domain(ctx.get(), domain), "dann_context_set_domain");
    std::vector<float> probs(d.n * classes);
    for (size_t start = 0; start < d.n; start += chunk) {
        const size_t n = std::min(chunk, d.n - start);
        const dann_batch b = view_of(d, start, n);
        check(dann_predict(ctx.get(), &b, probs.data() + start * classes, n * classes, nullptr, 0),
              "dann_predict");
    }
    return probs;
}

void copy_statistics(dann_model *model, bool target_to_source) {
    const size_t count = dann_model_param_count(model);
    std::vector<float> buf;
    for (size_t i = 0; i < count; ++i) {
        dann_param_info info;
        check(dann_model_param_info(model, i, &info), "dann_model_param_info");
        const std::string name = info.name;
        for (const std::string stat : {"running_mean", "running_var"}) {
            if (name.size() < stat.size() ||
                name.compare(name.size() - stat.size(), stat.size(), stat) != 0)
                continue;
            size_t j = 0;
            if (dann_model_param_find(model, (name + "_target").c_str(), &j) != DANN_OK) continue;
            const size_t from = target_to_source ? j : i, to = target_to_source ? i : j;
            buf.resize(info.numel);
            check(dann_model_param_get(model, from, buf.data(), buf.size()),
                  "dann_model_param_get");
            check(dann_model_param_set(model, to, buf.data(), buf.size()), "dann_model_param_set");
        }
    }
}

} // namespace dann::tool::recipe_parts
