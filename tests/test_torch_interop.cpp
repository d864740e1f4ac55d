// Interop with PyTorch (tools/torch/dann_torch.py). Models trained in PyTorch
// and written by dann_torch.write_dann load with dann_model_load and predict
// what PyTorch predicted; dann's golden files, read by dann_torch.read_dann,
// predicted in PyTorch what dann predicts here; and dann re-saves a file
// written by PyTorch byte for byte. The fixtures in tests/fixtures/interop/
// come from tests/torch/make_interop_fixtures.py (see tools/torch/README.md):
// the model files and, per model, the inputs and PyTorch's outputs as text.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include <zlib.h>

#include "dann.h"
#include "file_test_util.hpp"

namespace {

// Both sides compute in float32 with different summation orders (oneDNN's
// blocked convolutions and inner products against PyTorch's); the largest
// differences seen are reported by each case.
constexpr double kProbTolerance = 1e-5;

std::string fixture_path(const std::string &rel) { return std::string(DANN_FIXTURE_DIR) + "/" + rel; }

std::vector<uint8_t> file_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE_MESSAGE(f.good(), "cannot open " << path);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

struct Case {
    std::string name;
    bool u8 = true; // u8_hwc, else f32_nchw
    size_t n = 0;
    int c = 0, h = 0, w = 0;
    std::vector<uint8_t> pixels;
    std::vector<float> values;
    std::vector<int32_t> labels;
    std::map<std::string, std::vector<float>> probs, domain_probs; // by domain
    size_t sample_size() const { return size_t(c) * size_t(h) * size_t(w); }
    dann_batch batch() const {
        return u8 ? dann_batch_u8_hwc(pixels.data(), n, h, w, c)
                  : dann_batch_f32_nchw(values.data(), n, c, h, w);
    }
};

struct Fixture {
    std::string model; // relative to tests/fixtures
    size_t model_bytes = 0;
    unsigned long model_crc = 0;
    std::string direction;
    int classes = 0;
    int domain_batchnorm = 0;
    std::vector<Case> cases;
};

std::vector<uint8_t> from_hex(const std::string &hex) {
    REQUIRE(hex.size() % 2 == 0);
    std::vector<uint8_t> out(hex.size() / 2);
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return out;
}

Fixture read_fixture(const std::string &name) {
    std::ifstream in(fixture_path("interop/" + name));
    REQUIRE_MESSAGE(in.good(), "cannot open fixture interop/" << name);
    Fixture fx;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        std::string key;
        ss >> key;
        if (key == "model") {
            ss >> fx.model;
        } else if (key == "model_bytes") {
            ss >> fx.model_bytes;
        } else if (key == "model_crc32") {
            ss >> std::hex >> fx.model_crc;
        } else if (key == "direction") {
            ss >> fx.direction;
        } else if (key == "classes") {
            ss >> fx.classes;
        } else if (key == "domain_batchnorm") {
            ss >> fx.domain_batchnorm;
        } else if (key == "case") {
            Case c;
            std::string format;
            ss >> c.name >> format >> c.n >> c.c >> c.h >> c.w;
            REQUIRE((format == "u8_hwc" || format == "f32_nchw"));
            c.u8 = format == "u8_hwc";
            fx.cases.push_back(c);
        } else if (key == "x") {
            REQUIRE(!fx.cases.empty());
            Case &c = fx.cases.back();
            size_t i = 0;
            ss >> i;
            REQUIRE(i == (c.u8 ? c.pixels.size() : c.values.size()) / c.sample_size());
            if (c.u8) {
                std::string hex;
                ss >> hex;
                const std::vector<uint8_t> px = from_hex(hex);
                REQUIRE(px.size() == c.sample_size());
                c.pixels.insert(c.pixels.end(), px.begin(), px.end());
            } else {
                for (size_t k = 0; k < c.sample_size(); ++k) {
                    float v = 0.0f;
                    REQUIRE(static_cast<bool>(ss >> v));
                    c.values.push_back(v);
                }
            }
        } else if (key == "labels") {
            REQUIRE(!fx.cases.empty());
            int32_t v = 0;
            while (ss >> v) fx.cases.back().labels.push_back(v);
        } else if (key == "probs" || key == "domain_prob") {
            REQUIRE(!fx.cases.empty());
            Case &c = fx.cases.back();
            std::string domain;
            size_t i = 0;
            ss >> domain >> i;
            std::vector<float> &dst = key == "probs" ? c.probs[domain] : c.domain_probs[domain];
            const size_t width = key == "probs" ? size_t(fx.classes) : 1;
            REQUIRE(dst.size() == i * width);
            for (size_t k = 0; k < width; ++k) {
                float v = 0.0f;
                REQUIRE(static_cast<bool>(ss >> v));
                dst.push_back(v);
            }
        } else {
            FAIL("interop/" << name << ": unknown record '" << key << "'");
        }
    }
    REQUIRE(!fx.model.empty());
    REQUIRE(fx.classes >= 2);
    for (const Case &c : fx.cases) {
        REQUIRE((c.u8 ? c.pixels.size() : c.values.size()) == c.n * c.sample_size());
        for (const auto &p : c.probs) REQUIRE(p.second.size() == c.n * size_t(fx.classes));
        for (const auto &p : c.domain_probs) REQUIRE(p.second.size() == c.n);
    }
    return fx;
}

// Loads the fixture's model after checking that it is the file the fixture
// was written from.
dann_model *load_model(const Fixture &fx) {
    const std::string path = fixture_path(fx.model);
    const std::vector<uint8_t> bytes = file_bytes(path);
    const unsigned long crc = crc32(0L, bytes.data(), static_cast<uInt>(bytes.size()));
    REQUIRE_MESSAGE((bytes.size() == fx.model_bytes && crc == fx.model_crc),
                    fx.model << " is not the file the fixture was written from: regenerate it "
                                "(tools/torch/README.md)");
    dann_model *m = nullptr;
    REQUIRE_MESSAGE(dann_model_load(path.c_str(), &m) == DANN_OK, dann_last_error());
    dann_model_info info{};
    REQUIRE(dann_model_get_info(m, &info) == DANN_OK);
    REQUIRE(info.num_classes == fx.classes);
    return m;
}

struct Diff {
    double probs = 0.0, domain = 0.0;
};

// Runs every case of the fixture in dann with each domain's statistics that
// the fixture holds and compares with PyTorch's outputs.
Diff compare_predictions(const Fixture &fx, dann_model *m) {
    Diff worst;
    const size_t k = size_t(fx.classes);
    for (const Case &c : fx.cases) {
        for (const auto &ref : c.probs) {
            const std::string &domain = ref.first;
            CAPTURE(fx.model);
            CAPTURE(c.name);
            CAPTURE(domain);
            dann_context *ctx = nullptr;
            REQUIRE(dann_context_create(m, &ctx) == DANN_OK);
            REQUIRE(dann_context_set_domain(ctx, domain == "source" ? DANN_DOMAIN_SOURCE
                                                                    : DANN_DOMAIN_TARGET) == DANN_OK);
            const dann_batch b = c.batch();
            std::vector<float> probs(c.n * k), dprobs(c.n);
            const dann_status st = dann_predict(ctx, &b, probs.data(), probs.size(), dprobs.data(), dprobs.size());
            dann_context_destroy(ctx);
            REQUIRE_MESSAGE(st == DANN_OK, dann_last_error());
            const std::vector<float> &want = ref.second;
            const std::vector<float> &want_d = c.domain_probs.at(domain);
            double dp = 0.0, dd = 0.0;
            for (size_t i = 0; i < probs.size(); ++i) dp = std::max(dp, std::fabs(double(probs[i]) - double(want[i])));
            for (size_t i = 0; i < c.n; ++i) dd = std::max(dd, std::fabs(double(dprobs[i]) - double(want_d[i])));
            CHECK(dp <= kProbTolerance);
            CHECK(dd <= kProbTolerance);
            for (size_t i = 0; i < c.n; ++i) {
                const auto row = probs.begin() + std::ptrdiff_t(i * k);
                const auto ref_row = want.begin() + std::ptrdiff_t(i * k);
                // The same class wins unless PyTorch's top two are closer than the tolerance.
                std::vector<float> sorted(ref_row, ref_row + std::ptrdiff_t(k));
                std::sort(sorted.rbegin(), sorted.rend());
                if (double(sorted[0]) - double(sorted[1]) > 2 * kProbTolerance)
                    CHECK(std::max_element(row, row + std::ptrdiff_t(k)) - row ==
                          std::max_element(ref_row, ref_row + std::ptrdiff_t(k)) - ref_row);
            }
            worst.probs = std::max(worst.probs, dp);
            worst.domain = std::max(worst.domain, dd);
        }
    }
    return worst;
}

void report(const char *what, const Diff &d) {
    char line[256];
    std::snprintf(line, sizeof line, "%s: max |dann - torch| class probabilities %.3g, P(target) %.3g (tolerance %.0e)",
                  what, d.probs, d.domain, kProbTolerance);
    MESSAGE(line);
}

void check_torch_export(const char *fixture) {
    const Fixture fx = read_fixture(fixture);
    REQUIRE(fx.direction == "torch_to_dann");
    dann_model *m = load_model(fx);
    const Diff d = compare_predictions(fx, m);
    report(fixture, d);
    dann_model_destroy(m);
}

} // namespace

TEST_SUITE("interop") {

TEST_CASE("The MNIST preset trained in PyTorch predicts in dann what it predicted in PyTorch") {
    check_torch_export("torch_mnist.txt");
}

TEST_CASE("A PyTorch net with BatchNorm2d and BatchNorm1d and their running statistics predicts in dann as in PyTorch") {
    check_torch_export("torch_bn.txt");
}

TEST_CASE("A PyTorch net with per-domain batch norm predicts in dann as in PyTorch with either domain's statistics") {
    const Fixture fx = read_fixture("torch_dbn.txt");
    REQUIRE(fx.domain_batchnorm == 1);
    for (const Case &c : fx.cases) {
        CHECK(c.probs.count("source") == 1);
        CHECK(c.probs.count("target") == 1);
    }
    check_torch_export("torch_dbn.txt");
}

TEST_CASE("A file exported from PyTorch with the mnist preset has exactly the preset's parameters") {
    const Fixture fx = read_fixture("torch_mnist.txt");
    dann_model *m = load_model(fx);
    dann_model *p = nullptr;
    REQUIRE(dann_model_create_preset(DANN_PRESET_MNIST, 1, &p) == DANN_OK);
    dann_model_info a{}, b{};
    REQUIRE(dann_model_get_info(m, &a) == DANN_OK);
    REQUIRE(dann_model_get_info(p, &b) == DANN_OK);
    CHECK(a.in_channels == b.in_channels);
    CHECK(a.in_height == b.in_height);
    CHECK(a.in_width == b.in_width);
    CHECK(a.feature_size == b.feature_size);
    CHECK(a.n_weights == b.n_weights);
    REQUIRE(dann_model_param_count(m) == dann_model_param_count(p));
    for (size_t i = 0; i < dann_model_param_count(m); ++i) {
        dann_param_info x{}, y{};
        REQUIRE(dann_model_param_info(m, i, &x) == DANN_OK);
        REQUIRE(dann_model_param_info(p, i, &y) == DANN_OK);
        CHECK(std::string(x.name) == y.name);
        CHECK(x.ndim == y.ndim);
        for (int d = 0; d < x.ndim; ++d) CHECK(x.shape[d] == y.shape[d]);
    }
    dann_model_destroy(p);
    dann_model_destroy(m);
}

TEST_CASE("dann re-saves a model file written by PyTorch byte for byte") {
    dann_test::TempDir dir;
    for (const std::string name : {"torch_mnist.dann", "torch_bn.dann", "torch_dbn.dann"}) {
        CAPTURE(name);
        const std::string src = fixture_path("interop/" + name);
        dann_model *m = nullptr;
        REQUIRE_MESSAGE(dann_model_load(src.c_str(), &m) == DANN_OK, dann_last_error());
        const std::string dst = dir.file(name);
        REQUIRE_MESSAGE(dann_model_save(m, dst.c_str()) == DANN_OK, dann_last_error());
        dann_model_destroy(m);
        CHECK(file_bytes(dst) == file_bytes(src));
    }
}

TEST_CASE("PyTorch reading dann's golden files predicted what dann predicts from them") {
    for (const std::string fixture : {"golden_conv_dbn.txt", "golden_mlp.txt"}) {
        CAPTURE(fixture);
        const Fixture fx = read_fixture(fixture);
        REQUIRE(fx.direction == "dann_to_torch");
        dann_model *m = load_model(fx);
        const Diff d = compare_predictions(fx, m);
        report(fixture.c_str(), d);
        dann_model_destroy(m);
    }
}

TEST_CASE("PyTorch reads the replay set of dann's golden files as dann holds it") {
    for (const std::string fixture : {"golden_conv_dbn.txt", "golden_mlp.txt"}) {
        CAPTURE(fixture);
        const Fixture fx = read_fixture(fixture);
        dann_model *m = load_model(fx);
        const auto it = std::find_if(fx.cases.begin(), fx.cases.end(),
                                     [](const Case &c) { return c.name == "replay"; });
        REQUIRE(it != fx.cases.end());
        const Case &c = *it;
        dann_replay_info info{};
        REQUIRE(dann_model_replay_info(m, &info) == DANN_OK);
        REQUIRE(info.n == c.n);
        CHECK(info.format == (c.u8 ? DANN_INPUT_U8_HWC : DANN_INPUT_F32_NCHW));
        CHECK(info.channels == c.c);
        CHECK(info.height == c.h);
        CHECK(info.width == c.w);
        std::vector<uint8_t> data(c.n * c.sample_size() * (c.u8 ? 1 : sizeof(float)));
        std::vector<int32_t> labels(c.n);
        REQUIRE(dann_model_get_replay(m, 0, c.n, data.data(), data.size(), labels.data()) == DANN_OK);
        if (c.u8) {
            CHECK(data == c.pixels);
        } else {
            std::vector<float> values(c.values.size());
            std::memcpy(values.data(), data.data(), data.size());
            CHECK(values == c.values);
        }
        CHECK(labels == c.labels);
        dann_model_destroy(m);
    }
}

} // TEST_SUITE("interop")
