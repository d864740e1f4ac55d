// Model files and checkpoints: round trips, resumption, and every kind of
// damage rejected with a status and a message.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "dann.h"
#include "layer_test_util.hpp"
#include "file_test_util.hpp"

namespace {

using dann_test::TempDir;

std::vector<uint8_t> read_bytes(const std::string &p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string &p, const std::vector<uint8_t> &b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<std::vector<float>> all_params(const dann_model *m) {
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < dann_model_param_count(m); ++i) {
        dann_param_info info;
        dann_model_param_info(m, i, &info);
        out.emplace_back(info.numel);
        dann_model_param_get(m, i, out.back().data(), info.numel);
    }
    return out;
}

// A small conv net with domain batch-norm and dropout: every section of the
// format has something in it.
dann_model *small_model(uint64_t seed) {
    const dann_layer_desc f[] = {dann_layer_conv2d(4, 3, 1, 1), dann_layer_batchnorm(),
                                 dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
    const dann_layer_desc l[] = {dann_layer_dense(8), dann_layer_relu(), dann_layer_dropout(0.25f),
                                 dann_layer_dense(3)};
    const dann_layer_desc d[] = {dann_layer_dense(6), dann_layer_sigmoid(), dann_layer_dense(1)};
    dann_model_desc desc{};
    desc.in_channels = 3;
    desc.in_height = 6;
    desc.in_width = 6;
    desc.features = f;
    desc.n_features = 4;
    desc.label_head = l;
    desc.n_label_head = 4;
    desc.domain_head = d;
    desc.n_domain_head = 3;
    desc.domain_batchnorm = 1;
    dann_model *m = nullptr;
    REQUIRE(dann_model_create(&desc, seed, &m) == DANN_OK);
    return m;
}

struct Batches {
    std::vector<float> xs, xt;
    std::vector<int32_t> labels{0, 1, 2, 1};
    Batches() {
        layer_test::Rng rng(3);
        xs = layer_test::uniform_floats(4 * 3 * 36, rng);
        xt = layer_test::uniform_floats(4 * 3 * 36, rng, 0.0f, 2.0f);
    }
    dann_batch src() const { return dann_batch_f32_nchw(xs.data(), 4, 3, 6, 6); }
    dann_batch tgt() const { return dann_batch_f32_nchw(xt.data(), 4, 3, 6, 6); }
};

void steps(dann_trainer *t, const Batches &b, int n) {
    dann_batch s = b.src(), g = b.tgt();
    for (int i = 0; i < n; ++i)
        REQUIRE(dann_trainer_step(t, &s, b.labels.data(), &g, 0.3f, 0.05f, nullptr) == DANN_OK);
}

} // namespace

TEST_CASE("A saved model loads back with identical parameters, normalisation and predictions") {
    TempDir dir;
    dann_model *m = small_model(5);
    const float mean[3] = {0.1f, 0.2f, 0.3f};
    REQUIRE(dann_model_set_input_norm(m, 1.0f / 255.0f, mean, 3) == DANN_OK);
    Batches b;
    dann_trainer *t = nullptr;
    dann_train_params tp = dann_train_params_default();
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    steps(t, b, 3); // running statistics and weights move away from their initial values
    REQUIRE(dann_model_save(m, dir.file("m.dann").c_str()) == DANN_OK);
    dann_model *back = nullptr;
    REQUIRE(dann_model_load(dir.file("m.dann").c_str(), &back) == DANN_OK);
    CHECK(all_params(back) == all_params(m));
    std::vector<uint8_t> px(4 * 36 * 3);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37);
    dann_batch u8 = dann_batch_u8_hwc(px.data(), 4, 6, 6, 3);
    std::vector<float> p1(12), p2(12), d1(4), d2(4);
    dann_context *c1 = nullptr, *c2 = nullptr;
    dann_context_create(m, &c1);
    dann_context_create(back, &c2);
    REQUIRE(dann_predict(c1, &u8, p1.data(), 12, d1.data(), 4) == DANN_OK);
    REQUIRE(dann_predict(c2, &u8, p2.data(), 12, d2.data(), 4) == DANN_OK);
    CHECK(p1 == p2);
    CHECK(d1 == d2);
    dann_context_destroy(c1);
    dann_context_destroy(c2);
    dann_model_destroy(back);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}

TEST_CASE("A run resumed from a checkpoint continues bitwise like an uninterrupted run, with SGD and Adam") {
    for (int opt : {DANN_OPTIMIZER_SGD, DANN_OPTIMIZER_ADAM}) {
        CAPTURE(opt);
        TempDir dir;
        Batches b;
        dann_train_params tp = dann_train_params_default();
        tp.optimizer = static_cast<dann_optimizer>(opt);
        // Uninterrupted: 6 steps.
        dann_model *a = small_model(9);
        dann_trainer *ta = nullptr;
        REQUIRE(dann_trainer_create(a, &tp, &ta) == DANN_OK);
        steps(ta, b, 6);
        // Interrupted after 3 steps, resumed in a new model and trainer.
        dann_model *x = small_model(9);
        dann_trainer *tx = nullptr;
        REQUIRE(dann_trainer_create(x, &tp, &tx) == DANN_OK);
        steps(tx, b, 3);
        REQUIRE(dann_trainer_save(tx, dir.file("ck").c_str()) == DANN_OK);
        dann_trainer_destroy(tx);
        dann_model_destroy(x);
        dann_model *y = nullptr;
        REQUIRE(dann_model_load(dir.file("ck").c_str(), &y) == DANN_OK);
        dann_trainer *ty = nullptr;
        REQUIRE(dann_trainer_create(y, &tp, &ty) == DANN_OK);
        REQUIRE(dann_trainer_load(ty, dir.file("ck").c_str()) == DANN_OK);
        CHECK(dann_trainer_steps(ty) == 3);
        steps(ty, b, 3);
        CHECK(dann_trainer_steps(ty) == 6);
        CHECK(all_params(y) == all_params(a));
        dann_trainer_destroy(ty);
        dann_model_destroy(y);
        dann_trainer_destroy(ta);
        dann_model_destroy(a);
    }
}

TEST_CASE("Damaged model files are rejected with DANN_ERR_FORMAT and a message naming the damage") {
    TempDir dir;
    dann_model *m = small_model(2);
    const std::string good = dir.file("good.dann");
    REQUIRE(dann_model_save(m, good.c_str()) == DANN_OK);
    const std::vector<uint8_t> bytes = read_bytes(good);
    REQUIRE(bytes.size() > 100);
    auto expect = [&](const std::vector<uint8_t> &damaged, const char *word) {
        write_bytes(dir.file("bad.dann"), damaged);
        dann_model *out = reinterpret_cast<dann_model *>(&dir); // must be reset to NULL
        CHECK(dann_model_load(dir.file("bad.dann").c_str(), &out) == DANN_ERR_FORMAT);
        CHECK(out == nullptr);
        CHECK_MESSAGE(std::string(dann_last_error()).find(word) != std::string::npos,
                      dann_last_error());
    };
    SUBCASE("bad magic") {
        auto d = bytes;
        d[0] = 'X';
        expect(d, "magic");
    }
    SUBCASE("unknown version") {
        auto d = bytes;
        d[8] = 99;
        expect(d, "version");
    }
    SUBCASE("truncations") {
        for (size_t len : {size_t(0), size_t(7), size_t(12), size_t(27), size_t(28), size_t(40),
                           bytes.size() / 2, bytes.size() - 1})
            expect(std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(len)), "truncated");
    }
    SUBCASE("trailing garbage") {
        auto d = bytes;
        d.push_back(0);
        expect(d, "padded");
    }
    SUBCASE("a flipped bit in a section body") {
        // The last parameter's values, well inside the PARM section.
        for (size_t pos = bytes.size() - 200; pos < bytes.size(); pos += 13) {
            auto d = bytes;
            d[pos] ^= 0x10;
            expect(d, "checksum mismatch");
        }
    }
    dann_model_destroy(m);
}

TEST_CASE("Missing files and unwritable paths give DANN_ERR_IO, and a failed save keeps the old file") {
    TempDir dir;
    dann_model *m = small_model(2);
    dann_model *out = nullptr;
    CHECK(dann_model_load(dir.file("absent.dann").c_str(), &out) == DANN_ERR_IO);
    CHECK(std::string(dann_last_error()).find("absent.dann") != std::string::npos);
    CHECK(dann_model_save(m, dir.file("no/such/folder/m.dann").c_str()) == DANN_ERR_IO);
    // A save that cannot complete leaves the previous file whole.
    const std::string path = dir.file("keep.dann");
    REQUIRE(dann_model_save(m, path.c_str()) == DANN_OK);
    const auto before = read_bytes(path);
    REQUIRE(::mkdir(dir.file("keep.dann.dir").c_str(), 0700) == 0);
    CHECK(dann_model_save(m, dir.file("keep.dann.dir").c_str()) == DANN_ERR_IO); // rename over a folder
    CHECK(read_bytes(path) == before);
    CHECK(dann_model_save(nullptr, path.c_str()) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(dann_model_save(m, nullptr) == DANN_ERR_INVALID_ARGUMENT);
    dann_model_destroy(m);
}

TEST_CASE("A checkpoint for another architecture, or a plain model file, is refused without touching the trainer") {
    TempDir dir;
    Batches b;
    dann_model *m = small_model(4);
    dann_train_params tp = dann_train_params_default();
    dann_trainer *t = nullptr;
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    steps(t, b, 2);
    const auto before = all_params(m);
    REQUIRE(dann_model_save(m, dir.file("plain.dann").c_str()) == DANN_OK);
    CHECK(dann_trainer_load(t, dir.file("plain.dann").c_str()) == DANN_ERR_FORMAT);
    CHECK(std::string(dann_last_error()).find("checkpoint") != std::string::npos);

    dann_model *other = nullptr;
    REQUIRE(dann_model_create_mlp(4, 5, 3, 1, &other) == DANN_OK);
    dann_trainer *to = nullptr;
    REQUIRE(dann_trainer_create(other, &tp, &to) == DANN_OK);
    REQUIRE(dann_trainer_save(to, dir.file("other.ck").c_str()) == DANN_OK);
    CHECK(dann_trainer_load(t, dir.file("other.ck").c_str()) == DANN_ERR_SHAPE);
    CHECK(std::string(dann_last_error()).find("architecture differs") != std::string::npos);
    CHECK(all_params(m) == before);
    CHECK(dann_trainer_steps(t) == 2);
    dann_trainer_destroy(to);
    dann_model_destroy(other);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}

namespace {

dann_model *replay_model() {
    dann_model *m = nullptr;
    REQUIRE(dann_model_create_mlp(4, 5, 3, 1, &m) == DANN_OK);
    return m;
}

struct ReplayContents {
    dann_replay_info info{};
    std::vector<uint8_t> data;
    std::vector<int32_t> labels;
};

ReplayContents replay_of(const dann_model *m) {
    ReplayContents r;
    REQUIRE(dann_model_replay_info(m, &r.info) == DANN_OK);
    const size_t sample = size_t(r.info.channels) * size_t(r.info.height) * size_t(r.info.width) *
                          (r.info.format == DANN_INPUT_U8_HWC ? 1 : 4);
    r.data.resize(r.info.n * sample);
    r.labels.resize(r.info.n);
    REQUIRE(dann_model_get_replay(m, 0, r.info.n, r.data.data(), r.data.size(), r.labels.data()) == DANN_OK);
    return r;
}

} // namespace

TEST_CASE("A replay set goes into a model and comes back out unchanged, in its own format") {
    dann_model *m = small_model(1); // 3 x 6 x 6, 3 classes
    dann_replay_info info;
    REQUIRE(dann_model_replay_info(m, &info) == DANN_OK);
    CHECK(info.n == 0);
    SUBCASE("uint8 grayscale images stay one byte per value") {
        std::vector<uint8_t> px(4 * 36);
        for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
        const int32_t labels[4] = {2, 0, 1, 2};
        const dann_batch b = dann_batch_u8_hwc(px.data(), 4, 6, 6, 1);
        REQUIRE(dann_model_set_replay(m, &b, labels) == DANN_OK);
        const ReplayContents r = replay_of(m);
        CHECK(r.info.n == 4);
        CHECK(r.info.format == DANN_INPUT_U8_HWC);
        CHECK(r.info.channels == 1);
        CHECK(r.info.bytes == 4 * 36 + 4 * sizeof(int32_t));
        CHECK(r.data == px);
        CHECK(r.labels == std::vector<int32_t>(labels, labels + 4));
        // A part of the set.
        uint8_t one[36];
        int32_t label = -1;
        REQUIRE(dann_model_get_replay(m, 2, 1, one, sizeof one, &label) == DANN_OK);
        CHECK(std::memcmp(one, px.data() + 72, 36) == 0);
        CHECK(label == 1);
    }
    SUBCASE("float NCHW samples are copied as given") {
        Batches b;
        const dann_batch src = b.src();
        REQUIRE(dann_model_set_replay(m, &src, b.labels.data()) == DANN_OK);
        const ReplayContents r = replay_of(m);
        CHECK(r.info.format == DANN_INPUT_F32_NCHW);
        CHECK(r.info.channels == 3);
        REQUIRE(r.data.size() == b.xs.size() * sizeof(float));
        CHECK(std::memcmp(r.data.data(), b.xs.data(), r.data.size()) == 0);
    }
    dann_model_destroy(m);
}

TEST_CASE("A refused replay set names the problem and leaves the model's set as it was") {
    dann_model *m = replay_model(); // 4 features, 3 classes
    const float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t ok_labels[2] = {0, 2};
    const dann_batch good = dann_batch_f32_nchw(x, 2, 4, 1, 1);
    REQUIRE(dann_model_set_replay(m, &good, ok_labels) == DANN_OK);
    auto expect = [&](const dann_batch &b, const int32_t *labels, dann_status st, const char *word) {
        CHECK(dann_model_set_replay(m, &b, labels) == st);
        CHECK_MESSAGE(std::string(dann_last_error()).find(word) != std::string::npos, dann_last_error());
        const ReplayContents r = replay_of(m);
        CHECK(r.info.n == 2);
        CHECK(r.labels == std::vector<int32_t>{0, 2});
    };
    const dann_batch nhwc = dann_batch_f32_nhwc(x, 2, 1, 1, 4);
    expect(nhwc, ok_labels, DANN_ERR_INVALID_ARGUMENT, "format");
    expect(dann_batch_f32_nchw(x, 2, 2, 2, 1), ok_labels, DANN_ERR_SHAPE, "the model reads 4x1x1");
    expect(dann_batch_f32_nchw(x, 4, 2, 1, 1), ok_labels, DANN_ERR_SHAPE, "replay samples are 2x1x1");
    const int32_t too_big[2] = {0, 3}, negative[2] = {-1, 0};
    expect(good, too_big, DANN_ERR_INVALID_ARGUMENT, "labels[1] = 3 is out of range");
    expect(good, negative, DANN_ERR_INVALID_ARGUMENT, "labels[0] = -1 is out of range");
    expect(good, nullptr, DANN_ERR_INVALID_ARGUMENT, "labels are NULL");
    const float nan_x[8] = {1, 2, 3, 4, 5, NAN, 7, 8};
    expect(dann_batch_f32_nchw(nan_x, 2, 4, 1, 1), ok_labels, DANN_ERR_NUMERIC, "replay sample 1 holds NaN");
    dann_batch no_data = good;
    no_data.data = nullptr;
    expect(no_data, ok_labels, DANN_ERR_INVALID_ARGUMENT, "data is NULL");
    CHECK(dann_model_set_replay(nullptr, &good, ok_labels) == DANN_ERR_INVALID_ARGUMENT);

    float out[8];
    CHECK(dann_model_get_replay(m, 1, 2, out, sizeof out, nullptr) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dann_last_error()).find("out of range") != std::string::npos);
    CHECK(dann_model_get_replay(m, 0, 2, out, sizeof out - 1, nullptr) == DANN_ERR_SHAPE);
    CHECK(dann_model_get_replay(m, 0, 2, nullptr, 0, nullptr) == DANN_ERR_INVALID_ARGUMENT);
    CHECK(dann_model_get_replay(m, 2, 0, nullptr, 0, nullptr) == DANN_OK);
    CHECK(dann_model_replay_info(m, nullptr) == DANN_ERR_INVALID_ARGUMENT);

    // NULL, or no samples, removes the set.
    dann_batch empty = good;
    empty.n = 0;
    CHECK(dann_model_set_replay(m, &empty, nullptr) == DANN_OK);
    CHECK(replay_of(m).info.n == 0);
    REQUIRE(dann_model_set_replay(m, &good, ok_labels) == DANN_OK);
    CHECK(dann_model_set_replay(m, nullptr, nullptr) == DANN_OK);
    CHECK(replay_of(m).info.n == 0);
    dann_model_destroy(m);
}

TEST_CASE("The replay set is saved with the model and its checkpoints, and survives a clone") {
    TempDir dir;
    dann_model *m = small_model(3);
    std::vector<uint8_t> px(5 * 36 * 3);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 11);
    const int32_t labels[5] = {0, 1, 2, 1, 0};
    const dann_batch b = dann_batch_u8_hwc(px.data(), 5, 6, 6, 3);
    REQUIRE(dann_model_set_replay(m, &b, labels) == DANN_OK);
    const ReplayContents want = replay_of(m);

    REQUIRE(dann_model_save(m, dir.file("m.dann").c_str()) == DANN_OK);
    dann_model *back = nullptr;
    REQUIRE(dann_model_load(dir.file("m.dann").c_str(), &back) == DANN_OK);
    const ReplayContents got = replay_of(back);
    CHECK(got.info.n == 5);
    CHECK(got.info.channels == 3);
    CHECK(got.data == want.data);
    CHECK(got.labels == want.labels);

    dann_model *copy = nullptr;
    REQUIRE(dann_model_clone(back, &copy) == DANN_OK);
    CHECK(replay_of(copy).data == want.data);

    Batches batches;
    dann_train_params tp = dann_train_params_default();
    dann_trainer *t = nullptr;
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    steps(t, batches, 1);
    REQUIRE(dann_trainer_save(t, dir.file("ck").c_str()) == DANN_OK);
    dann_model *from_ck = nullptr;
    REQUIRE(dann_model_load(dir.file("ck").c_str(), &from_ck) == DANN_OK);
    CHECK(replay_of(from_ck).labels == want.labels);
    dann_trainer *t2 = nullptr;
    REQUIRE(dann_trainer_create(from_ck, &tp, &t2) == DANN_OK);
    CHECK(dann_trainer_load(t2, dir.file("ck").c_str()) == DANN_OK);
    CHECK(dann_trainer_steps(t2) == 1);

    dann_trainer_destroy(t2);
    dann_trainer_destroy(t);
    dann_model_destroy(from_ck);
    dann_model_destroy(copy);
    dann_model_destroy(back);
    dann_model_destroy(m);
}
