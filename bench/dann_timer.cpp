// The dann side of bench/side_by_side.py, on the public API only. Each mode
// prints one line of JSON on stdout.
//
//   dann_timer time --threads T [--step-iters K] [--predict1-iters M]
//                   [--predict256-iters J] [--warmup W]
//       per-call times (ms) of a DANN training step (64 source + 64 target,
//       SGD momentum 0.9, lr 0.01, lambda 0.1) and of predictions at batch 1
//       and 256, on the MNIST preset (--arch svhn|gtsrb: the other presets).
//       --bf16: the training step with DANN_PRECISION_BF16; --int8: the
//       predictions on a context quantized (dann_context_quantize) with 256
//       other images of the same kind.
//   dann_timer caps                     which precisions this CPU runs natively
//   dann_timer save PATH                write an MNIST preset model (seed 7)
//   dann_timer adapt PATH N --threads T [--adapter]
//       load PATH and take N DANN steps of 64 + 64 with a trainer (the same
//       work as side_by_side.py's PyTorch script), or with --adapter N rounds
//       of one step through dann_adapter (a 256-sample replay set, its guard);
//       the parent reads this process's peak RSS
//   dann_timer first-predict PATH --threads T
//       load PATH, predict one image, print; the parent times it from spawn
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dann.h"

namespace {

constexpr int kC = 3, kH = 28, kW = 28, kClasses = 10;
constexpr size_t kImage = static_cast<size_t>(kC) * kH * kW;

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "dann_timer: %s: %s\n", what, dann_last_error());
    std::exit(1);
}

void check(dann_status s, const char *what) {
    if (s != DANN_OK) die(what);
}

std::vector<float> random_images(size_t n, uint32_t seed, float offset, size_t image = kImage) {
    std::vector<float> v(n * image);
    for (auto &x : v) {
        seed = seed * 1664525u + 1013904223u;
        x = static_cast<float>(seed >> 8) / 16777216.0f - offset;
    }
    return v;
}

std::vector<int32_t> labels_for(size_t n, int classes = kClasses) {
    std::vector<int32_t> l(n);
    for (size_t i = 0; i < n; ++i) l[i] = static_cast<int32_t>(i % static_cast<size_t>(classes));
    return l;
}

const char *arg_value(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 0; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
    return fallback;
}

bool has_flag(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return true;
    return false;
}

int int_arg(int argc, char **argv, const char *name, int fallback) {
    const char *v = arg_value(argc, argv, name, nullptr);
    return v ? std::atoi(v) : fallback;
}

void print_array(const char *name, const std::vector<double> &v, bool last) {
    std::printf("\"%s\": [", name);
    for (size_t i = 0; i < v.size(); ++i) std::printf("%s%.6f", i ? ", " : "", v[i]);
    std::printf("]%s", last ? "" : ", ");
}

int cmd_time(int argc, char **argv) {
    const int threads = int_arg(argc, argv, "--threads", 1);
    const int step_iters = int_arg(argc, argv, "--step-iters", 20);
    const int p1_iters = int_arg(argc, argv, "--predict1-iters", 300);
    const int p256_iters = int_arg(argc, argv, "--predict256-iters", 20);
    const int warmup = int_arg(argc, argv, "--warmup", 3);
    const bool bf16 = has_flag(argc, argv, "--bf16");
    const bool int8 = has_flag(argc, argv, "--int8");

    const std::string arch = arg_value(argc, argv, "--arch", "mnist");
    dann_preset preset = DANN_PRESET_MNIST;
    if (arch == "svhn") preset = DANN_PRESET_SVHN;
    else if (arch == "gtsrb") preset = DANN_PRESET_GTSRB;
    else if (arch != "mnist") {
        std::fprintf(stderr, "dann_timer: unknown --arch %s (mnist, svhn, gtsrb)\n", arch.c_str());
        return 2;
    }

    dann_model *m = nullptr;
    check(dann_model_create_preset(preset, 7, &m), "create");
    check(dann_model_set_threads(m, threads), "threads");
    dann_model_info info{};
    check(dann_model_get_info(m, &info), "info");
    const int c = info.in_channels, h = info.in_height, w = info.in_width;
    const int classes = info.num_classes;
    const size_t image = static_cast<size_t>(c) * static_cast<size_t>(h) * static_cast<size_t>(w);

    // Predictions first, on the initial weights; then training.
    dann_context *ctx = nullptr;
    check(dann_context_create(m, &ctx), "context");
    if (int8) {
        const std::vector<float> calib = random_images(256, 21, 0.5f, image);
        dann_batch cb = dann_batch_f32_nchw(calib.data(), 256, c, h, w);
        check(dann_context_quantize(ctx, &cb), "quantize");
    }
    const std::vector<float> images = random_images(256, 11, 0.5f, image);
    std::vector<float> probs(256 * static_cast<size_t>(classes));
    std::vector<double> p1, p256, step;
    dann_batch one = dann_batch_f32_nchw(images.data(), 1, c, h, w);
    dann_batch many = dann_batch_f32_nchw(images.data(), 256, c, h, w);
    for (int i = 0; i < warmup + p1_iters; ++i) {
        const auto t0 = Clock::now();
        check(dann_predict(ctx, &one, probs.data(), probs.size(), nullptr, 0), "predict 1");
        if (i >= warmup) p1.push_back(ms_since(t0));
    }
    for (int i = 0; i < warmup + p256_iters; ++i) {
        const auto t0 = Clock::now();
        check(dann_predict(ctx, &many, probs.data(), probs.size(), nullptr, 0), "predict 256");
        if (i >= warmup) p256.push_back(ms_since(t0));
    }
    dann_context_destroy(ctx);

    dann_train_params tp = dann_train_params_default(); // SGD, momentum 0.9
    if (bf16) tp.precision = DANN_PRECISION_BF16;
    dann_trainer *t = nullptr;
    check(dann_trainer_create(m, &tp, &t), "trainer");
    const std::vector<float> src = random_images(64, 12, 0.5f, image), tgt = random_images(64, 13, 0.3f, image);
    const std::vector<int32_t> labels = labels_for(64, classes);
    dann_batch sb = dann_batch_f32_nchw(src.data(), 64, c, h, w);
    dann_batch tb = dann_batch_f32_nchw(tgt.data(), 64, c, h, w);
    dann_step_result r;
    for (int i = 0; i < warmup + step_iters; ++i) {
        const auto t0 = Clock::now();
        check(dann_trainer_step(t, &sb, labels.data(), &tb, 0.1f, 0.01f, &r), "step");
        if (i >= warmup) step.push_back(ms_since(t0));
    }
    dann_trainer_destroy(t);
    dann_model_destroy(m);

    std::printf("{\"threads\": %d, ", threads);
    print_array("step_ms", step, false);
    print_array("predict1_ms", p1, false);
    print_array("predict256_ms", p256, true);
    std::printf("}\n");
    return 0;
}

int cmd_save(const char *path) {
    dann_model *m = nullptr;
    check(dann_model_create_preset(DANN_PRESET_MNIST, 7, &m), "create");
    check(dann_model_save(m, path), "save");
    dann_model_destroy(m);
    std::printf("{\"saved\": \"%s\"}\n", path);
    return 0;
}

int cmd_adapt(const char *path, long steps, int argc, char **argv) {
    const int threads = int_arg(argc, argv, "--threads", 1);
    const bool adapter = has_flag(argc, argv, "--adapter");
    const auto t0 = Clock::now();
    dann_model *m = nullptr;
    check(dann_model_load(path, &m), "load");
    check(dann_model_set_threads(m, threads), "threads");
    const std::vector<float> src = random_images(64, 12, 0.5f), tgt = random_images(64, 13, 0.3f);
    const std::vector<int32_t> labels = labels_for(256);
    dann_batch sb = dann_batch_f32_nchw(src.data(), 64, kC, kH, kW);
    dann_batch tb = dann_batch_f32_nchw(tgt.data(), 64, kC, kH, kW);
    if (!adapter) {
        dann_train_params tp = dann_train_params_default();
        dann_trainer *t = nullptr;
        check(dann_trainer_create(m, &tp, &t), "trainer");
        dann_step_result r;
        for (long i = 0; i < steps; ++i)
            check(dann_trainer_step(t, &sb, labels.data(), &tb, 0.1f, 0.01f, &r), "step");
        dann_trainer_destroy(t);
    } else {
        // Camera-like uint8 samples: 256 labelled replay samples, 512 target.
        std::vector<uint8_t> replay(256 * kImage), ring(512 * kImage);
        uint32_t s = 5;
        for (auto &v : replay) v = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
        for (auto &v : ring) v = static_cast<uint8_t>((s = s * 1664525u + 1013904223u) >> 24);
        dann_batch rb = dann_batch_u8_hwc(replay.data(), 256, kH, kW, kC);
        check(dann_model_set_replay(m, &rb, labels.data()), "replay");
        dann_adapter_params p = dann_adapter_params_default();
        p.steps_per_round = 1;
        p.source_batch = 64;
        p.target_batch = 64;
        p.capacity = 512;
        p.background = 0;
        dann_adapter *a = nullptr;
        check(dann_adapter_create(m, &p, &a), "adapter");
        dann_batch pushed = dann_batch_u8_hwc(ring.data(), 512, kH, kW, kC);
        check(dann_adapter_push(a, &pushed), "push");
        check(dann_adapter_run(a, static_cast<size_t>(steps)), "run");
        dann_adapter_destroy(a);
    }
    dann_model_destroy(m);
    std::printf("{\"steps\": %ld, \"seconds\": %.6f}\n", steps, ms_since(t0) / 1000.0);
    return 0;
}

int cmd_first_predict(const char *path, int argc, char **argv) {
    const int threads = int_arg(argc, argv, "--threads", 1);
    dann_model *m = nullptr;
    check(dann_model_load(path, &m), "load");
    check(dann_model_set_threads(m, threads), "threads");
    dann_context *ctx = nullptr;
    check(dann_context_create(m, &ctx), "context");
    const std::vector<float> image = random_images(1, 11, 0.5f);
    float probs[kClasses];
    dann_batch one = dann_batch_f32_nchw(image.data(), 1, kC, kH, kW);
    check(dann_predict(ctx, &one, probs, kClasses, nullptr, 0), "predict");
    const int best = static_cast<int>(std::max_element(probs, probs + kClasses) - probs);
    std::printf("{\"class\": %d}\n", best);
    std::fflush(stdout);
    dann_context_destroy(ctx);
    dann_model_destroy(m);
    return 0;
}

int cmd_caps() {
    std::printf("{\"bf16\": %d, \"int8\": %d}\n", dann_precision_supported(DANN_PRECISION_BF16),
                dann_precision_supported(DANN_PRECISION_INT8));
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "time") return cmd_time(argc, argv);
    if (mode == "caps") return cmd_caps();
    if (mode == "save" && argc > 2) return cmd_save(argv[2]);
    if (mode == "adapt" && argc > 3) return cmd_adapt(argv[2], std::atol(argv[3]), argc, argv);
    if (mode == "first-predict" && argc > 2) return cmd_first_predict(argv[2], argc, argv);
    std::fprintf(stderr,
                 "usage: dann_timer time --threads T [--step-iters K] [--predict1-iters M] "
                 "[--predict256-iters J] [--warmup W] [--bf16] [--int8] [--arch mnist|svhn|gtsrb]\n"
                 "       dann_timer caps\n"
                 "       dann_timer save PATH\n"
                 "       dann_timer adapt PATH N --threads T [--adapter]\n"
                 "       dann_timer first-predict PATH --threads T\n");
    return 2;
}
