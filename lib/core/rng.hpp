// SplitMix64: the one generator behind initialisation, dropout masks and the
// tests' fixtures (tests/torch/make_fixtures.py implements the same).
#pragma once

#include <cstdint>

namespace dann {

inline uint64_t splitmix64_next(uint64_t &state) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Stateless hash of a counter, for masks generated in parallel.
inline uint64_t splitmix64_hash(uint64_t x) { return splitmix64_next(x); }

class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next() { return splitmix64_next(state_); }
    // Uniform in [0, 1) with 24 bits, exactly representable as float.
    float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }

private:
    uint64_t state_;
};

} // namespace dann
