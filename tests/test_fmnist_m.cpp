// Fashion-MNIST-M: the builder reproduces the reference recipe byte for byte
// (pinned hashes of the Python builder's output on small synthetic inputs; the
// real data set against data/SHA256SUMS in the heavy suite), the photographs'
// PPM reader, and clear errors for missing, corrupt or wrong-shaped inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "file_test_util.hpp"
#include "data/fmnist_m.hpp"
#include "data/idx.hpp"
#include "data/ppm.hpp"
#include "sha256.hpp"

namespace {

namespace fs = std::filesystem;
using dann::data::Idx;
using dann::data::RgbImage;

const std::string kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
const std::string kProjectData = DANN_FIXTURE_DIR "/../../data";
const std::string kProjectPhotos = kProjectData + "/photos";

using dann_test::TempDir;

void write_gzip(const std::string &path, const std::vector<uint8_t> &bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

std::vector<uint8_t> ppm_bytes(size_t width, size_t height, const std::vector<uint8_t> &rgb) {
    const std::string header = "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
    std::vector<uint8_t> b(header.begin(), header.end());
    b.insert(b.end(), rgb.begin(), rgb.end());
    return b;
}

std::vector<uint8_t> bytes_of(const std::string &s) { return {s.begin(), s.end()}; }

// Synthetic inputs, made the same way by the script that produced the pinned
// hashes below (SplitMix64(12345) drawn in this order: photos, then per split
// images and labels; every byte next() & 0xFF, every label next() % 10).
// Photo sizes (height, width) include the extremes: 28 x 28 leaves one crop
// position; 50 x 28 and 28-wide columns only one column.
const size_t kSynthSizes[6][2] = {{28, 28}, {29, 31}, {40, 33}, {30, 64}, {50, 28}, {33, 29}};

void write_synthetic_inputs(const std::string &fmnist_dir, const std::string &photos_dir) {
    fs::create_directories(fmnist_dir);
    fs::create_directories(photos_dir);
    dann::SplitMix64 rng(12345);
    for (size_t k = 0; k < 6; ++k) {
        const size_t h = kSynthSizes[k][0], w = kSynthSizes[k][1];
        std::vector<uint8_t> rgb(h * w * 3);
        for (uint8_t &v : rgb) v = static_cast<uint8_t>(rng.next() & 0xFF);
        write_gzip(photos_dir + "/" + dann::data::kFmnistMPhotos[k] + ".ppm.gz", ppm_bytes(w, h, rgb));
    }
    for (const auto &[split, n] : {std::make_pair("train", 7u), std::make_pair("t10k", 5u)}) {
        std::vector<uint8_t> images(n * 784), labels(n);
        for (uint8_t &v : images) v = static_cast<uint8_t>(rng.next() & 0xFF);
        for (uint8_t &v : labels) v = static_cast<uint8_t>(rng.next() % 10);
        write_gzip(fmnist_dir + "/" + split + "-images-idx3-ubyte.gz",
                   dann::data::encode_idx(dann::data::make_idx_u8({n, 28, 28}, images)));
        write_gzip(fmnist_dir + "/" + split + "-labels-idx1-ubyte.gz",
                   dann::data::encode_idx(dann::data::make_idx_u8({n}, labels)));
    }
}

const char *const kOutputs[] = {"train-images-idx4-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx4-ubyte",
                                "t10k-labels-idx1-ubyte"};

// data/SHA256SUMS as name -> digest.
std::map<std::string, std::string> read_sha256sums(const std::string &path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), "cannot read " << path);
    std::map<std::string, std::string> sums;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string digest, name;
        if (in >> digest >> name) sums[name] = digest;
    }
    return sums;
}

void require_fashion_mnist() {
    REQUIRE_MESSAGE(fs::exists(kFashionMnistDir + "/train-images-idx3-ubyte.gz"),
                    "Fashion-MNIST is missing from " << kFashionMnistDir
                                                     << ": install the Debian package dataset-fashion-mnist");
}

using dann_test::expect_error;

// A folder of valid synthetic inputs, to be damaged by a test.
struct Inputs {
    TempDir dir;
    std::string fmnist = dir.file("fashion-mnist"), photos = dir.file("photos"), out = dir.file("out");
    Inputs() { write_synthetic_inputs(fmnist, photos); }
    void build() const { dann::data::build_fmnist_m(fmnist, photos, out); }
    bool wrote_nothing() const { return !fs::exists(out) || fs::is_empty(out); }
};

} // namespace

TEST_CASE("Fashion-MNIST-M built from synthetic inputs has the bytes of the Python reference builder") {
    Inputs in;
    std::vector<std::string> reported;
    dann::data::build_fmnist_m(in.fmnist, in.photos, in.out, [&](const std::string &file, int done, int total) {
        CHECK(total == 4);
        CHECK(done == static_cast<int>(reported.size()) + 1);
        reported.push_back(file);
    });
    // make_fmnist_m.py run on the same inputs.
    const std::map<std::string, std::string> expected = {
        {"train-images-idx4-ubyte", "a0fc7ad8d42020aba08add890f64d678f205b1c7be64428a7dce9db0336c6d78"},
        {"train-labels-idx1-ubyte", "2e81a3b06cc172de31f4bde63787ec27119d7a82604cea9c857ca3c0902b524e"},
        {"t10k-images-idx4-ubyte", "00b27b4e91211b322417a5f1764a31ea7ef826b692c87cac7aa84983668f4fc7"},
        {"t10k-labels-idx1-ubyte", "9054626e5d89f1e17ff344d2df3c1cda2a77c6b9c6152fa2433fc9702a5e87ee"}};
    REQUIRE(reported.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
        CAPTURE(kOutputs[i]);
        CHECK(reported[i] == in.out + "/" + kOutputs[i]);
        CHECK(test_sha256::sha256_file(reported[i]) == expected.at(kOutputs[i]));
    }
    const Idx train = dann::data::read_idx(in.out + "/train-images-idx4-ubyte");
    CHECK(train.dims == std::vector<uint32_t>{7, 28, 28, 3});
}

TEST_CASE("Each Fashion-MNIST-M image is |patch - image| at the photo, row and column SplitMix64 draws") {
    // Photo 0 is 30 wide and 29 high with pixel (y, x) = (10 * y + x, 0, 255 - x): its value tells the crop.
    std::vector<RgbImage> photos(2);
    photos[0].height = 29;
    photos[0].width = 30;
    for (size_t y = 0; y < 29; ++y)
        for (size_t x = 0; x < 30; ++x)
            for (uint8_t v : {static_cast<uint8_t>(10 * y + x), uint8_t{0}, static_cast<uint8_t>(255 - x)})
                photos[0].rgb.push_back(v);
    photos[1] = photos[0];
    for (uint8_t &v : photos[1].rgb) v = 200;

    const uint32_t n = 6;
    std::vector<uint8_t> gray(n * 784);
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i % 784 == 0 ? 20 : 0);
    const uint64_t seed = 77;
    const Idx out = dann::data::blend_fmnist_m(dann::data::make_idx_u8({n, 28, 28}, gray), photos, seed);
    REQUIRE(out.dims == std::vector<uint32_t>{n, 28, 28, 3});

    dann::SplitMix64 rng(seed);
    for (size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        const uint64_t k = rng.next() % 2, y0 = rng.next() % 2, x0 = rng.next() % 3;
        const uint8_t *img = &out.u8[i * 784 * 3];
        for (size_t y = 0; y < 28; y += 9)
            for (size_t x = 0; x < 28; x += 9) {
                const uint8_t *px = &img[(y * 28 + x) * 3];
                const int g = y == 0 && x == 0 ? 20 : 0;
                if (k == 0) {
                    CHECK(int{px[0]} == std::abs(static_cast<int>(10 * (y0 + y) + x0 + x) % 256 - g));
                    CHECK(int{px[1]} == g);
                    CHECK(int{px[2]} == std::abs(255 - static_cast<int>(x0 + x) - g));
                } else {
                    for (int c = 0; c < 3; ++c) CHECK(int{px[c]} == 200 - g);
                }
            }
    }
}

TEST_CASE("The project's photographs are read as 8-bit RGB images at least 28 pixels on each side") {
    const std::vector<RgbImage> photos = dann::data::load_fmnist_m_photos(kProjectPhotos);
    REQUIRE(photos.size() == 6);
    for (const RgbImage &p : photos) {
        CHECK(p.width >= 28);
        CHECK(p.height >= 28);
        CHECK(std::max(p.width, p.height) <= 512);
        CHECK(p.rgb.size() == p.width * p.height * 3);
    }
    CHECK(photos[0].width == 512); // astronaut
    CHECK(photos[0].height == 512);
}

TEST_SUITE("heavy") {
TEST_CASE("Fashion-MNIST-M built from Fashion-MNIST and the project's photos matches data/SHA256SUMS") {
    require_fashion_mnist();
    const auto sums = read_sha256sums(kProjectData + "/SHA256SUMS");
    REQUIRE(sums.size() == 4);
    TempDir dir;
    dann::data::build_fmnist_m(kFashionMnistDir, kProjectPhotos, dir.path());
    for (const char *name : kOutputs) {
        CAPTURE(name);
        REQUIRE(sums.count(name) == 1);
        CHECK(test_sha256::sha256_file(dir.file(name)) == sums.at(name));
    }
}
} // TEST_SUITE("heavy")

TEST_CASE("A missing Fashion-MNIST folder fails with DANN_ERR_IO naming the file and the Debian package") {
    Inputs in;
    const std::string missing = in.dir.file("nowhere");
    expect_error([&] { dann::data::build_fmnist_m(missing, in.photos, in.out); }, DANN_ERR_IO,
                 {missing + "/train-images-idx3-ubyte.gz", std::strerror(ENOENT), "dataset-fashion-mnist"});
    CHECK(in.wrote_nothing());
}

TEST_CASE("A missing photograph fails with DANN_ERR_IO naming it") {
    Inputs in;
    fs::remove(in.photos + "/retina.ppm.gz");
    expect_error([&] { in.build(); }, DANN_ERR_IO, {in.photos + "/retina.ppm.gz", std::strerror(ENOENT)});
    CHECK(in.wrote_nothing());
}

TEST_CASE("A corrupt photograph fails with DANN_ERR_FORMAT naming it") {
    Inputs in;
    const std::string path = in.photos + "/coffee.ppm.gz";
    std::vector<uint8_t> rgb(33 * 40 * 3, 7);
    SUBCASE("a truncated gzip stream") {
        write_gzip(path, ppm_bytes(33, 40, rgb));
        fs::resize_file(path, fs::file_size(path) - 5);
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "gzip stream truncated"});
    }
    SUBCASE("a truncated raster") {
        rgb.pop_back();
        write_gzip(path, ppm_bytes(33, 40, rgb));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "expects 3960 bytes, file has 3959"});
    }
    SUBCASE("not a PPM file") {
        write_gzip(path, bytes_of("P3\n2 2\n255\n"));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "not a binary PPM"});
    }
    SUBCASE("16-bit samples") {
        write_gzip(path, bytes_of("P6\n33 40\n65535\n"));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "maxval is 65535"});
    }
    SUBCASE("too small for a 28 x 28 patch") {
        write_gzip(path, ppm_bytes(27, 40, std::vector<uint8_t>(27 * 40 * 3)));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "27 x 40", "smaller than the 28 x 28"});
    }
    CHECK(in.wrote_nothing());
}

TEST_CASE("A Fashion-MNIST file of the wrong type or shape fails with DANN_ERR_FORMAT naming it") {
    Inputs in;
    SUBCASE("images 28 x 27") {
        const std::string path = in.fmnist + "/t10k-images-idx3-ubyte.gz";
        dann::data::write_idx(path, dann::data::make_idx_u8({5, 28, 27}, std::vector<uint8_t>(5 * 28 * 27)));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "expected uint8 N x 28 x 28", "5 x 28 x 27"});
    }
    SUBCASE("float images") {
        const std::string path = in.fmnist + "/train-images-idx3-ubyte.gz";
        dann::data::write_idx(path, dann::data::make_idx_f32({7, 28, 28}, std::vector<float>(7 * 784)));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "float32 7 x 28 x 28"});
    }
    SUBCASE("labels of another count") {
        const std::string path = in.fmnist + "/train-labels-idx1-ubyte.gz";
        dann::data::write_idx(path, dann::data::make_idx_u8({6}, std::vector<uint8_t>(6)));
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "expected uint8 7, got uint8 6"});
    }
    SUBCASE("a malformed IDX file") {
        const std::string path = in.fmnist + "/t10k-labels-idx1-ubyte.gz";
        write_gzip(path, {0, 0, 8, 1, 0, 0, 0, 5, 1, 2});
        expect_error([&] { in.build(); }, DANN_ERR_FORMAT, {path, "expected 5 bytes of data", "file has 2"});
    }
    CHECK(in.wrote_nothing());
}

TEST_CASE("blend_fmnist_m rejects images that are not N x 28 x 28 and photos too small for a patch") {
    const std::vector<RgbImage> photos(1, RgbImage{28, 28, std::vector<uint8_t>(28 * 28 * 3)});
    expect_error([&] { dann::data::blend_fmnist_m(dann::data::make_idx_u8({1, 28}, std::vector<uint8_t>(28)), photos, 1); },
                 DANN_ERR_SHAPE, {"N x 28 x 28", "uint8 1 x 28"});
    const Idx gray = dann::data::make_idx_u8({1, 28, 28}, std::vector<uint8_t>(784));
    expect_error([&] { dann::data::blend_fmnist_m(gray, {}, 1); }, DANN_ERR_SHAPE, {"no photographs"});
    const std::vector<RgbImage> small(1, RgbImage{27, 40, std::vector<uint8_t>(27 * 40 * 3)});
    expect_error([&] { dann::data::blend_fmnist_m(gray, small, 1); }, DANN_ERR_SHAPE, {"40 x 27"});
}

TEST_CASE("The PPM reader accepts comments and any whitespace in the header, and nothing after the raster") {
    TempDir dir;
    const std::vector<uint8_t> rgb = {1, 2, 3, 4, 5, 6};
    std::vector<uint8_t> file = bytes_of("P6 # a comment\n2\t# width\r\n 1\n255\n");
    file.insert(file.end(), rgb.begin(), rgb.end());
    write_gzip(dir.file("a.ppm.gz"), file);
    const RgbImage img = dann::data::read_ppm(dir.file("a.ppm.gz"));
    CHECK(img.width == 2);
    CHECK(img.height == 1);
    CHECK(img.rgb == rgb);

    file.push_back(0);
    write_gzip(dir.file("b.ppm.gz"), file);
    expect_error([&] { dann::data::read_ppm(dir.file("b.ppm.gz")); }, DANN_ERR_FORMAT, {"1 trailing bytes"});
    write_gzip(dir.file("c.ppm.gz"), bytes_of("P6\n0 5\n255\n"));
    expect_error([&] { dann::data::read_ppm(dir.file("c.ppm.gz")); }, DANN_ERR_FORMAT, {"0 x 5", "empty"});
    write_gzip(dir.file("d.ppm.gz"), bytes_of("P6\n99999 5\n255\n"));
    expect_error([&] { dann::data::read_ppm(dir.file("d.ppm.gz")); }, DANN_ERR_FORMAT, {"width exceeds 16384"});
    write_gzip(dir.file("e.ppm.gz"), bytes_of("P6\n4 x\n255\n"));
    expect_error([&] { dann::data::read_ppm(dir.file("e.ppm.gz")); }, DANN_ERR_FORMAT, {"height is missing"});
}

TEST_CASE("find_fmnist_m_photos_dir looks in DANN_DATA_DIR first, then in each candidate and its photos folder") {
    TempDir dir;
    const char *saved = std::getenv("DANN_DATA_DIR");
    const std::string saved_value = saved != nullptr ? saved : "";
    ::unsetenv("DANN_DATA_DIR");

    CHECK(dann::data::find_fmnist_m_photos_dir({dir.path(), kProjectData}) == kProjectData + "/photos");
    CHECK(dann::data::find_fmnist_m_photos_dir({kProjectPhotos}) == kProjectPhotos);
    expect_error([&] { dann::data::find_fmnist_m_photos_dir({dir.path()}); }, DANN_ERR_IO,
                 {"astronaut.ppm.gz", dir.path(), dir.path() + "/photos", "DANN_DATA_DIR"});

    const std::string other = dir.file("photos");
    fs::create_directories(other);
    for (const char *name : dann::data::kFmnistMPhotos) fs::copy_file(kProjectPhotos + "/" + name + ".ppm.gz", other + "/" + name + ".ppm.gz");
    ::setenv("DANN_DATA_DIR", dir.path().c_str(), 1);
    CHECK(dann::data::find_fmnist_m_photos_dir({kProjectData}) == other);

    if (saved != nullptr)
        ::setenv("DANN_DATA_DIR", saved_value.c_str(), 1);
    else
        ::unsetenv("DANN_DATA_DIR");
}
