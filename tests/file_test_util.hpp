// Helpers of the file tests: a temporary folder removed with everything in it
// afterwards, and a check that a call fails with a given status and message.
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <filesystem>
#include <string>
#include <system_error>

#include <doctest/doctest.h>

#include "core/error.hpp"

namespace dann_test {

class TempDir {
public:
    TempDir() {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / "dann-test-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    std::string file(const std::string &name) const { return path_ + "/" + name; }
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

// Runs f, which must throw dann::Error with `status` and a message holding
// every fragment.
template <class F>
void expect_error(F &&f, dann_status status, std::initializer_list<std::string> fragments) {
    try {
        f();
        FAIL("no error was thrown; expected status " << status);
    } catch (const dann::Error &e) {
        const std::string msg = e.what();
        CHECK_MESSAGE(e.status() == status, msg);
        for (const std::string &frag : fragments) CHECK_MESSAGE(msg.find(frag) != std::string::npos, msg);
    }
}

} // namespace dann_test
