// Model files and checkpoints: round trips, resumption, and every kind of
// damage rejected with a status and a message.
#include <doctest/doctest.h>

#include <cstdio>
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
    SUBCASE("every truncation") {
        for (size_t len : {size_t(0), size_t(7), size_t(12), size_t(27), size_t(28), size_t(40),
                           bytes.size() / 2, bytes.size() - 1})
            expect(std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(len)),
                   len < 28 ? (len < 8 ? "magic" : "magic") : "truncated");
    }
    SUBCASE("trailing garbage") {
        auto d = bytes;
        d.push_back(0);
        expect(d, "padded");
    }
    SUBCASE("a flipped bit anywhere in the contents") {
        for (size_t pos = 28; pos < bytes.size(); pos += bytes.size() / 17) {
            auto d = bytes;
            d[pos] ^= 0x10;
            expect(d, "checksum");
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
    CHECK(all_params(m) == before);
    CHECK(dann_trainer_steps(t) == 2);
    dann_trainer_destroy(to);
    dann_model_destroy(other);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
}
