// A tiny JSON writer for the tool's `--json` output: one object per line,
// keys in insertion order, numbers in the shortest form that reads back to
// the same double (or, for a value that is exactly a float, to that float),
// NaN and infinities as null.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace dann::tool::json {

inline std::string quote(const std::string &text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                static const char hex[] = "0123456789abcdef";
                out += "\\u00";
                out += hex[(c >> 4) & 0xf];
                out += hex[c & 0xf];
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

inline std::string number(double value) {
    if (!std::isfinite(value)) return "null";
    char text[32];
    // Values that came from a float (losses, learning rates) print as that
    // float's shortest form: 0.001, not 0.0010000000474974513.
    const bool fits = std::fabs(value) <= static_cast<double>(std::numeric_limits<float>::max());
    const float as_float = fits ? static_cast<float>(value) : 0.0f;
    const auto result = fits && static_cast<double>(as_float) == value
                            ? std::to_chars(text, text + sizeof text, as_float)
                            : std::to_chars(text, text + sizeof text, value);
    return std::string(text, result.ptr);
}

// Builds a value with add(); str() gives the text.
class Value {
public:
    static Value object() { return Value('{', '}'); }
    static Value array() { return Value('[', ']'); }

    // Object members (key, value); array elements omit the key.
    Value &add(const std::string &key, const std::string &value) { return raw(key, quote(value)); }
    Value &add(const std::string &key, const char *value) { return raw(key, quote(value)); }
    Value &add(const std::string &key, bool value) { return raw(key, value ? "true" : "false"); }
    Value &add(const std::string &key, double value) { return raw(key, number(value)); }
    template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
    Value &add(const std::string &key, T value) {
        return raw(key, std::to_string(value));
    }
    Value &add(const std::string &key, const Value &value) { return raw(key, value.str()); }
    Value &null(const std::string &key) { return raw(key, "null"); }

    template <class T> Value &push(const T &value) { return add(std::string(), value); }

    // A member whose value is already JSON text.
    Value &raw(const std::string &key, const std::string &json_text) {
        if (!items_.empty()) items_ += ", ";
        if (open_ == '{') items_ += quote(key) + ": ";
        items_ += json_text;
        return *this;
    }

    std::string str() const { return std::string(1, open_) + items_ + close_; }

private:
    Value(char open, char close) : open_(open), close_(close) {}
    char open_, close_;
    std::string items_;
};

} // namespace dann::tool::json
