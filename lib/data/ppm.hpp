// Binary PPM (P6) images with 8-bit samples, raw or gzip-compressed: the
// format of the photographs behind Fashion-MNIST-M.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dann::data {

// An RGB image, rows top to bottom, pixels interleaved (HWC).
struct RgbImage {
    size_t height = 0, width = 0;
    std::vector<uint8_t> rgb; // height * width * 3
};

// Largest side accepted: bounds the memory a header can ask for.
constexpr size_t kPpmMaxSide = 16384;

// Reads a P6 file: "P6", width, height and maxval as decimal numbers separated
// by whitespace (comments from '#' to the end of a line allowed between them),
// one whitespace byte, then exactly width * height * 3 bytes. Only maxval 255
// is accepted. DANN_ERR_IO when the file cannot be read; DANN_ERR_FORMAT,
// naming the file and the fault, for anything else: another magic, a bad
// number, a zero or oversized side, another maxval, a truncated raster,
// trailing bytes, a corrupt gzip stream.
RgbImage read_ppm(const std::string &path);

} // namespace dann::data
