// Running a saved model over a whole data set, for eval and predict.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dann.h"
#include "recipe.hpp"

namespace dann::tool {

using ModelPtr = std::unique_ptr<dann_model, void (*)(dann_model *)>;

// dann_model_load; throws std::runtime_error "cannot load model PATH: why".
ModelPtr load_model(const std::string &path);
dann_model_info model_info(const dann_model *model);

struct Predictions {
    size_t n = 0;
    int classes = 0;
    std::vector<float> probs;        // n * classes
    std::vector<float> domain_probs; // n, P(target) from the domain head (if asked)
    std::vector<uint8_t> labels;     // n, argmax of probs (classes <= 256)
    std::vector<int32_t> argmax;     // n
};

struct PredictOptions {
    dann_domain domain = DANN_DOMAIN_TARGET;
    size_t batch = 256;
    bool domain_probs = false;
    bool progress = true; // a progress line for large sets
    std::string label = "predict";
    // When set: the context is quantized to int8 (dann_context_quantize)
    // with these unlabelled samples before predicting.
    const Dataset *int8_calibration = nullptr;
};

// Class probabilities for every sample of `data`, in batches, through one
// context. Checks that the model can read the data first (check_input).
// `what` names the data in messages. Throws std::runtime_error.
Predictions predict_all(const dann_model *model, const Dataset &data, const PredictOptions &options,
                        const std::string &what);

} // namespace dann::tool
