// The paper's networks (PAPER.md, "Architectures").
#include "core/error.hpp"
#include "network/model.hpp"

namespace dann {
namespace {

constexpr dann_layer_desc conv(int units, int k, int pad) {
    return {DANN_LAYER_CONV2D, units, k, k, 1, 1, pad, pad, 0.0f, 0.0f, 0.0f};
}
constexpr dann_layer_desc pool(int k, int s, int pad) {
    return {DANN_LAYER_MAXPOOL2D, 0, k, k, s, s, pad, pad, 0.0f, 0.0f, 0.0f};
}
constexpr dann_layer_desc dense(int units) {
    return {DANN_LAYER_DENSE, units, 0, 0, 0, 0, 0, 0, 0.0f, 0.0f, 0.0f};
}
constexpr dann_layer_desc relu() { return {DANN_LAYER_RELU, 0, 0, 0, 0, 0, 0, 0, 0.0f, 0.0f, 0.0f}; }
constexpr dann_layer_desc dropout(float r) {
    return {DANN_LAYER_DROPOUT, 0, 0, 0, 0, 0, 0, 0, r, 0.0f, 0.0f};
}

// 3x28x28 -> conv5 32 -> 24 -> pool 12 -> conv5 48 -> 8 -> pool 4: 48*4*4 = 768.
const dann_layer_desc kMnistFeatures[] = {conv(32, 5, 0), relu(), pool(2, 2, 0),
                                          conv(48, 5, 0), relu(), pool(2, 2, 0)};
const dann_layer_desc kMnistLabel[] = {dense(100), relu(), dense(100), relu(), dense(10)};
const dann_layer_desc kMnistDomain[] = {dense(100), relu(), dense(1)};

// 3x32x32, every conv padded by 2, every pool 3x3/2 padded by 1: 32 -> 16 -> 8,
// feature 128*8*8 = 8192. Dropout in both heads, as the paper used.
const dann_layer_desc kSvhnFeatures[] = {conv(64, 5, 2), relu(), pool(3, 2, 1),
                                         conv(64, 5, 2), relu(), pool(3, 2, 1),
                                         conv(128, 5, 2), relu()};
const dann_layer_desc kSvhnLabel[] = {dense(3072), relu(), dropout(0.5f), dense(2048),
                                      relu(), dropout(0.5f), dense(10)};
const dann_layer_desc kSvhnDomain[] = {dense(1024), relu(), dropout(0.5f), dense(1024),
                                       relu(), dropout(0.5f), dense(1)};

// 3x40x40 -> conv5 96 -> 36 -> pool 18 -> conv3 144 -> 16 -> pool 8 -> conv5 256
// -> 4 -> pool 2: feature 256*2*2 = 1024.
const dann_layer_desc kGtsrbFeatures[] = {conv(96, 5, 0),  relu(), pool(2, 2, 0),
                                          conv(144, 3, 0), relu(), pool(2, 2, 0),
                                          conv(256, 5, 0), relu(), pool(2, 2, 0)};
const dann_layer_desc kGtsrbLabel[] = {dense(512), relu(), dense(43)};
const dann_layer_desc kGtsrbDomain[] = {dense(1024), relu(), dense(1024), relu(), dense(1)};

template <size_t F, size_t L, size_t D>
dann_model_desc make(int c, int h, int w, const dann_layer_desc (&f)[F],
                     const dann_layer_desc (&l)[L], const dann_layer_desc (&d)[D]) {
    return describe(c, h, w, f, F, l, L, d, D);
}

} // namespace

dann_model_desc describe(int c, int h, int w, const dann_layer_desc *features, size_t n_features,
                         const dann_layer_desc *label, size_t n_label,
                         const dann_layer_desc *domain, size_t n_domain) {
    dann_model_desc desc{};
    desc.in_channels = c;
    desc.in_height = h;
    desc.in_width = w;
    desc.features = features;
    desc.n_features = n_features;
    desc.label_head = label;
    desc.n_label_head = n_label;
    desc.domain_head = domain;
    desc.n_domain_head = n_domain;
    return desc;
}

dann_model_desc preset_desc(int preset) {
    switch (preset) {
    case DANN_PRESET_MNIST: return make(3, 28, 28, kMnistFeatures, kMnistLabel, kMnistDomain);
    case DANN_PRESET_SVHN: return make(3, 32, 32, kSvhnFeatures, kSvhnLabel, kSvhnDomain);
    case DANN_PRESET_GTSRB: return make(3, 40, 40, kGtsrbFeatures, kGtsrbLabel, kGtsrbDomain);
    }
    fail(DANN_ERR_INVALID_ARGUMENT, "unknown preset " + std::to_string(preset));
}

} // namespace dann
