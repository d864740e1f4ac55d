// Errors inside dann are exceptions carrying a public status; the C API
// boundary (lib/c_api/dann.cpp) turns them into a status and a per-thread message.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

#include "dann.h"

namespace dann {

class Error : public std::runtime_error {
public:
    Error(dann_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    dann_status status() const noexcept { return status_; }

private:
    dann_status status_;
};

// The integer stored in a C enum field or argument. A C caller may pass any
// int; loading an out-of-range value through the C++ enum type is undefined
// behaviour, so boundary checks read the raw integer first.
template <class E>
int raw_enum(const E &e) noexcept {
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized");
    int v;
    std::memcpy(&v, &e, sizeof v);
    return v;
}

[[noreturn]] void fail(dann_status status, const std::string &message);

// Per-thread last-error message used by dann_last_error().
void set_last_error(const std::string &message) noexcept;
const char *last_error() noexcept;

} // namespace dann
