// Training recipes of the `dann` tool: data in memory, the paper's recipe and
// the default ("best") one, driven through the public C API. Shared by the
// command-line tool, the examples and the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dann.h"

namespace dann::tool {

// Samples as the C API takes them: uint8 HWC images (channels 1 or 3) or float
// feature vectors (height = width = 1, channels = features).
struct Dataset {
    dann_input_format format = DANN_INPUT_U8_HWC;
    int height = 0, width = 0, channels = 0;
    size_t n = 0;
    std::vector<uint8_t> u8;     // n * height * width * channels (U8_HWC)
    std::vector<float> f32;      // n * channels (F32_NCHW with 1x1 images)
    std::vector<int32_t> labels; // empty when unlabelled
    size_t sample_size() const { return size_t(height) * width * channels; }
};

enum class Mode { dann, source_only, target_oracle };
enum class RecipeKind { paper, best };

struct RecipeConfig {
    std::string arch = "mnist"; // mnist | svhn | gtsrb | mlp:H[,H...]
    Mode mode = Mode::dann;
    RecipeKind recipe = RecipeKind::best;
    int64_t steps = 10000;
    uint64_t seed = 1;
    int threads = 1;
    int batch = 64;              // per domain
    bool deterministic = false;
    // Optional overrides of the recipe's own values (NaN / -1 = recipe default).
    double lr0 = -1, lambda_max = -1, entropy_weight = -1;
    std::string resume_path;     // checkpoint to resume from ("" = fresh)
    std::string checkpoint_path; // where to write checkpoints ("" = none)
    int64_t checkpoint_every = 1000;
    // Overrides of the best recipe's label-free selection for shallow
    // networks (-1 = recipe default): how many candidates are trained, and
    // how many self-training rounds each gets.
    int candidates = -1;
    int self_train_rounds = -1;
    // Arithmetic of the training steps (dann_train_params.precision).
    dann_precision precision = DANN_PRECISION_F32;
};

// The number of steps the recipe was tuned for (docs/recipes.md): 6000 per
// candidate for the best recipe on mlp networks, 10000 otherwise.
int64_t default_steps(const std::string &arch, RecipeKind recipe);

// One line naming the recipe's resolved hyperparameters, for logs.
std::string describe_recipe(const RecipeConfig &config);

// One row of the training log (every log_every steps and at the end).
struct LogRow {
    int64_t step = 0;
    double p = 0, lr = 0, lambda = 0;
    double label_loss = 0, domain_loss = 0, domain_accuracy = 0, target_entropy = 0;
    double eval_accuracy = -1; // -1 when no evaluation data
};

// The label-free score of one candidate of a multi-candidate recipe (lower is
// better): score = source_error + target_entropy.
struct CandidateScore {
    int index = 0;
    double source_error = 0;   // on the labelled source training set
    double target_entropy = 0; // mean prediction entropy on the target, / ln(classes)
    double score = 0;
    bool selected = false;     // set on the kept candidate once all are scored
};

struct Hooks {
    std::function<void(int64_t step, int64_t total)> progress; // may be empty
    std::function<void(const LogRow &)> log;                   // may be empty
    int64_t log_every = 100;
    const Dataset *eval = nullptr; // evaluated at log rows (labels read only for the log)
    dann_domain eval_domain = DANN_DOMAIN_TARGET;
    std::function<void(const CandidateScore &)> candidate; // each candidate, as scored
};

// Trains a model. source: labelled; target: unlabelled for dann (its labels are
// never read), labelled for target_oracle, unused for source_only. Returns the
// trained model (caller destroys it). Throws std::runtime_error with a message
// on failure.
dann_model *train(const RecipeConfig &config, const Dataset &source, const Dataset *target,
                  const Hooks &hooks);

// Accuracy of `model` on a labelled dataset.
double evaluate(const dann_model *model, const Dataset &data, dann_domain domain, int threads);

} // namespace dann::tool
