// Fashion-MNIST-M, the target domain of dann's headline benchmark: the MNIST-M
// construction of the DANN paper applied to Fashion-MNIST. Each grayscale image
// is blended over a random 28 x 28 patch of one of six colour photographs,
// out = |patch - image| per channel.
//
// The recipe is exact, so that every implementation of it (the Python
// reference builder make_fmnist_m.py, this one) produces the same bytes, whose
// SHA-256 the project's data/SHA256SUMS lists:
//
//   rng = SplitMix64(seed)            seed 1 for the train split, 2 for t10k
//   for every image i of the split, in file order:
//       k  = rng.next() % 6           photo index in kFmnistMPhotos order
//       y0 = rng.next() % (H_k - 27)  crop row    (H_k, W_k: photo k's size)
//       x0 = rng.next() % (W_k - 27)  crop column
//       out[i, y, x, c] = |photo_k[y0 + y, x0 + x, c] - gray_i[y, x]|
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/idx.hpp"
#include "data/ppm.hpp"

namespace dann::data {

// The photographs, in the order the recipe indexes them; each is
// <photos_dir>/<name>.ppm.gz.
constexpr std::array<const char *, 6> kFmnistMPhotos = {"astronaut", "chelsea", "coffee",
                                                        "hubble_deep_field", "retina", "rocket"};
constexpr uint64_t kFmnistMTrainSeed = 1;
constexpr uint64_t kFmnistMTestSeed = 2;
constexpr uint32_t kFmnistSide = 28;

// Reads the six photographs from photos_dir. DANN_ERR_IO if one is missing,
// DANN_ERR_FORMAT if one is not a valid 8-bit PPM(.gz) or is smaller than
// 28 x 28 pixels; the message names the file.
std::vector<RgbImage> load_fmnist_m_photos(const std::string &photos_dir);

// One split's target images: gray is uint8 (N, 28, 28); the result uint8
// (N, 28, 28, 3), HWC. photos as from load_fmnist_m_photos (any number >= 1,
// each at least 28 x 28; the recipe uses the six). DANN_ERR_SHAPE otherwise.
Idx blend_fmnist_m(const Idx &gray, const std::vector<RgbImage> &photos, uint64_t seed);

// Called after each output file is written: its path, how many files are
// done, and how many there are in all (4).
using FmnistMProgress = std::function<void(const std::string &file, int done, int total)>;

// Builds Fashion-MNIST-M. Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
// from fmnist_dir (Debian package dataset-fashion-mnist installs them in
// /usr/share/datasets/fashion-mnist) and the photographs from photos_dir, then
// writes to out_dir (created if missing) the raw IDX files
//   train-images-idx4-ubyte  t10k-images-idx4-ubyte   uint8 (N, 28, 28, 3)
//   train-labels-idx1-ubyte  t10k-labels-idx1-ubyte   the labels, unchanged
// each atomically. All inputs are read and checked before anything is written.
// DANN_ERR_IO for files that cannot be read or written, DANN_ERR_FORMAT for
// malformed inputs, including IDX files of the wrong type or shape (images
// must be (N, 28, 28) uint8, labels (N) uint8 for the same N).
void build_fmnist_m(const std::string &fmnist_dir, const std::string &photos_dir, const std::string &out_dir,
                    const FmnistMProgress &progress = {});

// The first folder that holds all six photographs, looking in order at
// $DANN_DATA_DIR (when set and not empty), then each candidate; for each
// folder D, D itself and then D/photos are tried, so that both a data folder
// and its photos/ subfolder qualify. DANN_ERR_IO listing the places searched
// if none does.
std::string find_fmnist_m_photos_dir(const std::vector<std::string> &candidates);

} // namespace dann::data
