#include "data/fmnist_m.hpp"

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include <unistd.h>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace dann::data {

namespace {

constexpr size_t kPixels = size_t{kFmnistSide} * kFmnistSide;

std::string join(const std::string &dir, const std::string &name) {
    if (dir.empty()) return name;
    return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string photo_file(const char *name) { return std::string(name) + ".ppm.gz"; }

std::string describe(const Idx &idx) {
    std::string s = idx.type == kIdxU8 ? "uint8" : idx.type == kIdxF32 ? "float32" : "unknown type";
    for (size_t i = 0; i < idx.dims.size(); ++i) s += (i ? " x " : " ") + std::to_string(idx.dims[i]);
    return s;
}

// A Fashion-MNIST input, with a hint where to get it when it cannot be opened.
Idx read_fmnist(const std::string &path) {
    try {
        return read_idx(path);
    } catch (const Error &e) {
        if (e.status() != DANN_ERR_IO) throw;
        fail(DANN_ERR_IO, std::string(e.what()) +
                              " (Fashion-MNIST comes from the Debian package dataset-fashion-mnist)");
    }
}

bool holds_photos(const std::string &dir) {
    for (const char *name : kFmnistMPhotos)
        if (::access(join(dir, photo_file(name)).c_str(), R_OK) != 0) return false;
    return true;
}

struct Split {
    const char *name;
    uint64_t seed;
    Idx images, labels;
};

} // namespace

std::vector<RgbImage> load_fmnist_m_photos(const std::string &photos_dir) {
    std::vector<RgbImage> photos;
    for (const char *name : kFmnistMPhotos) {
        const std::string path = join(photos_dir, photo_file(name));
        RgbImage img = read_ppm(path);
        if (img.height < kFmnistSide || img.width < kFmnistSide)
            fail(DANN_ERR_FORMAT, path + ": photo is " + std::to_string(img.width) + " x " +
                                      std::to_string(img.height) + " pixels, smaller than the 28 x 28 patches");
        photos.push_back(std::move(img));
    }
    return photos;
}

Idx blend_fmnist_m(const Idx &gray, const std::vector<RgbImage> &photos, uint64_t seed) {
    if (gray.type != kIdxU8 || gray.dims.size() != 3 || gray.dims[1] != kFmnistSide ||
        gray.dims[2] != kFmnistSide || gray.u8.size() != gray.count())
        fail(DANN_ERR_SHAPE, "Fashion-MNIST-M: images must be uint8 N x 28 x 28, got " + describe(gray));
    if (photos.empty()) fail(DANN_ERR_SHAPE, "Fashion-MNIST-M: no photographs");
    for (size_t k = 0; k < photos.size(); ++k) {
        const RgbImage &p = photos[k];
        if (p.height < kFmnistSide || p.width < kFmnistSide || p.rgb.size() != p.height * p.width * 3)
            fail(DANN_ERR_SHAPE, "Fashion-MNIST-M: photograph " + std::to_string(k) + " is " +
                                     std::to_string(p.width) + " x " + std::to_string(p.height) + " with " +
                                     std::to_string(p.rgb.size()) + " bytes; need at least 28 x 28 RGB");
    }

    const size_t n = gray.dims[0];
    Idx out;
    out.type = kIdxU8;
    out.dims = {gray.dims[0], kFmnistSide, kFmnistSide, 3};
    out.u8.resize(n * kPixels * 3);
    SplitMix64 rng(seed);
    for (size_t i = 0; i < n; ++i) {
        // Draw order is the recipe's: photo, row, column.
        const RgbImage &photo = photos[rng.next() % photos.size()];
        const uint64_t y0 = rng.next() % (photo.height - (kFmnistSide - 1));
        const uint64_t x0 = rng.next() % (photo.width - (kFmnistSide - 1));
        for (size_t y = 0; y < kFmnistSide; ++y) {
            const uint8_t *patch = &photo.rgb[((y0 + y) * photo.width + x0) * 3];
            const uint8_t *src = &gray.u8[(i * kFmnistSide + y) * kFmnistSide];
            uint8_t *dst = &out.u8[(i * kFmnistSide + y) * kFmnistSide * 3];
            for (size_t x = 0; x < kFmnistSide; ++x)
                for (size_t c = 0; c < 3; ++c) {
                    const int d = int{patch[3 * x + c]} - int{src[x]};
                    dst[3 * x + c] = static_cast<uint8_t>(d < 0 ? -d : d);
                }
        }
    }
    return out;
}

void build_fmnist_m(const std::string &fmnist_dir, const std::string &photos_dir, const std::string &out_dir,
                    const FmnistMProgress &progress) {
    const std::vector<RgbImage> photos = load_fmnist_m_photos(photos_dir);

    Split splits[] = {{"train", kFmnistMTrainSeed, {}, {}}, {"t10k", kFmnistMTestSeed, {}, {}}};
    for (Split &s : splits) {
        const std::string images_path = join(fmnist_dir, std::string(s.name) + "-images-idx3-ubyte.gz");
        const std::string labels_path = join(fmnist_dir, std::string(s.name) + "-labels-idx1-ubyte.gz");
        s.images = read_fmnist(images_path);
        if (s.images.type != kIdxU8 || s.images.dims.size() != 3 || s.images.dims[1] != kFmnistSide ||
            s.images.dims[2] != kFmnistSide)
            fail(DANN_ERR_FORMAT, images_path + ": not Fashion-MNIST images: expected uint8 N x 28 x 28, got " +
                                      describe(s.images));
        s.labels = read_fmnist(labels_path);
        if (s.labels.type != kIdxU8 || s.labels.dims.size() != 1 || s.labels.dims[0] != s.images.dims[0])
            fail(DANN_ERR_FORMAT, labels_path + ": not the labels of the " + std::to_string(s.images.dims[0]) +
                                      " images: expected uint8 " + std::to_string(s.images.dims[0]) + ", got " +
                                      describe(s.labels));
    }

    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) fail(DANN_ERR_IO, "cannot create the folder " + out_dir + ": " + ec.message());

    const int total = 4;
    int done = 0;
    auto written = [&](const std::string &path) {
        ++done;
        if (progress) progress(path, done, total);
    };
    for (Split &s : splits) {
        const std::string images_path = join(out_dir, std::string(s.name) + "-images-idx4-ubyte");
        const std::string labels_path = join(out_dir, std::string(s.name) + "-labels-idx1-ubyte");
        {
            const Idx rgb = blend_fmnist_m(s.images, photos, s.seed);
            s.images = Idx{};
            write_idx(images_path, rgb);
        }
        written(images_path);
        write_idx(labels_path, s.labels);
        written(labels_path);
    }
}

std::string find_fmnist_m_photos_dir(const std::vector<std::string> &candidates) {
    std::vector<std::string> dirs;
    const char *env = std::getenv("DANN_DATA_DIR");
    if (env != nullptr && *env != '\0') dirs.emplace_back(env);
    dirs.insert(dirs.end(), candidates.begin(), candidates.end());

    std::string searched;
    for (const std::string &dir : dirs) {
        if (dir.empty()) continue;
        for (const std::string &cand : {dir, join(dir, "photos")}) {
            if (holds_photos(cand)) return cand;
            searched += (searched.empty() ? "" : ", ") + cand;
        }
    }
    std::string names;
    for (const char *name : kFmnistMPhotos) names += (names.empty() ? "" : ", ") + photo_file(name);
    fail(DANN_ERR_IO, "the Fashion-MNIST-M photographs (" + names + ") are in none of: " +
                          (searched.empty() ? std::string("(no folder given)") : searched) +
                          "; set DANN_DATA_DIR to the folder that holds them or dann's data/ folder");
}

} // namespace dann::data
