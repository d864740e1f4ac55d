// Inputs the fuzzers (fuzz/) once crashed on or choked with, kept in
// fuzz/regressions/{model,idx}: each must now fail cleanly, with a status and
// a message, through the public API (models) or the IDX reader.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "dann.h"
#include "data/idx.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> regression_files(const char *kind) {
    std::vector<std::string> files;
    const fs::path dir = fs::path(DANN_FUZZ_REGRESSION_DIR) / kind;
    std::error_code ec;
    for (const auto &entry : fs::directory_iterator(dir, ec))
        if (entry.is_regular_file()) files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

} // namespace

TEST_CASE("model files that once made the loader allocate gigabytes are refused with DANN_ERR_FORMAT") {
    const std::vector<std::string> files = regression_files("model");
    CHECK(!files.empty());
    for (const std::string &path : files) {
        INFO(path);
        dann_model *m = nullptr;
        const dann_status st = dann_model_load(path.c_str(), &m);
        INFO(dann_last_error());
        CHECK(st == DANN_ERR_FORMAT);
        CHECK(m == nullptr);
        CHECK(std::string(dann_last_error()).find(path) != std::string::npos);
        dann_model_destroy(m);
    }
}

TEST_CASE("IDX inputs that once broke the reader fail with DANN_ERR_FORMAT") {
    for (const std::string &path : regression_files("idx")) {
        INFO(path);
        try {
            dann::data::read_idx(path);
            FAIL("read_idx accepted " << path);
        } catch (const dann::Error &e) {
            CHECK(e.status() == DANN_ERR_FORMAT);
            CHECK(std::string(e.what()).find(path) != std::string::npos);
        }
    }
}
