// IDX files: round trips of both element types in every rank, raw and gzip;
// the exact bytes on disk; and a clear DANN_ERR_FORMAT / DANN_ERR_IO, naming
// the file and the fault, for every way a file can be malformed or unreadable.
#include <doctest/doctest.h>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.hpp"
#include "file_test_util.hpp"
#include "data/idx.hpp"

namespace {

namespace fs = std::filesystem;
using dann::data::Idx;

using dann_test::TempDir;

std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string &path, const std::vector<uint8_t> &bytes) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(f.good());
}

void write_gzip(const std::string &path, const std::vector<uint8_t> &bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

std::vector<uint8_t> gunzip(const std::string &path) {
    gzFile f = gzopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    std::vector<uint8_t> out;
    unsigned char buf[4096];
    int got;
    while ((got = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + got);
    gzclose(f);
    return out;
}

// A raw IDX file: the magic, the dims big-endian, then data_bytes bytes.
std::vector<uint8_t> idx_file(uint8_t type, const std::vector<uint32_t> &dims, size_t data_bytes) {
    std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
    for (uint32_t d : dims)
        for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(d >> shift));
    for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i * 7 + 1));
    return b;
}

std::vector<uint8_t> pattern_u8(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 37 + 11);
    return v;
}

using dann_test::expect_error;

void expect_malformed(const std::string &path, std::initializer_list<std::string> fragments) {
    expect_error([&] { dann::data::read_idx(path); }, DANN_ERR_FORMAT, fragments);
    // Every message names the file.
    expect_error([&] { dann::data::read_idx(path); }, DANN_ERR_FORMAT, {path});
}

bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

const std::vector<std::vector<uint32_t>> kShapes = {{5}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}};

} // namespace

TEST_CASE("IDX round trip preserves uint8 tensors of one to four dimensions, raw and gzip-compressed") {
    TempDir dir;
    for (const auto &dims : kShapes)
        for (const char *suffix : {"", ".gz"}) {
            size_t n = 1;
            for (uint32_t d : dims) n *= d;
            const Idx src = dann::data::make_idx_u8(dims, pattern_u8(n));
            const std::string path = dir.file("t" + std::to_string(dims.size()) + "-ubyte" + suffix);
            dann::data::write_idx(path, src);
            const Idx back = dann::data::read_idx(path);
            CAPTURE(path);
            CHECK(back.type == dann::data::kIdxU8);
            CHECK(back.dims == dims);
            CHECK(back.count() == n);
            CHECK(back.u8 == src.u8);
            CHECK(back.f32.empty());
        }
}

TEST_CASE("IDX round trip preserves float32 tensors bit for bit, NaN and infinities included") {
    TempDir dir;
    const float specials[] = {0.0f, -0.0f, 1.0f, -2.5f, 3.4028235e38f, 1.0e-45f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), 0.1f};
    for (const auto &dims : kShapes)
        for (const char *suffix : {"", ".gz"}) {
            size_t n = 1;
            for (uint32_t d : dims) n *= d;
            std::vector<float> data(n);
            for (size_t i = 0; i < n; ++i) data[i] = specials[i % 10] * (i < 10 ? 1.0f : static_cast<float>(i));
            const Idx src = dann::data::make_idx_f32(dims, data);
            const std::string path = dir.file("f" + std::to_string(dims.size()) + suffix);
            dann::data::write_idx(path, src);
            const Idx back = dann::data::read_idx(path);
            CAPTURE(path);
            CHECK(back.type == dann::data::kIdxF32);
            CHECK(back.dims == dims);
            CHECK(same_bits(back.f32, src.f32));
            CHECK(back.u8.empty());
        }
}

TEST_CASE("A raw IDX file is the magic, the big-endian dimensions and the big-endian data") {
    TempDir dir;
    dann::data::write_idx(dir.file("f"), dann::data::make_idx_f32({2}, {1.0f, -2.5f}));
    CHECK(read_bytes(dir.file("f")) ==
          std::vector<uint8_t>{0, 0, 0x0D, 1, 0, 0, 0, 2, 0x3F, 0x80, 0, 0, 0xC0, 0x20, 0, 0});

    dann::data::write_idx(dir.file("u"), dann::data::make_idx_u8({1, 258}, pattern_u8(258)));
    std::vector<uint8_t> expected = {0, 0, 0x08, 2, 0, 0, 0, 1, 0, 0, 1, 2};
    const auto data = pattern_u8(258);
    expected.insert(expected.end(), data.begin(), data.end());
    CHECK(read_bytes(dir.file("u")) == expected);
    CHECK(dann::data::encode_idx(dann::data::make_idx_u8({1, 258}, data)) == expected);
}

TEST_CASE("A path ending in .gz gets a gzip file holding the raw IDX bytes") {
    TempDir dir;
    const Idx t = dann::data::make_idx_u8({4, 5}, pattern_u8(20));
    dann::data::write_idx(dir.file("t.gz"), t);
    const auto bytes = read_bytes(dir.file("t.gz"));
    REQUIRE(bytes.size() > 2);
    CHECK(bytes[0] == 0x1F);
    CHECK(bytes[1] == 0x8B);
    CHECK(gunzip(dir.file("t.gz")) == dann::data::encode_idx(t));
}

TEST_CASE("read_idx tells gzip from raw by the content, not by the name") {
    TempDir dir;
    const Idx t = dann::data::make_idx_u8({6}, pattern_u8(6));
    write_bytes(dir.file("raw.gz"), dann::data::encode_idx(t));
    write_gzip(dir.file("packed.idx"), dann::data::encode_idx(t));
    CHECK(dann::data::read_idx(dir.file("raw.gz")).u8 == t.u8);
    CHECK(dann::data::read_idx(dir.file("packed.idx")).u8 == t.u8);
}

TEST_CASE("Reading a missing file fails with DANN_ERR_IO naming the file and the system's reason") {
    TempDir dir;
    const std::string path = dir.file("absent-idx1-ubyte");
    expect_error([&] { dann::data::read_idx(path); }, DANN_ERR_IO, {path, std::strerror(ENOENT)});
    expect_error([&] { dann::data::read_idx(dir.path()); }, DANN_ERR_IO, {dir.path(), std::strerror(EISDIR)});
}

TEST_CASE("A file whose first two bytes are not zero is not an IDX file") {
    TempDir dir;
    auto bytes = idx_file(0x08, {3}, 3);
    bytes[1] = 0x08;
    write_bytes(dir.file("a"), bytes);
    expect_malformed(dir.file("a"), {"not an IDX file", "0x08"});
    write_bytes(dir.file("b"), {'P', '6', '\n', '1'});
    expect_malformed(dir.file("b"), {"not an IDX file", "0x50 0x36"});
    write_bytes(dir.file("c"), {0, 0, 8});
    expect_malformed(dir.file("c"), {"shorter than the 4-byte magic"});
    write_bytes(dir.file("empty"), {});
    expect_malformed(dir.file("empty"), {"0 bytes"});
}

TEST_CASE("An IDX type code other than uint8 and float32 is rejected with its value") {
    TempDir dir;
    write_bytes(dir.file("int32"), idx_file(0x0C, {2}, 8));
    expect_malformed(dir.file("int32"), {"unsupported IDX type code 0x0C", "int32"});
    write_bytes(dir.file("junk"), idx_file(0x42, {2}, 2));
    expect_malformed(dir.file("junk"), {"unsupported IDX type code 0x42"});
}

TEST_CASE("An IDX dimension count of zero or above four is rejected") {
    TempDir dir;
    write_bytes(dir.file("zero"), idx_file(0x08, {}, 4));
    expect_malformed(dir.file("zero"), {"dimension count is 0"});
    write_bytes(dir.file("five"), idx_file(0x08, {1, 1, 1, 1, 1}, 1));
    expect_malformed(dir.file("five"), {"dimension count is 5", "1 to 4"});
}

TEST_CASE("An IDX dimension of zero is rejected") {
    TempDir dir;
    write_bytes(dir.file("z"), idx_file(0x08, {3, 0, 2}, 0));
    expect_malformed(dir.file("z"), {"dimension 1 of 3 x 0 x 2 is zero"});
}

TEST_CASE("A header promising more than 2^31 elements is rejected before any data is read") {
    TempDir dir;
    write_bytes(dir.file("big"), idx_file(0x08, {65536, 32768, 2}, 16));
    expect_malformed(dir.file("big"), {"65536 x 32768 x 2", "limit of 2147483648 elements"});
    // The product of four maximal dims overflows 64 bits.
    write_bytes(dir.file("huge"), idx_file(0x0D, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, 16));
    expect_malformed(dir.file("huge"), {"limit of 2147483648 elements"});
    // Exactly at the limit is legal, so only the missing data is wrong.
    write_bytes(dir.file("limit"), idx_file(0x08, {65536, 32768}, 16));
    expect_malformed(dir.file("limit"), {"expected 2147483648 bytes of data", "file has 16"});
}

TEST_CASE("Truncated IDX data is rejected with the expected and actual byte counts") {
    TempDir dir;
    write_bytes(dir.file("u8"), idx_file(0x08, {3, 4}, 11));
    expect_malformed(dir.file("u8"), {"truncated data", "expected 12 bytes of data", "file has 11"});
    write_bytes(dir.file("f32"), idx_file(0x0D, {2}, 7));
    expect_malformed(dir.file("f32"), {"expected 8 bytes of data", "file has 7"});
    write_bytes(dir.file("nodata"), idx_file(0x0D, {2}, 0));
    expect_malformed(dir.file("nodata"), {"expected 8 bytes of data", "file has 0"});
    auto header = idx_file(0x08, {3, 4}, 0);
    header.resize(10);
    write_bytes(dir.file("header"), header);
    expect_malformed(dir.file("header"), {"truncated header", "expected 8 bytes of dimensions", "file has 6"});
}

TEST_CASE("Bytes after the IDX data are rejected") {
    TempDir dir;
    write_bytes(dir.file("u8"), idx_file(0x08, {3, 4}, 15));
    expect_malformed(dir.file("u8"), {"3 trailing bytes after the 12 bytes of data"});
    write_gzip(dir.file("f32.gz"), idx_file(0x0D, {2}, 9));
    expect_malformed(dir.file("f32.gz"), {"1 trailing bytes after the 8 bytes of data"});
}

TEST_CASE("A gzip-compressed IDX file cut short anywhere is rejected as malformed") {
    TempDir dir;
    dann::data::write_idx(dir.file("full.gz"), dann::data::make_idx_u8({10, 10}, pattern_u8(100)));
    const auto full = read_bytes(dir.file("full.gz"));
    REQUIRE(full.size() > 20);
    for (size_t len = 1; len < full.size(); ++len) {
        CAPTURE(len);
        // A new name each time: truncating a file in place can make the file system flush it.
        const std::string path = dir.file("cut" + std::to_string(len) + ".gz");
        write_bytes(path, std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len)));
        expect_error([&] { dann::data::read_idx(path); }, DANN_ERR_FORMAT, {path});
    }
    write_bytes(dir.file("cut.gz"), std::vector<uint8_t>(full.begin(), full.end() - 3));
    expect_malformed(dir.file("cut.gz"), {"gzip stream truncated"});
}

TEST_CASE("A gzip-compressed IDX file with any byte of its stream altered is rejected as malformed") {
    TempDir dir;
    dann::data::write_idx(dir.file("full.gz"), dann::data::make_idx_f32({3, 7}, std::vector<float>(21, 0.25f)));
    const auto full = read_bytes(dir.file("full.gz"));
    // Bytes 4..9 of a gzip header (time stamp, flags, OS) carry no data; from 10 on, the stream and its CRC do.
    for (size_t i = 10; i < full.size(); ++i) {
        CAPTURE(i);
        auto bad = full;
        bad[i] ^= 0x10;
        const std::string path = dir.file("bad" + std::to_string(i) + ".gz");
        write_bytes(path, bad);
        expect_error([&] { dann::data::read_idx(path); }, DANN_ERR_FORMAT, {path});
    }
    auto bad = full;
    bad[full.size() - 6] ^= 0x01; // inside the CRC-32
    write_bytes(dir.file("crc.gz"), bad);
    expect_malformed(dir.file("crc.gz"), {"corrupt gzip stream"});
}

TEST_CASE("Every single-bit flip in an IDX header is rejected as malformed") {
    TempDir dir;
    for (uint8_t type : {uint8_t{0x08}, uint8_t{0x0D}}) {
        const auto good = idx_file(type, {2, 3}, type == 0x08 ? 6 : 24);
        write_bytes(dir.file("good"), good);
        CHECK(dann::data::read_idx(dir.file("good")).count() == 6);
        for (size_t bit = 0; bit < 8 * 12; ++bit) {
            CAPTURE(bit);
            auto bad = good;
            bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
            const std::string path = dir.file("flipped-" + std::to_string(type) + "-" + std::to_string(bit));
            write_bytes(path, bad);
            expect_error([&] { dann::data::read_idx(path); }, DANN_ERR_FORMAT, {path});
        }
    }
}

TEST_CASE("write_idx replaces an existing file and leaves no temporary file behind") {
    TempDir dir;
    const std::string path = dir.file("t-idx1-ubyte");
    dann::data::write_idx(path, dann::data::make_idx_u8({3}, {1, 2, 3}));
    dann::data::write_idx(path, dann::data::make_idx_u8({2}, {9, 8}));
    CHECK(dann::data::read_idx(path).u8 == std::vector<uint8_t>{9, 8});
    size_t files = 0;
    for (const auto &entry : fs::directory_iterator(dir.path())) {
        CAPTURE(entry.path().string());
        CHECK(entry.path().filename() == "t-idx1-ubyte");
        ++files;
    }
    CHECK(files == 1);
}

TEST_CASE("write_idx into a missing folder fails with DANN_ERR_IO naming the file") {
    TempDir dir;
    const std::string path = dir.file("no/such/dir/t-idx1-ubyte");
    expect_error([&] { dann::data::write_idx(path, dann::data::make_idx_u8({1}, {1})); }, DANN_ERR_IO,
                 {path, std::strerror(ENOENT)});
}

TEST_CASE("A write that fails midway reports DANN_ERR_IO with the system's reason and keeps the old file") {
    TempDir dir;
    for (const char *name : {"t-ubyte", "t-ubyte.gz"}) {
        CAPTURE(name);
        const std::string path = dir.file(name);
        dann::data::write_idx(path, dann::data::make_idx_u8({3}, {1, 2, 3}));
        const auto before = read_bytes(path);

        // A file size limit makes write() fail with EFBIG, as a full disk fails with ENOSPC.
        rlimit old_limit{};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
        rlimit small = old_limit;
        small.rlim_cur = 4096;
        const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
        std::vector<uint8_t> big(1 << 20);
        for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
        bool threw = false;
        std::string msg;
        dann_status status = DANN_OK;
        try {
            dann::data::write_idx(path, dann::data::make_idx_u8({1024, 1024}, big));
        } catch (const dann::Error &e) {
            threw = true;
            msg = e.what();
            status = e.status();
        }
        ::setrlimit(RLIMIT_FSIZE, &old_limit);
        std::signal(SIGXFSZ, old_handler);

        CHECK(threw);
        CHECK(status == DANN_ERR_IO);
        CHECK_MESSAGE(msg.find(path) != std::string::npos, msg);
        CHECK_MESSAGE(msg.find(std::strerror(EFBIG)) != std::string::npos, msg);
        CHECK(read_bytes(path) == before);
    }
    size_t files = 0;
    for (const auto &entry : fs::directory_iterator(dir.path())) {
        (void)entry;
        ++files;
    }
    CHECK(files == 2);
}

TEST_CASE("write_idx and make_idx reject tensors whose data or dims are wrong") {
    TempDir dir;
    const std::string path = dir.file("t");
    Idx bad_size = dann::data::make_idx_u8({2, 2}, {1, 2, 3, 4});
    bad_size.u8.pop_back();
    expect_error([&] { dann::data::write_idx(path, bad_size); }, DANN_ERR_SHAPE,
                 {"2 x 2", "needs 4 elements", "holds 3"});
    Idx bad_type = dann::data::make_idx_u8({1}, {1});
    bad_type.type = 0x0C;
    expect_error([&] { dann::data::write_idx(path, bad_type); }, DANN_ERR_INVALID_ARGUMENT, {"0x0C"});
    expect_error([&] { dann::data::make_idx_u8({1, 1, 1, 1, 1}, {1}); }, DANN_ERR_SHAPE, {"dimension count is 5"});
    expect_error([&] { dann::data::make_idx_f32({}, {}); }, DANN_ERR_SHAPE, {"dimension count is 0"});
    expect_error([&] { dann::data::make_idx_f32({2, 0}, {}); }, DANN_ERR_SHAPE, {"is zero"});
    expect_error([&] { dann::data::make_idx_f32({3}, {1.0f}); }, DANN_ERR_SHAPE, {"needs 3 elements"});
    CHECK_FALSE(fs::exists(path));
}

TEST_CASE("read_idx_memory reads raw IDX bytes as read_idx reads the file, naming the input in errors") {
    TempDir dir;
    const Idx u8 = dann::data::make_idx_u8({2, 3}, {1, 2, 3, 4, 5, 6});
    const Idx f32 = dann::data::make_idx_f32({1, 2}, {0.5f, -2.0f});
    for (const Idx *idx : {&u8, &f32}) {
        const std::vector<uint8_t> bytes = dann::data::encode_idx(*idx);
        dann::data::write_idx(dir.file("t"), *idx);
        const Idx from_file = dann::data::read_idx(dir.file("t"));
        const Idx from_memory = dann::data::read_idx_memory(bytes.data(), bytes.size(), "mem");
        CHECK(from_memory.type == from_file.type);
        CHECK(from_memory.dims == from_file.dims);
        CHECK(from_memory.u8 == from_file.u8);
        CHECK(from_memory.f32 == from_file.f32);
    }
    const std::vector<uint8_t> truncated = idx_file(0x08, {3, 4}, 11);
    expect_error([&] { dann::data::read_idx_memory(truncated.data(), truncated.size(), "in memory"); },
                 DANN_ERR_FORMAT, {"in memory: ", "expected 12 bytes of data", "file has 11"});
    expect_error([&] { dann::data::read_idx_memory(nullptr, 0, "empty"); }, DANN_ERR_FORMAT,
                 {"empty: ", "0 bytes"});
    // At the element limit only the missing data is wrong.
    const std::vector<uint8_t> limit = idx_file(0x08, {65536, 32768}, 16);
    expect_error([&] { dann::data::read_idx_memory(limit.data(), limit.size(), "limit"); }, DANN_ERR_FORMAT,
                 {"expected 2147483648 bytes of data", "file has 16"});
}
