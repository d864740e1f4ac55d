// The fuzzers' view of an input as a file: one memfd per process, rewritten
// for every input and opened through its /proc path, so that the public
// file-reading entry points see exactly the fuzzer's bytes.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace dann_fuzz {

// The path of a file holding `data`, or "" if the memfd could not be written
// (the caller reports it).
inline std::string as_file(const uint8_t *data, size_t size, const char *name) {
    static const int fd = memfd_create(name, 0);
    if (fd < 0 || ftruncate(fd, 0) != 0) return "";
    size_t done = 0;
    while (done < size) {
        const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
        if (n <= 0) return "";
        done += static_cast<size_t>(n);
    }
    return "/proc/self/fd/" + std::to_string(fd);
}

} // namespace dann_fuzz
