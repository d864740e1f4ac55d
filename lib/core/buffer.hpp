// 64-byte aligned, zero-initialised float/byte storage owned by plans, models
// and trainers. Allocated when an object or a plan is built, never per step.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace dann {

class Buffer {
public:
    Buffer() = default;
    explicit Buffer(size_t bytes) { resize(bytes); }

    void resize(size_t bytes) {
        size_t rounded = (bytes + 63) / 64 * 64;
        if (rounded == 0) rounded = 64;
        void *p = std::aligned_alloc(64, rounded);
        if (!p) throw std::bad_alloc();
        std::memset(p, 0, rounded);
        data_.reset(p);
        bytes_ = bytes;
    }
    void *data() const { return data_.get(); }
    float *f32() const { return static_cast<float *>(data_.get()); }
    size_t bytes() const { return bytes_; }

private:
    struct Free {
        void operator()(void *p) const { std::free(p); }
    };
    std::unique_ptr<void, Free> data_;
    size_t bytes_ = 0;
};

} // namespace dann
