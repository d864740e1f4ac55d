// The adapter's bounded buffer of target samples: fixed-size samples stored
// back to back, the oldest overwritten first. Allocated once; not thread-safe
// (the adapter locks around it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/buffer.hpp"

namespace dann {

class Ring {
public:
    Ring(size_t capacity, size_t sample_bytes);

    // Appends n samples; beyond the capacity only the last ones stay.
    void push(const uint8_t *samples, size_t n);
    // Copies samples [first, first + count) in age order (0 = the oldest held).
    void copy(size_t first, size_t count, uint8_t *dst) const;
    const uint8_t *sample(size_t i) const; // i in age order

    size_t size() const { return size_; }
    size_t capacity() const { return capacity_; }
    size_t sample_bytes() const { return sample_bytes_; }
    uint64_t pushed() const { return pushed_; }
    size_t bytes() const { return data_.bytes(); }

private:
    size_t slot(size_t i) const { return (head_ + capacity_ - size_ + i) % capacity_; }

    size_t capacity_, sample_bytes_;
    Buffer data_;
    size_t head_ = 0; // where the next sample goes
    size_t size_ = 0;
    uint64_t pushed_ = 0;
};

} // namespace dann
