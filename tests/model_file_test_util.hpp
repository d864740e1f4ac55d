// What the model file tests share: file bytes in and out, the small models
// the golden files hold (every value given by a formula), and an independent
// reading of the section layout of docs/model-format.md that can take a file
// apart and put it back together with fresh checksums.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>
#include <zlib.h>

#include <doctest/doctest.h>

#include "dann.h"
#include "io/model_file.hpp"
#include "network/model.hpp"

namespace model_test {

inline std::vector<uint8_t> read_bytes(const std::string &p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline void write_bytes(const std::string &p, const std::vector<uint8_t> &b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline std::string golden_dir() { return std::string(DANN_FIXTURE_DIR) + "/../golden"; }

// Value i of parameter p in the golden models: exact in binary32; running
// variances positive.
inline float golden_value(size_t p, size_t i, const std::string &name) {
    float v = static_cast<float>(static_cast<int>((i * 7 + p * 13) % 23) - 11) / 16.0f;
    if (name.find("running_var") != std::string::npos) v = std::fabs(v) + 0.5f;
    return v;
}

inline void fill_golden(dann::Model &m) {
    for (size_t p = 0; p < m.params.size(); ++p)
        for (size_t i = 0; i < m.params[p].numel; ++i)
            m.params[p].data.f32()[i] = golden_value(p, i, m.params[p].name);
}

// dann_model_create_mlp(4, 5, 3): dense 5, sigmoid; dense 3; dense 1.
inline std::unique_ptr<dann::Model> golden_mlp() {
    static const dann_layer_desc f[] = {dann_layer_dense(5), dann_layer_sigmoid()};
    static const dann_layer_desc l[] = {dann_layer_dense(3)};
    static const dann_layer_desc d[] = {dann_layer_dense(1)};
    auto m = dann::Model::create(dann::describe(4, 1, 1, f, 2, l, 1, d, 1), 1);
    fill_golden(*m);
    return m;
}

// 3x6x6 input: conv 4 (3x3, pad 1), batch-norm with per-domain statistics,
// relu, max-pool 2; label head dense 8, relu, dropout, dense 3; domain head
// dense 6, sigmoid, dense 1. Input scale 1/128, mean 0.25, 0.5, 0.75.
inline dann_model_desc golden_conv_desc() {
    static const dann_layer_desc f[] = {dann_layer_conv2d(4, 3, 1, 1), dann_layer_batchnorm(),
                                        dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
    static const dann_layer_desc l[] = {dann_layer_dense(8), dann_layer_relu(), dann_layer_dropout(0.25f),
                                        dann_layer_dense(3)};
    static const dann_layer_desc d[] = {dann_layer_dense(6), dann_layer_sigmoid(), dann_layer_dense(1)};
    dann_model_desc desc = dann::describe(3, 6, 6, f, 4, l, 4, d, 3);
    desc.domain_batchnorm = 1;
    return desc;
}

inline std::unique_ptr<dann::Model> golden_conv() {
    auto m = dann::Model::create(golden_conv_desc(), 1);
    fill_golden(*m);
    m->input_scale = 1.0f / 128.0f;
    m->input_mean = {0.25f, 0.5f, 0.75f};
    return m;
}

// The MLP's replay set: 5 float samples of 4 features, labels i % 3.
inline dann::ReplaySet golden_mlp_replay() {
    dann::ReplaySet r;
    r.format = DANN_INPUT_F32_NCHW;
    r.channels = 4;
    r.height = r.width = 1;
    r.n = 5;
    std::vector<float> x(20);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.25f - 1.0f;
    r.data.resize(x.size() * sizeof(float));
    std::memcpy(r.data.data(), x.data(), r.data.size());
    r.labels = {0, 1, 2, 0, 1};
    return r;
}

// The conv net's replay set: 3 grayscale uint8 images, replicated to 3 channels when used.
inline dann::ReplaySet golden_conv_replay() {
    dann::ReplaySet r;
    r.format = DANN_INPUT_U8_HWC;
    r.channels = 1;
    r.height = r.width = 6;
    r.n = 3;
    r.data.resize(3 * 36);
    for (size_t i = 0; i < r.data.size(); ++i) r.data[i] = static_cast<uint8_t>((i * 37) % 256);
    r.labels = {2, 0, 1};
    return r;
}

// Adam after 7 steps, every value given by a formula.
inline dann::OptimizerState golden_adam(const dann::Model &m) {
    dann::OptimizerState s;
    s.optimizer = DANN_OPTIMIZER_ADAM;
    s.steps = 7;
    for (size_t p = 0; p < m.params.size(); ++p) {
        const dann::Param &q = m.params[p];
        s.param_steps.push_back(q.trainable ? 7 : 0);
        s.slot1.emplace_back(q.trainable ? q.numel : 0);
        s.slot2.emplace_back(q.trainable ? q.numel : 0);
        for (size_t i = 0; i < s.slot1.back().size(); ++i) {
            s.slot1.back()[i] = golden_value(p + 100, i, "") / 8.0f;
            s.slot2.back()[i] = std::fabs(golden_value(p + 200, i, "")) / 64.0f;
        }
    }
    return s;
}

// The section layout, read independently of the library.
struct Section {
    std::string tag;
    uint32_t flags = 0;
    std::vector<uint8_t> body;
};

inline uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
}

inline void put(std::vector<uint8_t> &b, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Header: 32 bytes; each section: 20 bytes of header, then its body.
inline std::vector<Section> split(const std::vector<uint8_t> &file) {
    REQUIRE(file.size() >= 32);
    REQUIRE(le(&file[8], 4) == 2);
    const uint32_t count = static_cast<uint32_t>(le(&file[24], 4));
    std::vector<Section> out;
    size_t pos = 32;
    for (uint32_t i = 0; i < count; ++i) {
        Section s;
        s.tag.assign(reinterpret_cast<const char *>(&file[pos]), 4);
        s.flags = static_cast<uint32_t>(le(&file[pos + 4], 4));
        const size_t n = static_cast<size_t>(le(&file[pos + 8], 8));
        REQUIRE(pos + 20 + n <= file.size());
        s.body.assign(file.begin() + long(pos + 20), file.begin() + long(pos + 20 + n));
        out.push_back(std::move(s));
        pos += 20 + n;
    }
    REQUIRE(pos == file.size());
    return out;
}

// A version 2 file of these sections, every size and checksum filled in.
inline std::vector<uint8_t> join(const std::vector<Section> &sections) {
    std::vector<uint8_t> f = {'D', 'A', 'N', 'N', 'M', 'O', 'D', 'L'};
    put(f, 2, 4);
    put(f, 0, 4);
    put(f, 0, 8); // size, below
    put(f, sections.size(), 4);
    put(f, 0, 4); // header CRC, below
    for (const Section &s : sections) {
        const size_t start = f.size();
        f.insert(f.end(), s.tag.begin(), s.tag.end());
        put(f, s.flags, 4);
        put(f, s.body.size(), 8);
        uLong crc = crc32(0L, &f[start], 16);
        crc = crc32(crc, s.body.data(), static_cast<uInt>(s.body.size()));
        put(f, crc, 4);
        f.insert(f.end(), s.body.begin(), s.body.end());
    }
    for (int i = 0; i < 8; ++i) f[16 + size_t(i)] = static_cast<uint8_t>(uint64_t(f.size()) >> (8 * i));
    const uLong crc = crc32(0L, f.data(), 28);
    for (int i = 0; i < 4; ++i) f[28 + size_t(i)] = static_cast<uint8_t>(crc >> (8 * i));
    return f;
}

inline Section &find(std::vector<Section> &sections, const std::string &tag) {
    for (Section &s : sections)
        if (s.tag == tag) return s;
    FAIL("no section " << tag);
    return sections.front();
}

} // namespace model_test
