#include "args.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace dann::tool {

namespace {

// Edit distance, for "did you mean --steps?".
size_t distance(const std::string &a, const std::string &b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = up;
        }
    }
    return row[b.size()];
}

} // namespace

int64_t parse_int(const std::string &text, const std::string &what) {
    int64_t value = 0;
    const char *begin = text.data(), *end = text.data() + text.size();
    if (begin != end && *begin == '+') ++begin;
    const auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec == std::errc::result_out_of_range)
        throw UsageError(what + ": " + text + " is out of range");
    if (ec != std::errc() || ptr != end || begin == end)
        throw UsageError(what + ": expected an integer, got '" + text + "'");
    return value;
}

double parse_double(const std::string &text, const std::string &what) {
    // strtod rather than from_chars: it also takes "1e-3" and hex floats the
    // same way on every libstdc++ version.
    if (text.empty() || std::isspace(static_cast<unsigned char>(text[0])))
        throw UsageError(what + ": expected a number, got '" + text + "'");
    char *end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size())
        throw UsageError(what + ": expected a number, got '" + text + "'");
    if (!std::isfinite(value)) throw UsageError(what + ": " + text + " is not a finite number");
    return value;
}

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

ArgParser &ArgParser::option(const std::string &name, const std::string &metavar,
                             const std::string &help, const std::string &default_text) {
    Spec spec;
    spec.name = name;
    spec.metavar = metavar;
    spec.help = help;
    spec.default_text = default_text;
    specs_.push_back(spec);
    return *this;
}

ArgParser &ArgParser::required(const std::string &name, const std::string &metavar,
                               const std::string &help) {
    option(name, metavar, help);
    specs_.back().is_required = true;
    return *this;
}

ArgParser &ArgParser::flag(const std::string &name, const std::string &help) {
    option(name, "", help);
    specs_.back().takes_value = false;
    return *this;
}

ArgParser &ArgParser::epilog(const std::string &text) {
    epilog_ = text;
    return *this;
}

const ArgParser::Spec *ArgParser::find(const std::string &name) const {
    for (const Spec &spec : specs_)
        if (spec.name == name) return &spec;
    return nullptr;
}

std::string ArgParser::suggestion(const std::string &name) const {
    std::string best;
    size_t best_distance = 3; // only close misspellings
    for (const Spec &spec : specs_) {
        const size_t d = distance(name, spec.name);
        if (d < best_distance) {
            best_distance = d;
            best = spec.name;
        }
    }
    return best.empty() ? "" : " (did you mean " + best + "?)";
}

bool ArgParser::parse(int argc, char **argv, int first) {
    values_.clear();
    for (int i = first; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::cout << help();
            return false;
        }
        if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
            if (!arg.empty() && arg[0] == '-')
                throw UsageError("unknown option " + arg + suggestion("-" + arg));
            throw UsageError("unexpected argument '" + arg + "'");
        }
        std::string name = arg, value;
        bool inline_value = false;
        if (const size_t eq = arg.find('='); eq != std::string::npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
            inline_value = true;
        }
        const Spec *spec = find(name);
        if (!spec) throw UsageError("unknown option " + name + suggestion(name));
        if (values_.count(name)) throw UsageError(name + " is given more than once");
        if (!spec->takes_value) {
            if (inline_value) throw UsageError(name + " takes no value");
        } else if (!inline_value) {
            // `--out --json` is a forgotten value, not a folder named "--json".
            const bool next_is_option =
                i + 1 < argc && std::string(argv[i + 1]).compare(0, 2, "--") == 0 &&
                (find(std::string(argv[i + 1]).substr(0, std::string(argv[i + 1]).find('='))) ||
                 std::string(argv[i + 1]) == "--help");
            if (i + 1 >= argc || next_is_option)
                throw UsageError(name + " needs a value (" + spec->metavar + ")");
            value = argv[++i];
        }
        values_[name] = value;
    }
    for (const Spec &spec : specs_)
        if (spec.is_required && !values_.count(spec.name))
            throw UsageError("missing option " + spec.name + " " + spec.metavar);
    return true;
}

std::string ArgParser::help() const {
    std::ostringstream out;
    out << "Usage: " << command_ << " [options]\n\n" << summary_ << "\n\nOptions:\n";
    std::vector<std::pair<std::string, std::string>> rows;
    for (const Spec &spec : specs_) {
        std::string left = "  " + spec.name + (spec.takes_value ? " " + spec.metavar : "");
        std::string right = spec.help;
        if (spec.is_required) right += " (required)";
        if (!spec.default_text.empty()) right += " (default: " + spec.default_text + ")";
        rows.emplace_back(left, right);
    }
    rows.emplace_back("  --help", "show this help and exit");
    size_t width = 0;
    for (const auto &row : rows) width = std::max(width, row.first.size());
    width = std::min<size_t>(width, 30);
    // Descriptions wrap at 79 columns, under their own start.
    const size_t indent = width + 2, line_width = std::max<size_t>(79, indent + 30);
    for (const auto &row : rows) {
        out << row.first;
        if (row.first.size() > width)
            out << "\n" << std::string(indent, ' ');
        else
            out << std::string(indent - row.first.size(), ' ');
        size_t column = indent;
        std::istringstream words(row.second);
        bool first_word = true;
        for (std::string word; words >> word;) {
            if (!first_word && column + 1 + word.size() > line_width) {
                out << "\n" << std::string(indent, ' ');
                column = indent;
            } else if (!first_word) {
                out << ' ';
                ++column;
            }
            out << word;
            column += word.size();
            first_word = false;
        }
        out << "\n";
    }
    if (!epilog_.empty()) out << "\n" << epilog_ << (epilog_.back() == '\n' ? "" : "\n");
    return out.str();
}

bool ArgParser::has(const std::string &name) const { return values_.count(name) != 0; }

std::string ArgParser::get(const std::string &name, const std::string &fallback) const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
}

int64_t ArgParser::get_int(const std::string &name, int64_t fallback, int64_t min_value,
                           int64_t max_value) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    const int64_t value = parse_int(it->second, name);
    if (value < min_value || value > max_value)
        throw UsageError(name + ": " + it->second + " is outside [" + std::to_string(min_value) +
                         ", " + std::to_string(max_value) + "]");
    return value;
}

uint64_t ArgParser::get_u64(const std::string &name, uint64_t fallback) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    uint64_t value = 0;
    const std::string &text = it->second;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range) throw UsageError(name + ": " + text + " is out of range");
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
        throw UsageError(name + ": expected a non-negative integer, got '" + text + "'");
    return value;
}

double ArgParser::get_double(const std::string &name, double fallback, double min_value,
                             double max_value) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    const double value = parse_double(it->second, name);
    if (value < min_value || value > max_value) {
        char range[96];
        std::snprintf(range, sizeof range, "[%g, %g]", min_value, max_value);
        throw UsageError(name + ": " + it->second + " is outside " + range);
    }
    return value;
}

std::string ArgParser::get_choice(const std::string &name, const std::string &fallback,
                                  const std::vector<std::string> &choices) const {
    const std::string value = get(name, fallback);
    if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
    std::string list;
    for (const std::string &choice : choices) list += (list.empty() ? "" : ", ") + choice;
    throw UsageError(name + ": '" + value + "' is not one of " + list);
}

} // namespace dann::tool
