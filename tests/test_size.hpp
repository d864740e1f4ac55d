// The suite's one size setting, -DDANN_TEST_SIZE=tiny|full (tests/CMakeLists.txt
// defines DANN_TEST_FULL for full). Tiny, the default, keeps every case
// within reach of an emulator (qemu runs the suite several hundred times
// slower than the host); full runs the longer variants of the same claims.
#pragma once

namespace dann_test {

#ifdef DANN_TEST_FULL
constexpr bool kFullSize = true;
#else
constexpr bool kFullSize = false;
#endif

// `tiny` under the default size setting, `full` under -DDANN_TEST_SIZE=full.
template <class T>
constexpr T by_size(T tiny, T full) {
    return kFullSize ? full : tiny;
}

} // namespace dann_test
