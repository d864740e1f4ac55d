// Golden model files pin the on-disk format (docs/model-format.md): the
// version 2 files must load with the values they were made from and save back
// byte for byte; the version 1 files, written by the version 1 writer, must
// keep loading.
//
// To rewrite the version 2 files after a deliberate format change:
//   DANN_REGENERATE_GOLDEN=1 ./dann_tests -tc="Golden version 2*"
// The version 1 files are never rewritten: no writer of that format is left.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "dann.h"
#include "file_test_util.hpp"
#include "io/model_file.hpp"
#include "model_file_test_util.hpp"

namespace {

using namespace model_test;

void check_golden_params(const dann::Model &m) {
    for (size_t p = 0; p < m.params.size(); ++p) {
        CAPTURE(m.params[p].name);
        for (size_t i = 0; i < m.params[p].numel; ++i)
            if (m.params[p].data.f32()[i] != golden_value(p, i, m.params[p].name)) {
                CHECK(m.params[p].data.f32()[i] == golden_value(p, i, m.params[p].name));
                return;
            }
    }
}

void check_same_replay(const dann::ReplaySet &a, const dann::ReplaySet &b) {
    CHECK(a.format == b.format);
    CHECK(a.channels == b.channels);
    CHECK(a.height == b.height);
    CHECK(a.width == b.width);
    CHECK(a.n == b.n);
    CHECK(a.data == b.data);
    CHECK(a.labels == b.labels);
}

void check_same_optimizer(const dann::OptimizerState &a, const dann::OptimizerState &b) {
    CHECK(a.optimizer == b.optimizer);
    CHECK(a.steps == b.steps);
    CHECK(a.param_steps == b.param_steps);
    CHECK(a.slot1 == b.slot1);
    CHECK(a.slot2 == b.slot2);
}

struct Golden {
    std::string file;
    std::unique_ptr<dann::Model> model;
    bool adam = false;
};

std::vector<Golden> golden_v2() {
    std::vector<Golden> out;
    Golden mlp{"v2_mlp_replay_adam.dann", golden_mlp(), true};
    mlp.model->replay = golden_mlp_replay();
    out.push_back(std::move(mlp));
    Golden conv{"v2_conv_dbn.dann", golden_conv(), false};
    conv.model->replay = golden_conv_replay();
    out.push_back(std::move(conv));
    return out;
}

} // namespace

TEST_CASE("Golden version 2 files load with the values they were written from, and save back byte for byte") {
    const bool regenerate = std::getenv("DANN_REGENERATE_GOLDEN") != nullptr;
    for (const Golden &g : golden_v2()) {
        CAPTURE(g.file);
        const std::string path = golden_dir() + "/" + g.file;
        const dann::OptimizerState adam = golden_adam(*g.model);
        const std::vector<uint8_t> expected = dann::encode_model_file(*g.model, g.adam ? &adam : nullptr);
        if (regenerate) {
            write_bytes(path, expected);
            MESSAGE("rewrote " << path);
        }
        const std::vector<uint8_t> file = read_bytes(path);
        REQUIRE(!file.empty());
        CHECK(file == expected); // the writer still writes this format

        const dann::LoadedModel l = dann::load_model_file(path);
        CHECK(l.format_version == 2);
        check_golden_params(*l.model);
        CHECK(l.model->input_scale == g.model->input_scale);
        CHECK(l.model->input_mean == g.model->input_mean);
        CHECK(l.model->domain_bn == g.model->domain_bn);
        check_same_replay(l.model->replay, g.model->replay);
        CHECK(l.has_optimizer == g.adam);
        if (g.adam) check_same_optimizer(l.optimizer, adam);
        CHECK(dann::encode_model_file(*l.model, l.has_optimizer ? &l.optimizer : nullptr) == file);
    }
}

TEST_CASE("Golden version 2 files list their sections with verified checksums") {
    const dann::ModelFileLayout mlp = dann::read_model_file_layout(golden_dir() + "/v2_mlp_replay_adam.dann");
    CHECK(mlp.version == 2);
    std::vector<std::string> tags;
    for (const dann::ModelSection &s : mlp.sections) {
        tags.push_back(s.tag);
        CHECK(s.crc_ok);
    }
    CHECK(tags == std::vector<std::string>{"ARCH", "NORM", "PARM", "OPTM", "RPLY"});
    CHECK(mlp.sections[0].offset == 32);
    CHECK((mlp.sections[3].flags & 1) == 1); // OPTM and RPLY may be skipped by an older reader
    CHECK((mlp.sections[4].flags & 1) == 1);
    CHECK((mlp.sections[2].flags & 1) == 0);
    // The MLP's replay section: 28 bytes of fields, 5 x 4 floats, 5 one-byte labels.
    CHECK(mlp.sections[4].body_bytes == 28 + 5 * 4 * 4 + 5);
    const dann::ModelFileLayout conv = dann::read_model_file_layout(golden_dir() + "/v2_conv_dbn.dann");
    CHECK(conv.sections.size() == 4);
    CHECK(conv.sections[3].tag == "RPLY");
    CHECK(conv.sections[3].body_bytes == 28 + 3 * 36 + 3);
}

TEST_CASE("The tests' own reading of the documented layout takes a golden file apart and back together") {
    for (const char *name : {"v2_mlp_replay_adam.dann", "v2_conv_dbn.dann"}) {
        CAPTURE(name);
        const std::vector<uint8_t> file = read_bytes(golden_dir() + "/" + name);
        CHECK(join(split(file)) == file);
    }
}

TEST_CASE("Version 1 files written by the previous writer still load with the same values") {
    SUBCASE("a plain MLP") {
        const dann::LoadedModel l = dann::load_model_file(golden_dir() + "/v1_mlp.dann");
        CHECK(l.format_version == 1);
        const auto expected = golden_mlp();
        REQUIRE(l.model->params.size() == expected->params.size());
        check_golden_params(*l.model);
        CHECK(l.model->input_scale == 1.0f / 255.0f);
        CHECK(l.model->input_mean == std::vector<float>{0, 0, 0, 0});
        CHECK_FALSE(l.has_optimizer);
        CHECK(l.model->replay.n == 0);
    }
    SUBCASE("a conv net with per-domain batch-norm statistics") {
        const dann::LoadedModel l = dann::load_model_file(golden_dir() + "/v1_conv_dbn.dann");
        CHECK(l.format_version == 1);
        const auto expected = golden_conv();
        REQUIRE(l.model->params.size() == expected->params.size());
        CHECK(l.model->domain_bn);
        CHECK(l.model->params.back().name == "domain_head.2.bias");
        check_golden_params(*l.model);
        CHECK(l.model->input_scale == expected->input_scale);
        CHECK(l.model->input_mean == expected->input_mean);
        // Saved again, it is a version 2 file with the same contents.
        const auto v2 = dann::encode_model_file(*l.model, nullptr);
        const dann::LoadedModel back = dann::parse_model_bytes(v2.data(), v2.size(), "re-saved");
        CHECK(back.format_version == 2);
        check_golden_params(*back.model);
    }
    SUBCASE("an Adam checkpoint restores into a trainer") {
        const std::string path = golden_dir() + "/v1_conv_dbn_adam.ckpt";
        const dann::LoadedModel l = dann::load_model_file(path);
        CHECK(l.format_version == 1);
        REQUIRE(l.has_optimizer);
        CHECK(l.optimizer.optimizer == DANN_OPTIMIZER_ADAM);
        CHECK(l.optimizer.steps == 2);
        const dann::ModelFileLayout layout = dann::read_model_file_layout(path);
        REQUIRE(layout.sections.size() == 1);
        CHECK(layout.sections[0].tag == "payload");
        CHECK(layout.sections[0].crc_ok);

        dann_model *m = nullptr;
        REQUIRE(dann_model_load(path.c_str(), &m) == DANN_OK);
        dann_train_params tp = dann_train_params_default();
        tp.optimizer = DANN_OPTIMIZER_ADAM;
        dann_trainer *t = nullptr;
        REQUIRE(dann_trainer_create(m, &tp, &t) == DANN_OK);
        CHECK(dann_trainer_load(t, path.c_str()) == DANN_OK);
        CHECK(dann_trainer_steps(t) == 2);
        // Re-saved as version 2, the checkpoint holds the same state.
        const auto v2 = dann::encode_model_file(*l.model, &l.optimizer);
        const dann::LoadedModel back = dann::parse_model_bytes(v2.data(), v2.size(), "re-saved");
        check_same_optimizer(back.optimizer, l.optimizer);
        for (size_t p = 0; p < l.model->params.size(); ++p)
            CHECK(std::memcmp(back.model->params[p].data.f32(), l.model->params[p].data.f32(),
                              l.model->params[p].numel * sizeof(float)) == 0);
        dann_trainer_destroy(t);
        dann_model_destroy(m);
    }
}
