#include "data/ppm.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "data/gzfile.hpp"

namespace dann::data {

namespace {

// A header longer than this is not one (comments included).
constexpr size_t kMaxHeaderBytes = 4096;
constexpr size_t kChunkBytes = size_t{1} << 20;

bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// The header, read one byte at a time so that the raster starts exactly after it.
class HeaderReader {
public:
    explicit HeaderReader(InputFile &in) : in_(in) {}

    int get() {
        if (++consumed_ > kMaxHeaderBytes)
            fail(DANN_ERR_FORMAT, in_.path() + ": PPM header longer than " + std::to_string(kMaxHeaderBytes) +
                                      " bytes");
        unsigned char c;
        return in_.read(&c, 1) == 1 ? c : -1;
    }

    // Skips whitespace and comments; returns the first byte of the next token.
    int next_token_start() {
        int c = get();
        for (;;) {
            if (c == '#') {
                while (c != '\n' && c != '\r' && c != -1) c = get();
            } else if (is_space(c)) {
                c = get();
            } else {
                return c;
            }
        }
    }

    // A decimal number up to `limit`; returns it with the byte that ended it in *end.
    size_t number(const char *what, size_t limit, int *end) {
        int c = next_token_start();
        if (c < '0' || c > '9')
            fail(DANN_ERR_FORMAT, in_.path() + ": PPM " + what + " is missing or not a decimal number");
        size_t v = 0;
        while (c >= '0' && c <= '9') {
            v = v * 10 + static_cast<size_t>(c - '0');
            if (v > limit)
                fail(DANN_ERR_FORMAT, in_.path() + ": PPM " + what + " exceeds " + std::to_string(limit));
            c = get();
        }
        *end = c;
        return v;
    }

private:
    InputFile &in_;
    size_t consumed_ = 0;
};

} // namespace

RgbImage read_ppm(const std::string &path) {
    InputFile in(path);
    HeaderReader header(in);
    const int m0 = header.get(), m1 = header.get();
    if (m0 != 'P' || m1 != '6') fail(DANN_ERR_FORMAT, path + ": not a binary PPM file (magic is not \"P6\")");
    int end = header.get();
    if (!is_space(end) && end != '#') fail(DANN_ERR_FORMAT, path + ": not a binary PPM file (magic is not \"P6\")");

    RgbImage img;
    img.width = header.number("width", kPpmMaxSide, &end);
    if (!is_space(end) && end != '#') fail(DANN_ERR_FORMAT, path + ": PPM width is not followed by whitespace");
    img.height = header.number("height", kPpmMaxSide, &end);
    if (!is_space(end) && end != '#') fail(DANN_ERR_FORMAT, path + ": PPM height is not followed by whitespace");
    const size_t maxval = header.number("maxval", 65535, &end);
    if (!is_space(end))
        fail(DANN_ERR_FORMAT, path + ": PPM maxval must be followed by one whitespace byte before the pixels");
    if (img.width == 0 || img.height == 0)
        fail(DANN_ERR_FORMAT, path + ": PPM image is " + std::to_string(img.width) + " x " +
                                  std::to_string(img.height) + " pixels, which is empty");
    if (maxval != 255)
        fail(DANN_ERR_FORMAT, path + ": PPM maxval is " + std::to_string(maxval) + "; only 8-bit images (255) are read");

    const size_t expected = img.width * img.height * 3;
    size_t have = 0;
    while (have < expected) {
        const size_t want = std::min(kChunkBytes, expected - have);
        img.rgb.resize(have + want);
        const size_t got = in.read(img.rgb.data() + have, want);
        have += got;
        img.rgb.resize(have);
        if (got < want) break;
    }
    if (have < expected)
        fail(DANN_ERR_FORMAT, path + ": truncated PPM raster: " + std::to_string(img.width) + " x " +
                                  std::to_string(img.height) + " RGB expects " + std::to_string(expected) +
                                  " bytes, file has " + std::to_string(have));
    const uint64_t trailing = in.skip_rest();
    if (trailing > 0)
        fail(DANN_ERR_FORMAT, path + ": " + std::to_string(trailing) + " trailing bytes after the PPM raster");
    return img;
}

} // namespace dann::data
