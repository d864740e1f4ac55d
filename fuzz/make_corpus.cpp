// Writes the fuzzers' seed corpora with dann's own writers:
//   make_corpus IDX_DIR MODEL_DIR
// IDX: small uint8 and float32 tensors of every rank, raw and gzip. Models, in
// the format dann_model_save writes: the shallow MLP (with and without a
// replay set), a small convolutional net with domain batch-norm and dropout,
// and SGD and Adam checkpoints (optimizer state after one step). The v1_*
// model seeds were written by the version 1 writer, which no longer exists;
// keep them while dann reads version 1.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "dann.h"
#include "data/idx.hpp"

namespace {

bool ok(dann_status st, const char *what) {
    if (st == DANN_OK) return true;
    std::fprintf(stderr, "make_corpus: %s: %s\n", what, dann_last_error());
    return false;
}

std::vector<float> ramp(size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * 0.25f - 1.0f;
    return v;
}

std::vector<uint8_t> bytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 37);
    return v;
}

bool write_idx_seeds(const std::string &dir) {
    using namespace dann::data;
    try {
        write_idx(dir + "/u8_1d.idx", make_idx_u8({5}, bytes(5)));
        write_idx(dir + "/u8_3d.idx", make_idx_u8({2, 3, 3}, bytes(18)));
        write_idx(dir + "/u8_4d.idx", make_idx_u8({1, 2, 2, 2}, bytes(8)));
        write_idx(dir + "/f32_2d.idx", make_idx_f32({2, 3}, ramp(6)));
        write_idx(dir + "/f32_4d.idx", make_idx_f32({2, 1, 2, 2}, ramp(8)));
        write_idx(dir + "/u8_2d.idx.gz", make_idx_u8({3, 4}, bytes(12)));
        write_idx(dir + "/f32_1d.idx.gz", make_idx_f32({4}, ramp(4)));
    } catch (const dann::Error &e) {
        std::fprintf(stderr, "make_corpus: %s\n", e.what());
        return false;
    }
    return true;
}

// One step, so that the optimizer state is not all zeros.
bool write_checkpoint(dann_model *m, dann_optimizer optimizer, const std::string &path) {
    dann_model_info info;
    if (!ok(dann_model_get_info(m, &info), "info")) return false;
    dann_train_params tp = dann_train_params_default();
    tp.optimizer = optimizer;
    dann_trainer *t = nullptr;
    if (!ok(dann_trainer_create(m, &tp, &t), "trainer")) return false;
    const size_t n = 2, pixels = static_cast<size_t>(info.in_channels) * info.in_height * info.in_width;
    const std::vector<float> xs = ramp(n * pixels), xt = ramp(n * pixels);
    const dann_batch s = dann_batch_f32_nchw(xs.data(), n, info.in_channels, info.in_height, info.in_width);
    const dann_batch tg = dann_batch_f32_nchw(xt.data(), n, info.in_channels, info.in_height, info.in_width);
    const int32_t labels[2] = {0, 1};
    bool good = ok(dann_trainer_step(t, &s, labels, &tg, 0.1f, 0.01f, nullptr), "step") &&
                ok(dann_trainer_save(t, path.c_str()), path.c_str());
    dann_trainer_destroy(t);
    return good;
}

bool write_model_seeds(const std::string &dir) {
    dann_model *mlp = nullptr;
    if (!ok(dann_model_create_mlp(3, 4, 2, 7, &mlp), "mlp")) return false;
    const float mean[3] = {0.1f, 0.2f, 0.3f};
    const std::vector<float> replay = ramp(4 * 3);
    const int32_t replay_labels[4] = {0, 1, 1, 0};
    const dann_batch replay_batch = dann_batch_f32_nchw(replay.data(), 4, 3, 1, 1);
    bool good = ok(dann_model_set_input_norm(mlp, 0.5f, mean, 3), "input norm") &&
                ok(dann_model_save(mlp, (dir + "/mlp.dann").c_str()), "mlp.dann") &&
                write_checkpoint(mlp, DANN_OPTIMIZER_SGD, dir + "/mlp_sgd_checkpoint.dann") &&
                write_checkpoint(mlp, DANN_OPTIMIZER_ADAM, dir + "/mlp_adam_checkpoint.dann") &&
                ok(dann_model_set_replay(mlp, &replay_batch, replay_labels), "replay") &&
                ok(dann_model_save(mlp, (dir + "/mlp_replay.dann").c_str()), "mlp_replay.dann");
    dann_model_destroy(mlp);
    if (!good) return false;

    const dann_layer_desc features[] = {dann_layer_conv2d(2, 3, 1, 1), dann_layer_batchnorm(),
                                        dann_layer_relu(), dann_layer_maxpool2d(2, 2, 0)};
    const dann_layer_desc label[] = {dann_layer_flatten(), dann_layer_dense(3), dann_layer_relu(),
                                     dann_layer_dropout(0.5f), dann_layer_dense(2)};
    const dann_layer_desc domain[] = {dann_layer_dense(2), dann_layer_sigmoid(), dann_layer_dense(1)};
    dann_model_desc d;
    std::memset(&d, 0, sizeof d);
    d.in_channels = 1;
    d.in_height = 4;
    d.in_width = 4;
    d.features = features;
    d.n_features = 4;
    d.label_head = label;
    d.n_label_head = 5;
    d.domain_head = domain;
    d.n_domain_head = 3;
    d.domain_batchnorm = 1;
    dann_model *conv = nullptr;
    if (!ok(dann_model_create(&d, 7, &conv), "conv")) return false;
    good = ok(dann_model_save(conv, (dir + "/conv_bn.dann").c_str()), "conv_bn.dann") &&
           write_checkpoint(conv, DANN_OPTIMIZER_ADAM, dir + "/conv_bn_adam_checkpoint.dann");
    dann_model_destroy(conv);
    return good;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s IDX_DIR MODEL_DIR\n", argv[0]);
        return 2;
    }
    return write_idx_seeds(argv[1]) && write_model_seeds(argv[2]) ? 0 : 1;
}
