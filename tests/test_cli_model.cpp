// `dann train --replay K` and `dann info` on model files, run in this process
// with their output captured.
#include <doctest/doctest.h>

// Built only with the tool (DANN_BUILD_TOOLS), whose dann_tool library brings
// these headers.
#if __has_include("commands.hpp")

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "commands.hpp"
#include "data/idx.hpp"
#include "dann.h"
#include "file_test_util.hpp"
#include "model_file_test_util.hpp"

namespace {

using dann_test::TempDir;

struct Run {
    int rc = -1;
    std::string out, err;
};

std::string slurp(FILE *f) {
    std::string text;
    std::rewind(f);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    return text;
}

// Runs a subcommand with stdout and stderr sent to temporary files.
Run run(int (*command)(int, char **), std::vector<std::string> words) {
    words.insert(words.begin(), "command");
    std::vector<char *> argv;
    for (std::string &w : words) argv.push_back(w.data());
    std::fflush(stdout);
    std::fflush(stderr);
    FILE *out = std::tmpfile(), *err = std::tmpfile();
    REQUIRE(out != nullptr);
    REQUIRE(err != nullptr);
    const int saved_out = ::dup(1), saved_err = ::dup(2);
    ::dup2(::fileno(out), 1);
    ::dup2(::fileno(err), 2);
    Run r;
    r.rc = command(static_cast<int>(argv.size()), argv.data());
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved_out, 1);
    ::dup2(saved_err, 2);
    ::close(saved_out);
    ::close(saved_err);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

std::string last_line(const std::string &text) {
    const size_t end = text.find_last_not_of('\n');
    if (end == std::string::npos) return "";
    const size_t start = text.find_last_of('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// 40 grayscale 4x4 images, the first pixel of each its index, labels i % 2;
// and 30 two-feature samples, labels i % 2.
struct Data {
    TempDir dir;
    std::vector<uint8_t> pixels;
    std::vector<float> features;
    Data() {
        pixels.resize(40 * 16);
        for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i % 16 == 0 ? i / 16 : (i * 29) % 256);
        features.resize(30 * 2);
        for (size_t i = 0; i < features.size(); ++i) features[i] = static_cast<float>(i) * 0.125f - 2.0f;
        std::vector<uint8_t> labels40(40), labels30(30);
        for (size_t i = 0; i < 40; ++i) labels40[i] = static_cast<uint8_t>(i % 2);
        for (size_t i = 0; i < 30; ++i) labels30[i] = static_cast<uint8_t>(i % 2);
        dann::data::write_idx(dir.file("images"), dann::data::make_idx_u8({40, 4, 4}, pixels));
        dann::data::write_idx(dir.file("image-labels"), dann::data::make_idx_u8({40}, labels40));
        dann::data::write_idx(dir.file("features"), dann::data::make_idx_f32({30, 2}, features));
        dann::data::write_idx(dir.file("feature-labels"), dann::data::make_idx_u8({30}, labels30));
    }
    Run train(const std::string &samples, const std::string &labels, const std::string &out,
              std::vector<std::string> extra) const {
        std::vector<std::string> words = {"--arch", "mlp:4", "--mode", "source-only", "--recipe", "paper",
                                          "--steps", "5", "--batch", "8", "--source-images", dir.file(samples),
                                          "--source-labels", dir.file(labels), "--out", dir.file(out), "--quiet"};
        words.insert(words.end(), extra.begin(), extra.end());
        return run(dann::tool::cmd_train, words);
    }
};

struct Replay {
    dann_replay_info info{};
    std::vector<uint8_t> data;
    std::vector<int32_t> labels;
};

Replay replay_in(const std::string &path) {
    dann_model *m = nullptr;
    REQUIRE(dann_model_load(path.c_str(), &m) == DANN_OK);
    Replay r;
    REQUIRE(dann_model_replay_info(m, &r.info) == DANN_OK);
    const size_t sample = size_t(r.info.channels) * size_t(r.info.height) * size_t(r.info.width) *
                          (r.info.format == DANN_INPUT_U8_HWC ? 1 : 4);
    r.data.resize(r.info.n * sample);
    r.labels.resize(r.info.n);
    if (r.info.n > 0)
        REQUIRE(dann_model_get_replay(m, 0, r.info.n, r.data.data(), r.data.size(), r.labels.data()) == DANN_OK);
    dann_model_destroy(m);
    return r;
}

} // namespace

TEST_CASE("dann train --replay K stores K distinct labelled source images, as uint8, the same for the same seed") {
    Data d;
    const Run r = d.train("images", "image-labels", "m.dann", {"--replay", "10", "--seed", "3"});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const Replay rep = replay_in(d.dir.file("m.dann"));
    CHECK(rep.info.n == 10);
    CHECK(rep.info.format == DANN_INPUT_U8_HWC);
    CHECK(rep.info.channels == 1);
    CHECK(rep.info.height == 4);
    CHECK(rep.info.width == 4);
    std::map<int, int> seen;
    for (size_t i = 0; i < rep.info.n; ++i) {
        const int index = rep.data[i * 16]; // the first pixel names the source sample
        CAPTURE(index);
        REQUIRE(index < 40);
        CHECK(std::equal(rep.data.begin() + long(i * 16), rep.data.begin() + long(i * 16 + 16),
                         d.pixels.begin() + long(index * 16)));
        CHECK(rep.labels[i] == index % 2);
        ++seen[index];
    }
    CHECK(seen.size() == 10); // without replacement

    const Run again = d.train("images", "image-labels", "again.dann", {"--replay", "10", "--seed", "3"});
    REQUIRE(again.rc == 0);
    CHECK(replay_in(d.dir.file("again.dann")).data == rep.data);
}

TEST_CASE("dann train --replay caps K at the source set, takes float features as given, and stores nothing by default") {
    Data d;
    Run r = d.train("images", "image-labels", "all.dann", {"--replay", "1000"});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(replay_in(d.dir.file("all.dann")).info.n == 40);

    r = d.train("features", "feature-labels", "f.dann", {"--replay", "7"});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const Replay f = replay_in(d.dir.file("f.dann"));
    CHECK(f.info.n == 7);
    CHECK(f.info.format == DANN_INPUT_F32_NCHW);
    CHECK(f.info.channels == 2);
    for (size_t i = 0; i < f.info.n; ++i) {
        float x[2];
        std::memcpy(x, f.data.data() + i * 8, 8);
        const float pos = (x[0] + 2.0f) / 0.125f; // features[2k] = 2k * 0.125 - 2
        const size_t k = static_cast<size_t>(pos) / 2;
        CHECK(x[1] == d.features[2 * k + 1]);
        CHECK(f.labels[i] == static_cast<int32_t>(k % 2));
    }

    r = d.train("features", "feature-labels", "none.dann", {});
    REQUIRE(r.rc == 0);
    CHECK(replay_in(d.dir.file("none.dann")).info.n == 0);

    r = d.train("features", "feature-labels", "bad.dann", {"--replay", "-1"});
    CHECK(r.rc == 2);
    CHECK(r.err.find("--replay") != std::string::npos);
}

TEST_CASE("dann eval --int8 calibrates on unlabelled samples and scores the int8 predictions") {
    Data d;
    const Run t = d.train("images", "image-labels", "m.dann", {"--seed", "5"});
    REQUIRE_MESSAGE(t.rc == 0, t.err);
    const std::vector<std::string> base = {"--model", d.dir.file("m.dann"), "--images",
                                           d.dir.file("images"), "--labels",
                                           d.dir.file("image-labels"), "--threads", "1", "--json"};
    const Run f32 = run(dann::tool::cmd_eval, base);
    REQUIRE_MESSAGE(f32.rc == 0, f32.err);
    std::vector<std::string> words = base;
    words.insert(words.end(), {"--int8", d.dir.file("images"), "--int8-count", "16"});
    const Run int8 = run(dann::tool::cmd_eval, words);
    if (!dann_precision_supported(DANN_PRECISION_INT8)) {
        CHECK(int8.rc != 0);
        CHECK(int8.err.find("int8") != std::string::npos);
        return;
    }
    REQUIRE_MESSAGE(int8.rc == 0, int8.err);
    CHECK(last_line(int8.out).find("\"accuracy\"") != std::string::npos);
    CHECK(last_line(int8.out).find("\"n\": 40") != std::string::npos);
    // Calibration samples of another shape are refused, naming them.
    words = base;
    words.insert(words.end(), {"--int8", d.dir.file("features")});
    const Run bad = run(dann::tool::cmd_eval, words);
    CHECK(bad.rc != 0);
    CHECK(bad.err.find("calibration") != std::string::npos);
}

TEST_CASE("dann info shows the format version, the sections with their checksums, the replay set and the optimizer state") {
    Data d;
    REQUIRE(d.train("images", "image-labels", "m.dann", {"--replay", "10"}).rc == 0);
    const Replay rep = replay_in(d.dir.file("m.dann"));
    int counts[2] = {0, 0};
    for (int32_t label : rep.labels) ++counts[label];

    const Run text = run(dann::tool::cmd_info, {"--model", d.dir.file("m.dann")});
    REQUIRE_MESSAGE(text.rc == 0, text.err);
    CHECK(text.out.find("file        format version 2") != std::string::npos);
    for (const char *tag : {"ARCH", "NORM", "PARM", "RPLY"}) {
        CAPTURE(tag);
        CHECK(text.out.find(std::string(tag) + " ") != std::string::npos);
    }
    CHECK(text.out.find("crc ok") != std::string::npos);
    CHECK(text.out.find("optimizer   none") != std::string::npos);
    CHECK(text.out.find("replay      10 samples, U8_HWC 1x4x4, " + std::to_string(10 * 16 + 10 * 4) + " bytes") !=
          std::string::npos);
    CHECK(text.out.find("per class  0:" + std::to_string(counts[0]) + "  1:" + std::to_string(counts[1])) !=
          std::string::npos);
    CHECK(text.out.find("weights ") != std::string::npos); // the existing summary stays

    const Run json = run(dann::tool::cmd_info, {"--model", d.dir.file("m.dann"), "--json"});
    REQUIRE(json.rc == 0);
    const std::string line = last_line(json.out);
    CAPTURE(line);
    CHECK(line.find("\"format_version\": 2") != std::string::npos);
    CHECK(line.find("\"sections\": [{\"tag\": \"ARCH\", \"offset\": 32, ") != std::string::npos);
    CHECK(line.find("\"crc_ok\": false") == std::string::npos);
    CHECK(line.find("\"optimizer\": false") != std::string::npos);
    CHECK(line.find("\"replay\": {\"n\": 10, \"format\": \"U8_HWC\", \"channels\": 1, \"height\": 4, \"width\": 4, "
                    "\"bytes\": 200, \"class_counts\": [" + std::to_string(counts[0]) + ", " +
                    std::to_string(counts[1]) + "]}") != std::string::npos);
    CHECK(line.find("\"classes\": 2") != std::string::npos);

    // A checkpoint, and a version 1 file.
    dann_model *m = nullptr;
    REQUIRE(dann_model_load(d.dir.file("m.dann").c_str(), &m) == DANN_OK);
    dann_train_params tp = dann_train_params_default();
    dann_trainer *t = nullptr;
    REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
    REQUIRE(dann_trainer_save(t, d.dir.file("ck").c_str()) == DANN_OK);
    dann_trainer_destroy(t);
    dann_model_destroy(m);
    const Run ck = run(dann::tool::cmd_info, {"--model", d.dir.file("ck"), "--json"});
    REQUIRE(ck.rc == 0);
    CHECK(last_line(ck.out).find("\"optimizer\": true") != std::string::npos);
    CHECK(last_line(ck.out).find("\"tag\": \"OPTM\"") != std::string::npos);

    const Run v1 = run(dann::tool::cmd_info, {"--model", model_test::golden_dir() + "/v1_conv_dbn_adam.ckpt"});
    REQUIRE_MESSAGE(v1.rc == 0, v1.err);
    CHECK(v1.out.find("format version 1") != std::string::npos);
    CHECK(v1.out.find("payload") != std::string::npos);
    CHECK(v1.out.find("optimizer   state present") != std::string::npos);
    CHECK(v1.out.find("replay      none") != std::string::npos);
}

#endif
