#include "io.hpp"

#include <stdexcept>

#include "data/fmnist_m.hpp"
#include "data/idx.hpp"

#ifndef DANN_SOURCE_DATA_DIR
#define DANN_SOURCE_DATA_DIR ""
#endif
#ifndef DANN_INSTALL_DATA_DIR
#define DANN_INSTALL_DATA_DIR ""
#endif

namespace dann::tool {

namespace {

std::string shape_text(const data::Idx &idx) {
    std::string text = idx.type == data::kIdxU8 ? "uint8 (" : "float32 (";
    for (size_t i = 0; i < idx.dims.size(); ++i)
        text += (i ? ", " : "") + std::to_string(idx.dims[i]);
    return text + ")";
}

} // namespace

std::string photos_dir(const std::string &given) {
    if (!given.empty()) return given;
    std::vector<std::string> candidates;
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

} // namespace dann::tool
