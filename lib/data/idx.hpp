// IDX, the file format of MNIST and Fashion-MNIST: a 4-byte magic (two zero
// bytes, a type code, the number of dimensions), each dimension as a
// big-endian uint32, then the elements in row-major order, big-endian.
//
// dann reads and writes two element types, uint8 (0x08) and float32 (0x0D),
// with 1 to 4 dimensions, each at least 1, and at most kIdxMaxElements
// elements. Files may be gzip-compressed: the reader tells by the content, the
// writer compresses when the path ends in ".gz".
//
// Float data is passed through bit for bit: NaN and Inf are legal in a file,
// and validating values is the caller's business (dann's training and
// inference calls reject them with DANN_ERR_NUMERIC).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dann::data {

constexpr uint8_t kIdxU8 = 0x08;
constexpr uint8_t kIdxF32 = 0x0D;
constexpr size_t kIdxMaxDims = 4;
constexpr uint64_t kIdxMaxElements = uint64_t{1} << 31;

// A tensor as an IDX file holds it. Exactly one of u8 / f32 is used, as `type` says.
struct Idx {
    uint8_t type = kIdxU8;
    std::vector<uint32_t> dims;
    std::vector<uint8_t> u8;
    std::vector<float> f32;

    // Product of dims (0 when there are none).
    size_t count() const;
};

// Tensors checked for a valid type and shape; DANN_ERR_SHAPE when the data's
// size is not the product of dims or dims break the limits above.
Idx make_idx_u8(std::vector<uint32_t> dims, std::vector<uint8_t> data);
Idx make_idx_f32(std::vector<uint32_t> dims, std::vector<float> data);

// Reads a raw or gzip-compressed IDX file. Errors name the file and the fault:
// DANN_ERR_IO when it cannot be opened or read; DANN_ERR_FORMAT for nonzero
// magic bytes, an unsupported type code, a dimension count outside 1..4, a
// zero dimension, more than kIdxMaxElements elements, a truncated header or
// data ("expected N bytes of data, file has M"), trailing bytes, or a corrupt
// or truncated gzip stream. Memory grows with the data actually read, never
// with what the header claims.
Idx read_idx(const std::string &path);

// The same reader over raw IDX bytes in memory (no gzip: compressed bytes are
// "not an IDX file"); `name` stands for the file in messages.
Idx read_idx_memory(const uint8_t *data, size_t size, const std::string &name);

// Writes `idx`: gzip-compressed when path ends in ".gz" (deterministic bytes:
// no name or time stamp in the gzip header), raw otherwise. Atomic: the data
// goes to a temporary file beside `path`, renamed over it when complete.
// DANN_ERR_INVALID_ARGUMENT for an unknown type, DANN_ERR_SHAPE for bad dims
// or a data size that does not match them, DANN_ERR_IO (naming the file and
// the system's reason, e.g. "No space left on device") when writing fails, in
// which case `path` is left as it was.
void write_idx(const std::string &path, const Idx &idx);

// The bytes of a raw IDX file holding `idx`; same checks as write_idx.
std::vector<uint8_t> encode_idx(const Idx &idx);

} // namespace dann::data
