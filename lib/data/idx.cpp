#include "data/idx.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.hpp"
#include "data/gzfile.hpp"

namespace dann::data {

namespace {

constexpr size_t kChunkBytes = size_t{4} << 20;
// Reading starts with small chunks that double up to kChunkBytes, so that a
// short file claiming a large tensor costs little.
constexpr size_t kFirstChunkBytes = size_t{64} << 10;

std::string hex_byte(unsigned v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X", v & 0xFFu);
    return buf;
}

// The element types of the IDX specification, for messages.
const char *type_name(uint8_t type) {
    switch (type) {
    case 0x08: return "uint8";
    case 0x09: return "int8";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
    }
}

size_t element_size(uint8_t type) { return type == kIdxF32 ? 4 : 1; }

std::string dims_string(const std::vector<uint32_t> &dims) {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
    return s;
}

// Checks dims against the format's limits and returns the element count;
// failures carry `status` and start with `prefix`.
uint64_t checked_count(const std::vector<uint32_t> &dims, dann_status status, const std::string &prefix) {
    if (dims.empty() || dims.size() > kIdxMaxDims)
        fail(status, prefix + "IDX dimension count is " + std::to_string(dims.size()) + "; dann reads 1 to " +
                         std::to_string(kIdxMaxDims) + " dimensions");
    uint64_t count = 1;
    for (size_t i = 0; i < dims.size(); ++i) {
        if (dims[i] == 0)
            fail(status, prefix + "dimension " + std::to_string(i) + " of " + dims_string(dims) + " is zero");
        if (count > kIdxMaxElements / dims[i])
            fail(status, prefix + "dimensions " + dims_string(dims) + " hold more than the limit of " +
                             std::to_string(kIdxMaxElements) + " elements");
        count *= dims[i];
    }
    return count;
}

void put_be32(uint8_t *dst, uint32_t v) {
    dst[0] = static_cast<uint8_t>(v >> 24);
    dst[1] = static_cast<uint8_t>(v >> 16);
    dst[2] = static_cast<uint8_t>(v >> 8);
    dst[3] = static_cast<uint8_t>(v);
}

uint32_t get_be32(const uint8_t *src) {
    return (uint32_t{src[0]} << 24) | (uint32_t{src[1]} << 16) | (uint32_t{src[2]} << 8) | uint32_t{src[3]};
}

void put_f32_be(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &src[i], 4);
        put_be32(dst + 4 * i, bits);
    }
}

// Validates a tensor for writing; returns its header.
std::vector<uint8_t> header_for(const Idx &idx) {
    if (idx.type != kIdxU8 && idx.type != kIdxF32)
        fail(DANN_ERR_INVALID_ARGUMENT, "IDX type " + hex_byte(idx.type) + " (" + type_name(idx.type) +
                                            "): dann writes 0x08 (uint8) and 0x0D (float32)");
    const uint64_t count = checked_count(idx.dims, DANN_ERR_SHAPE, "");
    const size_t have = idx.type == kIdxU8 ? idx.u8.size() : idx.f32.size();
    if (have != count)
        fail(DANN_ERR_SHAPE, std::string("IDX ") + type_name(idx.type) + " tensor " + dims_string(idx.dims) +
                                 " needs " + std::to_string(count) + " elements, the data holds " +
                                 std::to_string(have));
    std::vector<uint8_t> header(4 + 4 * idx.dims.size());
    header[2] = idx.type;
    header[3] = static_cast<uint8_t>(idx.dims.size());
    for (size_t i = 0; i < idx.dims.size(); ++i) put_be32(&header[4 + 4 * i], idx.dims[i]);
    return header;
}

} // namespace

size_t Idx::count() const {
    if (dims.empty()) return 0;
    size_t n = 1;
    for (uint32_t d : dims) n *= d;
    return n;
}

Idx make_idx_u8(std::vector<uint32_t> dims, std::vector<uint8_t> data) {
    Idx idx;
    idx.type = kIdxU8;
    idx.dims = std::move(dims);
    idx.u8 = std::move(data);
    header_for(idx);
    return idx;
}

Idx make_idx_f32(std::vector<uint32_t> dims, std::vector<float> data) {
    Idx idx;
    idx.type = kIdxF32;
    idx.dims = std::move(dims);
    idx.f32 = std::move(data);
    header_for(idx);
    return idx;
}

namespace {

// Bytes in memory, read as InputFile reads a file.
class MemoryInput {
public:
    MemoryInput(const uint8_t *data, size_t size) : data_(data), size_(size) {}
    size_t read(void *dst, size_t n) {
        n = std::min(n, size_ - pos_);
        if (n) std::memcpy(dst, data_ + pos_, n);
        pos_ += n;
        return n;
    }
    uint64_t skip_rest() {
        const size_t rest = size_ - pos_;
        pos_ = size_;
        return rest;
    }

private:
    const uint8_t *data_;
    size_t size_, pos_ = 0;
};

// The reader proper, over an InputFile or a MemoryInput; messages start with `prefix`.
template <class Input>
Idx parse_idx(Input &in, const std::string &prefix) {
    uint8_t magic[4];
    const size_t got_magic = in.read(magic, 4);
    if (got_magic < 4)
        fail(DANN_ERR_FORMAT, prefix + "not an IDX file: " + std::to_string(got_magic) +
                                  " bytes, shorter than the 4-byte magic");
    if (magic[0] != 0 || magic[1] != 0)
        fail(DANN_ERR_FORMAT, prefix + "not an IDX file: the magic starts with " + hex_byte(magic[0]) + " " +
                                  hex_byte(magic[1]) + " instead of two zero bytes");
    Idx idx;
    idx.type = magic[2];
    if (idx.type != kIdxU8 && idx.type != kIdxF32)
        fail(DANN_ERR_FORMAT, prefix + "unsupported IDX type code " + hex_byte(idx.type) + " (" +
                                  type_name(idx.type) + "); dann reads 0x08 (uint8) and 0x0D (float32)");
    const size_t ndim = magic[3];
    if (ndim == 0 || ndim > kIdxMaxDims)
        fail(DANN_ERR_FORMAT, prefix + "IDX dimension count is " + std::to_string(ndim) + "; dann reads 1 to " +
                                  std::to_string(kIdxMaxDims) + " dimensions");

    uint8_t dim_bytes[4 * kIdxMaxDims];
    const size_t got_dims = in.read(dim_bytes, 4 * ndim);
    if (got_dims < 4 * ndim)
        fail(DANN_ERR_FORMAT, prefix + "truncated header: expected " + std::to_string(4 * ndim) +
                                  " bytes of dimensions, file has " + std::to_string(got_dims));
    idx.dims.resize(ndim);
    for (size_t i = 0; i < ndim; ++i) idx.dims[i] = get_be32(&dim_bytes[4 * i]);
    const uint64_t count = checked_count(idx.dims, DANN_ERR_FORMAT, prefix);
    const size_t esize = element_size(idx.type);
    const size_t expected = static_cast<size_t>(count) * esize;

    // Memory follows the data actually present (the vectors grow
    // geometrically as chunks arrive): a header promising gigabytes over a few
    // bytes of data costs a few kilobytes.
    size_t have = 0, step = kFirstChunkBytes;
    if (idx.type == kIdxU8) {
        while (have < expected) {
            const size_t want = std::min(step, expected - have);
            idx.u8.resize(have + want);
            const size_t got = in.read(idx.u8.data() + have, want);
            have += got;
            idx.u8.resize(have);
            if (got < want) break;
            step = std::min(2 * step, kChunkBytes);
        }
    } else {
        std::vector<uint8_t> chunk;
        while (have < expected) {
            const size_t want = std::min(step, expected - have);
            if (chunk.size() < want) chunk.resize(want);
            step = std::min(2 * step, kChunkBytes);
            const size_t got = in.read(chunk.data(), want);
            have += got;
            for (size_t i = 0; i + 4 <= got; i += 4) {
                const uint32_t bits = get_be32(&chunk[i]);
                float v;
                std::memcpy(&v, &bits, 4);
                idx.f32.push_back(v);
            }
            if (got < want) break;
        }
    }
    if (have < expected)
        fail(DANN_ERR_FORMAT, prefix + "truncated data: expected " + std::to_string(expected) +
                                  " bytes of data (" + type_name(idx.type) + " " + dims_string(idx.dims) +
                                  "), file has " + std::to_string(have));
    const uint64_t trailing = in.skip_rest();
    if (trailing > 0)
        fail(DANN_ERR_FORMAT, prefix + std::to_string(trailing) + " trailing bytes after the " +
                                  std::to_string(expected) + " bytes of data (" + type_name(idx.type) + " " +
                                  dims_string(idx.dims) + ")");
    return idx;
}

} // namespace

Idx read_idx(const std::string &path) {
    const std::string prefix = path + ": ";
    InputFile in(path);
    return parse_idx(in, prefix);
}

Idx read_idx_memory(const uint8_t *data, size_t size, const std::string &name) {
    if (!data && size) fail(DANN_ERR_INVALID_ARGUMENT, name + ": no data");
    MemoryInput in(data, size);
    return parse_idx(in, name + ": ");
}

std::vector<uint8_t> encode_idx(const Idx &idx) {
    std::vector<uint8_t> bytes = header_for(idx);
    const size_t header = bytes.size();
    if (idx.type == kIdxU8) {
        bytes.insert(bytes.end(), idx.u8.begin(), idx.u8.end());
    } else {
        bytes.resize(header + 4 * idx.f32.size());
        put_f32_be(bytes.data() + header, idx.f32.data(), idx.f32.size());
    }
    return bytes;
}

void write_idx(const std::string &path, const Idx &idx) {
    const std::vector<uint8_t> header = header_for(idx);
    OutputFile out(path, has_gz_suffix(path));
    out.write(header.data(), header.size());
    if (idx.type == kIdxU8) {
        out.write(idx.u8.data(), idx.u8.size());
    } else {
        std::vector<uint8_t> chunk(std::min(kChunkBytes, 4 * idx.f32.size()));
        for (size_t i = 0; i < idx.f32.size();) {
            const size_t n = std::min(chunk.size() / 4, idx.f32.size() - i);
            put_f32_be(chunk.data(), idx.f32.data() + i, n);
            out.write(chunk.data(), 4 * n);
            i += n;
        }
    }
    out.commit();
}

} // namespace dann::data
