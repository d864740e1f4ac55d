#include "adapt/ring.hpp"

#include <algorithm>
#include <cstring>

namespace dann {

Ring::Ring(size_t capacity, size_t sample_bytes)
    : capacity_(capacity), sample_bytes_(sample_bytes), data_(capacity * sample_bytes) {}

void Ring::push(const uint8_t *samples, size_t n) {
    pushed_ += n;
    if (n > capacity_) {
        samples += (n - capacity_) * sample_bytes_;
        n = capacity_;
    }
    uint8_t *base = static_cast<uint8_t *>(data_.data());
    while (n > 0) {
        const size_t run = std::min(n, capacity_ - head_);
        std::memcpy(base + head_ * sample_bytes_, samples, run * sample_bytes_);
        samples += run * sample_bytes_;
        n -= run;
        size_ = std::min(capacity_, size_ + run);
        head_ = (head_ + run) % capacity_;
    }
}

const uint8_t *Ring::sample(size_t i) const {
    return static_cast<const uint8_t *>(data_.data()) + slot(i) * sample_bytes_;
}

void Ring::copy(size_t first, size_t count, uint8_t *dst) const {
    const uint8_t *base = static_cast<const uint8_t *>(data_.data());
    while (count > 0) {
        const size_t at = slot(first);
        const size_t run = std::min(count, capacity_ - at);
        std::memcpy(dst, base + at * sample_bytes_, run * sample_bytes_);
        dst += run * sample_bytes_;
        first += run;
        count -= run;
    }
}

} // namespace dann
