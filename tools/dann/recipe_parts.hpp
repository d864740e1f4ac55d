// Building blocks of the training recipes (recipe.cpp), all on the public C
// API: seeded batch draws, the architectures, a trainer whose entropy weight
// can change, the weight average, and batch-norm statistics moved between the
// two domains' slots. Internal to the tool; tests reach them through recipe.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dann.h"
#include "recipe.hpp"

namespace dann::tool::recipe_parts {

[[noreturn]] void fail(const std::string &what);
// Throws "what: dann_last_error()" unless status is DANN_OK.
void check(dann_status status, const std::string &what);

struct ModelDeleter {
    void operator()(dann_model *m) const { dann_model_destroy(m); }
};
struct TrainerDeleter {
    void operator()(dann_trainer *t) const { dann_trainer_destroy(t); }
};
struct ContextDeleter {
    void operator()(dann_context *c) const { dann_context_destroy(c); }
};
using ModelPtr = std::unique_ptr<dann_model, ModelDeleter>;
using TrainerPtr = std::unique_ptr<dann_trainer, TrainerDeleter>;
using ContextPtr = std::unique_ptr<dann_context, ContextDeleter>;

// ---------------------------------------------------------------------------
// Random draws. Every batch is a pure function of (seed, stream, step), so a
// run resumed from a checkpoint draws exactly what an uninterrupted run draws.

inline uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

enum Stream : uint64_t { kSourceDraw = 1, kTargetDraw = 2, kPseudoDraw = 3, kCandidate = 4 };

class Draws {
public:
    Draws(uint64_t seed, uint64_t stream, uint64_t step)
        : state_(mix64(mix64(mix64(seed) ^ stream) + step)) {}
    // Uniform in [0, n); the modulo bias is below n / 2^64.
    size_t below(size_t n) {
        state_ += 0x9E3779B97F4A7C15ull;
        uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return static_cast<size_t>((z ^ (z >> 31)) % n);
    }

private:
    uint64_t state_;
};

// ---------------------------------------------------------------------------
// Batches gathered from a Dataset.

struct Batch {
    std::vector<uint8_t> u8;
    std::vector<float> f32;
    std::vector<int32_t> labels;
    dann_batch view{};
};

// Samples [start, start + n) of `d` as a batch.
dann_batch view_of(const Dataset &d, size_t start, size_t n);

// Copies samples idx[0..n) of `d` into `b`; labels from `labels` when given.
void gather(const Dataset &d, const std::vector<size_t> &idx, const int32_t *labels, Batch &b);

// Throws, naming `what`, unless the samples (and labels, if needed) are whole.
void check_dataset(const Dataset &d, const char *what, bool need_labels);

// max(label) + 1, at least 2.
int count_classes(const Dataset &labelled);

// ---------------------------------------------------------------------------
// Architectures.

struct Arch {
    bool mlp = false;
    dann_preset preset = DANN_PRESET_MNIST;
    std::vector<int> hidden;
    bool relu = false; // mlp activation (sigmoid by default, as the shallow DANN)
};

// "mnist" | "svhn" | "gtsrb" | "mlp:H[,H...][:relu|:sigmoid]"; throws otherwise.
Arch parse_arch(const std::string &text);

// A preset's input side (square images) and class count.
struct ImageShape {
    int size, classes;
};
ImageShape preset_shape(dann_preset p);

// The paper's networks with what the best public implementations add:
// BatchNorm after every convolution (each domain normalised with its own
// statistics) and dropout 0.5 after every hidden layer of the label head. The
// domain head gets no BatchNorm: per-domain normalisation there would hide
// from the discriminator the very shift it has to see.
std::vector<dann_layer_desc> best_features(dann_preset p);

// DENSE h + act (+ dropout) per hidden size, then DENSE out.
std::vector<dann_layer_desc> dense_stack(const std::vector<int> &hidden, dann_layer_desc act,
                                         float dropout, int out);

// A trainer whose entropy weight can change: the state moves to a new trainer
// through a checkpoint file (model, optimizer state and step count), written
// to `scratch` (or, if empty, to a file in the temporary folder) and removed
// by the destructor.
class Stepper {
public:
    Stepper(dann_model *model, const dann_train_params &params, std::string scratch = "");
    ~Stepper();
    Stepper(const Stepper &) = delete;
    Stepper &operator=(const Stepper &) = delete;

    // The trainer for this entropy weight (a new one when it changes).
    dann_trainer *get(float entropy_weight);
    dann_trainer *current() const { return trainer_.get(); }

private:
    dann_model *model_;
    dann_train_params params_;
    TrainerPtr trainer_;
    std::string scratch_;
    bool used_ = false;
};

// An exponential moving average of the trainable parameters (Polyak
// averaging), the weights the run finally keeps: avg = d avg + (1 - d) w after
// every step, with the usual warm-up d_t = min(decay, (1 + t) / (10 + t)).
// Its state goes to a file beside each checkpoint, named after the step.
class WeightAverage {
public:
    WeightAverage(const dann_model *model, float decay);

    // After step t (0-based) of the run.
    void update(const dann_model *model, uint64_t t);
    // Replaces the model's trainable parameters by the average.
    void apply(dann_model *model) const;

    static std::string path_for(const std::string &checkpoint, uint64_t step) {
        return checkpoint + ".avg-" + std::to_string(step);
    }
    // Written to a temporary file, flushed and renamed: whole or absent.
    void save(const std::string &path, uint64_t step) const;
    // Throws unless `path` holds this model's average at `step`, intact.
    void load(const std::string &path, uint64_t step);

private:
    float decay_;
    std::vector<size_t> index_;
    std::vector<std::vector<float>> avg_;
    std::vector<float> scratch_;
};

// Class probabilities of every sample of `d` (n x classes), with the batch-norm
// statistics of `domain`.
std::vector<float> predict_all(const dann_model *model, const Dataset &d, dann_domain domain);

inline size_t argmax(const float *p, size_t n) { return size_t(std::max_element(p, p + n) - p); }

// Copies each batch-norm layer's running statistics from one domain's slots
// to the other's: source to target, or target to source.
void copy_statistics(dann_model *model, bool target_to_source);

} // namespace dann::tool::recipe_parts
