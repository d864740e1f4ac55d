#include "commands.hpp"

#include <cstdio>
#include <exception>
#include <new>

#include "args.hpp"

namespace dann::tool {

int run_command(const std::string &command, const std::function<int()> &body) {
    try {
        return body();
    } catch (const UsageError &e) {
        std::fprintf(stderr, "%s: %s (see %s --help)\n", command.c_str(), e.what(), command.c_str());
        return 2;
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "%s: out of memory\n", command.c_str());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s: %s\n", command.c_str(), e.what());
        return 1;
    } catch (...) {
        std::fprintf(stderr, "%s: unexpected internal error\n", command.c_str());
        return 1;
    }
}

} // namespace dann::tool
