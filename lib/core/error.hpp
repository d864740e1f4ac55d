// Errors inside dann are exceptions carrying a public status; the C API
// boundary (lib/c_api/dann.cpp) turns them into a status and a per-thread message.
#pragma once

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

[[noreturn]] void fail(dann_status status, const std::string &message);

// Per-thread last-error message used by dann_last_error().
void set_last_error(const std::string &message) noexcept;
const char *last_error() noexcept;

} // namespace dann
