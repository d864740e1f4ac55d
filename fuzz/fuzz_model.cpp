// libFuzzer target: the model loader.
//
// Every input goes through the in-memory parser (dann::parse_model_bytes) and
// through the public dann_model_load on a memfd file, exactly as users call
// it; both must agree on the status. A model that loads must be usable: its
// info and every parameter are read back, a small one runs a prediction, and
// a checkpoint restores into a trainer with dann_trainer_load.
//
// Model files carry CRC-32s (version 1: one over the payload; version 2: one
// over the header and one per section), so most random changes would stop at
// a checksum. The custom mutator therefore repairs sizes and checksums after
// most mutations (not all: the checks themselves are fuzzed too). Inputs on
// disk are what the loader saw, so a crash reproduces by running the target
// on the file.
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "memfd_file.hpp"
#include "core/error.hpp"
#include "dann.h"
#include "io/model_file.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

namespace {

[[noreturn]] void broken(const char *what) {
    std::fprintf(stderr, "fuzz_model: %s (last error: %s)\n", what, dann_last_error());
    std::abort();
}

std::string as_file(const uint8_t *data, size_t size) {
    std::string path = dann_fuzz::as_file(data, size, "fuzz_model");
    if (path.empty()) broken("cannot write the input to a memfd");
    return path;
}

void expect_failure_message(dann_status st) {
    if (st != DANN_OK && dann_last_error()[0] == '\0') broken("an error without a message");
}

// Reads everything a loaded model exposes; runs a small one once.
void use(dann_model *m) {
    dann_model_info info;
    if (dann_model_get_info(m, &info) != DANN_OK) broken("get_info failed on a loaded model");
    const size_t count = dann_model_param_count(m);
    if (count != info.n_params) broken("parameter count differs from info");
    std::vector<float> values;
    for (size_t i = 0; i < count; ++i) {
        dann_param_info p;
        if (dann_model_param_info(m, i, &p) != DANN_OK) broken("param_info failed");
        size_t found = 0;
        if (dann_model_param_find(m, p.name, &found) != DANN_OK || found != i) broken("param_find failed");
        values.resize(p.numel);
        if (dann_model_param_get(m, i, values.data(), values.size()) != DANN_OK) broken("param_get failed");
    }
    dann_replay_info replay;
    if (dann_model_replay_info(m, &replay) != DANN_OK) broken("replay_info failed on a loaded model");
    const size_t pixels = static_cast<size_t>(info.in_channels) * info.in_height * info.in_width;
    if (pixels > 4096 || info.n_weights > 100000) return;
    dann_context *ctx = nullptr;
    dann_status st = dann_context_create(m, &ctx);
    expect_failure_message(st);
    if (st != DANN_OK) return;
    const std::vector<float> x(pixels, 0.5f);
    const dann_batch b = dann_batch_f32_nchw(x.data(), 1, info.in_channels, info.in_height, info.in_width);
    std::vector<float> probs(static_cast<size_t>(info.num_classes));
    float domain = 0;
    st = dann_predict(ctx, &b, probs.data(), probs.size(), &domain, 1);
    expect_failure_message(st);
    dann_context_destroy(ctx);
}

// ---------------------------------------------------------------- checksums

uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t crc(uint32_t start, const uint8_t *p, size_t n) {
    return static_cast<uint32_t>(crc32_z(start, p, n));
}

// Version 1: 28-byte header, payload size at 16, payload CRC at 24.
void repair_v1(uint8_t *data, size_t size) {
    constexpr size_t kHeader = 28;
    if (size < kHeader) return;
    put_le(data + 16, size - kHeader, 8);
    put_le(data + 24, crc(0, data + kHeader, size - kHeader), 4);
}

// Version 2: 32-byte header (file size at 16, header CRC at 28 over bytes
// 0-27), then sections of a 20-byte header (length at 8, CRC at 16 over the
// first 16 header bytes and the body) and a body. Sections whose length runs
// past the end are left as they are.
void repair_v2(uint8_t *data, size_t size) {
    constexpr size_t kHeader = 32, kSection = 20;
    if (size < kHeader) return;
    put_le(data + 16, size, 8);
    size_t pos = kHeader;
    while (pos + kSection <= size) {
        const uint64_t body = get_le(data + pos + 8, 8);
        if (body > size - pos - kSection) break;
        const uint32_t c = crc(crc(0, data + pos, 16), data + pos + kSection, static_cast<size_t>(body));
        put_le(data + pos + 16, c, 4);
        pos += kSection + static_cast<size_t>(body);
    }
    put_le(data + 28, crc(0, data, 28), 4);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dann_status parsed = DANN_OK;
    try {
        dann::LoadedModel lm = dann::parse_model_bytes(data, size, "input");
        if (!lm.model) broken("parse_model_bytes returned no model");
    } catch (const dann::Error &e) {
        parsed = e.status();
        if (e.what()[0] == '\0') broken("parse_model_bytes: an error without a message");
    }

    const std::string path = as_file(data, size);
    static char sentinel;
    dann_model *m = reinterpret_cast<dann_model *>(&sentinel); // must be reset to NULL on failure
    const dann_status st = dann_model_load(path.c_str(), &m);
    expect_failure_message(st);
    if (st != parsed) broken("dann_model_load and parse_model_bytes disagree on the status");
    if (st != DANN_OK) {
        if (m != nullptr) broken("out-pointer not reset on failure");
        return 0;
    }
    if (m == nullptr) broken("DANN_OK without a model");
    use(m);
    dann_train_params tp = dann_train_params_default();
    dann_trainer *t = nullptr;
    if (dann_trainer_create(m, &tp, &t) != DANN_OK) broken("trainer_create failed on a loaded model");
    expect_failure_message(dann_trainer_load(t, path.c_str()));
    dann_trainer_destroy(t);
    dann_model_destroy(m);
    return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    // One mutation in eight is left as it is, so that the size and checksum
    // checks see damage too.
    if (size < 12 || std::memcmp(data, "DANNMODL", 8) != 0 || seed % 8 == 0) return size;
    const uint64_t version = get_le(data + 8, 4);
    if (version == 1)
        repair_v1(data, size);
    else
        repair_v2(data, size);
    return size;
}
