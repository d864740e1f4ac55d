// A small command-line option parser for the `dann` tool's subcommands.
//
// Options are long only: `--name VALUE`, `--name=VALUE`, or a bare `--flag`.
// Every subcommand describes its options once; the same description produces
// the `--help` text and the checks, so the two never disagree. Mistakes throw
// UsageError with a message that names the option; the caller prints it as
// "dann <command>: <message>" and exits with status 2.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dann::tool {

// A mistake in the command line (exit status 2).
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Any other failure of a subcommand (exit status 1).
struct CommandError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class ArgParser {
public:
    // command: e.g. "dann data moons"; summary: one line of what it does.
    ArgParser(std::string command, std::string summary);

    // An option that takes a value. metavar names the value in the help
    // ("DIR"); default_text, if not empty, is shown as "(default: ...)".
    ArgParser &option(const std::string &name, const std::string &metavar, const std::string &help,
                      const std::string &default_text = "");
    // An option that must be given.
    ArgParser &required(const std::string &name, const std::string &metavar,
                        const std::string &help);
    // An option without a value.
    ArgParser &flag(const std::string &name, const std::string &help);
    // Free text printed after the option list (examples, notes).
    ArgParser &epilog(const std::string &text);

    // Parses argv[first..argc). Returns false when --help was asked for (the
    // help text has then been written to stdout). Throws UsageError.
    bool parse(int argc, char **argv, int first = 1);

    std::string help() const;
    const std::string &command() const { return command_; }

    bool has(const std::string &name) const;
    std::string get(const std::string &name, const std::string &fallback = "") const;
    // Numbers, checked for syntax and range; the fallback applies when the
    // option is absent. Errors name the option.
    int64_t get_int(const std::string &name, int64_t fallback, int64_t min_value,
                    int64_t max_value) const;
    uint64_t get_u64(const std::string &name, uint64_t fallback) const;
    double get_double(const std::string &name, double fallback, double min_value,
                      double max_value) const;
    // One of `choices`.
    std::string get_choice(const std::string &name, const std::string &fallback,
                           const std::vector<std::string> &choices) const;

private:
    struct Spec {
        std::string name, metavar, help, default_text;
        bool takes_value = true;
        bool is_required = false;
    };
    const Spec *find(const std::string &name) const;
    std::string suggestion(const std::string &name) const;

    std::string command_, summary_, epilog_;
    std::vector<Spec> specs_;
    std::map<std::string, std::string> values_;
};

// Parses numbers strictly (the whole text, no trailing characters); used by
// ArgParser and by list options such as --arch mlp:15,15. Throw UsageError
// with `what` naming the option.
int64_t parse_int(const std::string &text, const std::string &what);
double parse_double(const std::string &text, const std::string &what);

} // namespace dann::tool
