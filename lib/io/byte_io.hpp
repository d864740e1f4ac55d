// Little-endian encoding and bounds-checked decoding of the model file's
// fields, whatever the host's byte order. A ByteReader checks every read
// against what remains and reports a shortfall as DANN_ERR_FORMAT naming the
// file and the field.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace dann::io {

class ByteWriter {
public:
    void u8(uint8_t v) { bytes.push_back(v); }
    void u16(uint16_t v) { put(v, 2); }
    void u32(uint32_t v) { put(v, 4); }
    void u64(uint64_t v) { put(v, 8); }
    void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
    void f32(float v) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        u32(u);
    }
    void floats(const float *v, size_t n) {
        bytes.reserve(bytes.size() + 4 * n);
        for (size_t i = 0; i < n; ++i) f32(v[i]);
    }
    void raw(const void *p, size_t n) {
        const auto *b = static_cast<const uint8_t *>(p);
        bytes.insert(bytes.end(), b, b + n);
    }
    void str(const std::string &s) {
        u32(static_cast<uint32_t>(s.size()));
        raw(s.data(), s.size());
    }
    std::vector<uint8_t> bytes;

private:
    void put(uint64_t v, int n) {
        for (int i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
};

inline uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
}

inline void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

class ByteReader {
public:
    // `context` starts every message: the file's name, and the section.
    ByteReader(const uint8_t *p, size_t n, std::string context)
        : p_(p), left_(n), context_(std::move(context)) {}

    uint8_t u8(const char *what) { return static_cast<uint8_t>(take(1, what)); }
    uint16_t u16(const char *what) { return static_cast<uint16_t>(take(2, what)); }
    uint32_t u32(const char *what) { return static_cast<uint32_t>(take(4, what)); }
    uint64_t u64(const char *what) { return take(8, what); }
    int32_t i32(const char *what) { return static_cast<int32_t>(u32(what)); }
    float f32(const char *what) {
        const uint32_t u = u32(what);
        float v;
        std::memcpy(&v, &u, 4);
        return v;
    }
    // n floats; n is checked against what remains before anything is read.
    void floats(float *out, uint64_t n, const std::string &what) {
        need_items(n, 4, what);
        for (uint64_t i = 0; i < n; ++i) {
            const uint32_t u = static_cast<uint32_t>(get_le(p_ + 4 * i, 4));
            std::memcpy(&out[i], &u, 4);
        }
        advance(static_cast<size_t>(n) * 4);
    }
    // A pointer to the next n bytes, which are consumed.
    const uint8_t *bytes(uint64_t n, const std::string &what) {
        need_items(n, 1, what);
        const uint8_t *p = p_;
        advance(static_cast<size_t>(n));
        return p;
    }
    std::string str(const char *what, uint32_t max_len) {
        const uint32_t n = u32(what);
        if (n > max_len) bad(std::string(what) + " of " + std::to_string(n) + " bytes is too long");
        const uint8_t *p = bytes(n, what);
        return std::string(reinterpret_cast<const char *>(p), n);
    }
    // Fails unless n items of `size` bytes fit in what remains.
    void need_items(uint64_t n, size_t size, const std::string &what) const {
        if (n > left_ / size)
            bad("truncated: " + what + " needs " + count_text(n, size) + ", " +
                std::to_string(left_) + " remain");
    }
    size_t left() const { return left_; }
    const std::string &context() const { return context_; }
    [[noreturn]] void bad(const std::string &what) const { fail(DANN_ERR_FORMAT, context_ + ": " + what); }

private:
    static std::string count_text(uint64_t n, size_t size) {
        // n * size may not fit in 64 bits when n comes from a damaged file.
        if (n > UINT64_MAX / size) return std::to_string(n) + " x " + std::to_string(size) + " bytes";
        return std::to_string(n * size) + " bytes";
    }
    uint64_t take(int n, const char *what) {
        if (static_cast<size_t>(n) > left_)
            bad(std::string("truncated while reading ") + what + " (" + std::to_string(n) +
                " bytes needed, " + std::to_string(left_) + " remain)");
        const uint64_t v = get_le(p_, n);
        advance(static_cast<size_t>(n));
        return v;
    }
    void advance(size_t n) {
        p_ += n;
        left_ -= n;
    }
    const uint8_t *p_;
    size_t left_;
    std::string context_;
};

} // namespace dann::io
