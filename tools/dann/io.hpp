// Data files of the `dann` tool: IDX images, features and labels loaded into
// the recipes' Dataset, checked against each other and against a model.
#pragma once

#include <string>

#include "dann.h"
#include "recipe.hpp"

namespace dann::tool {

// The folder of the Fashion-MNIST-M photos: `given` if not empty, else the
// first that holds them of $DANN_DATA_DIR, ../share/dann beside the running
// program (an installed tool, whatever prefix it was installed or moved to),
// the source tree's data/ and the configure-time install prefix's share/dann.
std::string photos_dir(const std::string &given);

// Loads an IDX file of samples (raw or gzip-compressed):
//   uint8 (N, H, W)        grayscale images, channels 1
//   uint8 (N, H, W, C)     images, HWC
//   float32 (N, F)         feature vectors: F32_NCHW with channels F, 1 x 1
// Throws std::runtime_error naming the file for anything else.
Dataset load_samples(const std::string &path);

// Loads uint8 (N) labels into data.labels; N must equal data.n. Throws
// std::runtime_error naming the file.
void load_labels(const std::string &path, Dataset &data);

// load_samples, then load_labels when labels_path is not empty.
Dataset load_dataset(const std::string &samples_path, const std::string &labels_path);

// "1000 images 28x28x3 (uint8)" or "600 samples of 2 float features".
std::string describe(const Dataset &data);

// Throws std::runtime_error unless `model` can read `data`'s samples: images
// of the model's height and width with its channel count or 1; feature vectors
// of its input width. `what` names the data in the message (a file name).
void check_input(const dann_model_info &model, const Dataset &data, const std::string &what);

// Throws std::runtime_error unless every label is below num_classes.
void check_labels(const Dataset &data, int num_classes, const std::string &what);

// A view of samples [first, first + count) for the C API.
dann_batch batch_view(const Dataset &data, size_t first, size_t count);

// A std::runtime_error for a failed dann call: "<what>: <dann_last_error()>"
// (or the status name when the library gave no detail).
[[noreturn]] void throw_dann(dann_status status, const std::string &what);
inline void check_dann(dann_status status, const std::string &what) {
    if (status != DANN_OK) throw_dann(status, what);
}

// Throws CommandError unless `path` can be written: its folder exists and is
// writable, and it is not a folder. Output paths are checked before long work.
void check_output_path(const std::string &option, const std::string &path);

// Stores k labelled samples of `source` (a seeded draw without replacement; k
// capped at the set size, 0 stores nothing) as the model's replay set, in the
// source's own format.
void store_replay(dann_model *model, const Dataset &source, size_t k, uint64_t seed);

} // namespace dann::tool
