// libFuzzer target: the IDX reader (lib/data/idx.hpp).
//
// Every input is read twice: from memory (read_idx_memory) and as a file
// (read_idx on a memfd), which also covers gzip-compressed input. Besides not
// crashing, the reader must
//   - fail only with dann::Error (anything else escapes and is reported);
//   - give the same status and tensor both ways for raw (non-gzip) input;
//   - return only well-formed tensors, whose encoding is exactly the raw input.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "memfd_file.hpp"
#include "core/error.hpp"
#include "data/idx.hpp"

namespace {

using dann::data::Idx;

struct Outcome {
    dann_status status = DANN_OK;
    Idx idx;
};

template <class F>
Outcome attempt(F &&read) {
    Outcome o;
    try {
        o.idx = read();
    } catch (const dann::Error &e) {
        o.status = e.status();
        if (std::strlen(e.what()) == 0) {
            std::fprintf(stderr, "fuzz_idx: error status %d without a message\n", o.status);
            std::abort();
        }
    }
    return o;
}

[[noreturn]] void broken(const char *what) {
    std::fprintf(stderr, "fuzz_idx: %s\n", what);
    std::abort();
}

bool same_tensor(const Idx &a, const Idx &b) {
    return a.type == b.type && a.dims == b.dims && a.u8 == b.u8 &&
           a.f32.size() == b.f32.size() &&
           (a.f32.empty() || std::memcmp(a.f32.data(), b.f32.data(), a.f32.size() * sizeof(float)) == 0);
}

void check_tensor(const Idx &idx) {
    if (idx.dims.empty() || idx.dims.size() > dann::data::kIdxMaxDims) broken("bad rank accepted");
    if (idx.type == dann::data::kIdxU8) {
        if (idx.u8.size() != idx.count() || !idx.f32.empty()) broken("uint8 tensor of the wrong size");
    } else if (idx.type == dann::data::kIdxF32) {
        if (idx.f32.size() != idx.count() || !idx.u8.empty()) broken("float32 tensor of the wrong size");
    } else {
        broken("unknown type accepted");
    }
}

std::string as_file(const uint8_t *data, size_t size) {
    std::string path = dann_fuzz::as_file(data, size, "fuzz_idx");
    if (path.empty()) broken("cannot write the input to a memfd");
    return path;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const Outcome mem = attempt([&] { return dann::data::read_idx_memory(data, size, "input"); });
    const std::string path = as_file(data, size);
    const Outcome file = attempt([&] { return dann::data::read_idx(path); });

    const bool gzip = size >= 2 && data[0] == 0x1F && data[1] == 0x8B;
    if (!gzip) {
        if (mem.status != file.status) broken("memory and file readers disagree on the status");
        if (mem.status == DANN_OK && !same_tensor(mem.idx, file.idx))
            broken("memory and file readers return different tensors");
    }
    if (mem.status == DANN_OK) {
        check_tensor(mem.idx);
        const std::vector<uint8_t> again = dann::data::encode_idx(mem.idx);
        if (again.size() != size || std::memcmp(again.data(), data, size) != 0)
            broken("an accepted input does not encode back to the same bytes");
    }
    if (file.status == DANN_OK) check_tensor(file.idx);
    return 0;
}
