// The model file: architecture, input normalisation, parameters and, in a
// checkpoint, the optimizer state (docs/model-format.md). Every length and
// count read from a file is checked against what remains before it is used.
#pragma once

#include <memory>
#include <string>

#include "network/model.hpp"
#include "train/trainer.hpp"

namespace dann {

struct LoadedModel {
    std::unique_ptr<Model> model;
    bool has_optimizer = false;
    OptimizerState optimizer;
};

void save_model_file(const std::string &path, const Model &m, const OptimizerState *optimizer);
LoadedModel load_model_file(const std::string &path);

// Replaces `dst`'s parameters and input normalisation with `src`'s; the two
// must have the same architecture (names and shapes of every parameter).
void copy_weights(const Model &src, Model &dst);

} // namespace dann
