#include "io.hpp"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <vector>

#include "args.hpp"
#include "core/rng.hpp"

#include <stdexcept>

#include "data/fmnist_m.hpp"
#include "data/idx.hpp"

#ifndef DANN_SOURCE_DATA_DIR
#define DANN_SOURCE_DATA_DIR ""
#endif
#ifndef DANN_INSTALL_DATA_DIR
#define DANN_INSTALL_DATA_DIR ""
#endif
#ifndef DANN_EXE_TO_DATA_DIR
#define DANN_EXE_TO_DATA_DIR ""
#endif

namespace dann::tool {

namespace {

std::string shape_text(const data::Idx &idx) {
    std::string text = idx.type == data::kIdxU8 ? "uint8 (" : "float32 (";
    for (size_t i = 0; i < idx.dims.size(); ++i)
        text += (i ? ", " : "") + std::to_string(idx.dims[i]);
    return text + ")";
}

// The data folder of an installed tool, wherever its prefix was moved to:
// DANN_EXE_TO_DATA_DIR ("../share/dann") from the folder of the running
// program. Empty if the program's path is unknown.
std::string data_dir_beside_program() {
    if (!*DANN_EXE_TO_DATA_DIR) return {};
    char path[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return {};
    const std::filesystem::path exe(std::string(path, static_cast<size_t>(n)));
    if (!exe.has_parent_path()) return {};
    return (exe.parent_path() / DANN_EXE_TO_DATA_DIR).lexically_normal().string();
}

} // namespace

std::string photos_dir(const std::string &given) {
    if (!given.empty()) return given;
    std::vector<std::string> candidates;
    // The installed tool's own share/dann first: the configure-time paths
    // below may name another installation, or none once the prefix moved.
    const std::string beside = data_dir_beside_program();
    if (!beside.empty()) candidates.push_back(beside);
    if (*DANN_SOURCE_DATA_DIR) candidates.emplace_back(DANN_SOURCE_DATA_DIR);
    if (*DANN_INSTALL_DATA_DIR) candidates.emplace_back(DANN_INSTALL_DATA_DIR);
    return data::find_fmnist_m_photos_dir(candidates);
}

Dataset load_samples(const std::string &path) {
    data::Idx idx = data::read_idx(path);
    Dataset d;
    const auto &dims = idx.dims;
    if (idx.type == data::kIdxU8 && (dims.size() == 3 || dims.size() == 4)) {
        d.format = DANN_INPUT_U8_HWC;
        d.n = dims[0];
        d.height = static_cast<int>(dims[1]);
        d.width = static_cast<int>(dims[2]);
        d.channels = dims.size() == 4 ? static_cast<int>(dims[3]) : 1;
        d.u8 = std::move(idx.u8);
    } else if (idx.type == data::kIdxF32 && dims.size() == 2) {
        d.format = DANN_INPUT_F32_NCHW;
        d.n = dims[0];
        d.height = d.width = 1;
        d.channels = static_cast<int>(dims[1]);
        d.f32 = std::move(idx.f32);
    } else {
        throw std::runtime_error(path + ": expected uint8 images (N, H, W) or (N, H, W, C), or "
                                        "float32 features (N, F); the file holds " +
                                 shape_text(idx));
    }
    return d;
}

void load_labels(const std::string &path, Dataset &d) {
    const data::Idx idx = data::read_idx(path);
    if (idx.type != data::kIdxU8 || idx.dims.size() != 1)
        throw std::runtime_error(path + ": expected uint8 labels (N); the file holds " +
                                 shape_text(idx));
    if (idx.dims[0] != d.n)
        throw std::runtime_error(path + ": " + std::to_string(idx.dims[0]) + " labels for " +
                                 std::to_string(d.n) + " samples");
    d.labels.assign(idx.u8.begin(), idx.u8.end());
}

Dataset load_dataset(const std::string &samples_path, const std::string &labels_path) {
    Dataset d = load_samples(samples_path);
    if (!labels_path.empty()) load_labels(labels_path, d);
    return d;
}

std::string describe(const Dataset &d) {
    if (d.format == DANN_INPUT_U8_HWC)
        return std::to_string(d.n) + " images " + std::to_string(d.height) + "x" +
               std::to_string(d.width) + "x" + std::to_string(d.channels) + " (uint8)";
    return std::to_string(d.n) + " samples of " + std::to_string(d.channels) + " float features";
}

void check_input(const dann_model_info &m, const Dataset &d, const std::string &what) {
    const std::string expects = "the model expects " +
                                (m.in_height == 1 && m.in_width == 1
                                     ? std::to_string(m.in_channels) + " float features"
                                     : std::to_string(m.in_height) + "x" + std::to_string(m.in_width) +
                                           " images with " + std::to_string(m.in_channels) +
                                           " channels (or 1)");
    bool fits;
    if (d.format == DANN_INPUT_U8_HWC)
        fits = d.height == m.in_height && d.width == m.in_width &&
               (d.channels == m.in_channels || d.channels == 1);
    else
        fits = m.in_height == 1 && m.in_width == 1 && d.channels == m.in_channels;
    if (!fits) throw std::runtime_error(what + " holds " + describe(d) + ", but " + expects);
}

void check_labels(const Dataset &d, int num_classes, const std::string &what) {
    for (size_t i = 0; i < d.labels.size(); ++i)
        if (d.labels[i] < 0 || d.labels[i] >= num_classes)
            throw std::runtime_error(what + ": label " + std::to_string(d.labels[i]) + " at index " +
                                     std::to_string(i) + " is not below the model's " +
                                     std::to_string(num_classes) + " classes");
}

dann_batch batch_view(const Dataset &d, size_t first, size_t count) {
    if (d.format == DANN_INPUT_U8_HWC)
        return dann_batch_u8_hwc(d.u8.data() + first * d.sample_size(), count, d.height, d.width,
                                 d.channels);
    return dann_batch_f32_nchw(d.f32.data() + first * d.sample_size(), count, d.channels, 1, 1);
}

void throw_dann(dann_status status, const std::string &what) {
    const std::string detail = dann_last_error();
    throw std::runtime_error(what + ": " + (detail.empty() ? dann_status_string(status) : detail));
}

void check_output_path(const std::string &option, const std::string &path) {
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw CommandError(option + " " + path + ": the folder " + dir + " does not exist");
    if (access(dir.c_str(), W_OK) != 0)
        throw CommandError(option + " " + path + ": the folder " + dir + " is not writable");
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw CommandError(option + " " + path + " is a folder");
}


// Stores k labelled source samples in the model, in the source's own format:
// a subset drawn without replacement, the same for the same seed.
void store_replay(dann_model *model, const Dataset &source, size_t k, uint64_t seed) {
    k = std::min(k, source.n);
    if (k == 0) return;
    std::vector<size_t> order(source.n);
    std::iota(order.begin(), order.end(), size_t(0));
    SplitMix64 rng(seed ^ 0x7265706c6179ull); // apart from the recipe's draws
    for (size_t i = 0; i < k; ++i)
        std::swap(order[i], order[i + rng.next() % (source.n - i)]);
    const size_t values = source.sample_size();
    const bool u8 = source.format == DANN_INPUT_U8_HWC;
    std::vector<uint8_t> pixels(u8 ? k * values : 0);
    std::vector<float> features(u8 ? 0 : k * values);
    std::vector<int32_t> labels(k);
    for (size_t i = 0; i < k; ++i) {
        const size_t s = order[i];
        if (u8)
            std::memcpy(&pixels[i * values], &source.u8[s * values], values);
        else
            std::memcpy(&features[i * values], &source.f32[s * values], values * sizeof(float));
        labels[i] = source.labels[s];
    }
    const dann_batch batch =
        u8 ? dann_batch_u8_hwc(pixels.data(), k, source.height, source.width, source.channels)
           : dann_batch_f32_nchw(features.data(), k, source.channels, source.height, source.width);
    check_dann(dann_model_set_replay(model, &batch, labels.data()), "cannot store the replay set");
}

} // namespace dann::tool
