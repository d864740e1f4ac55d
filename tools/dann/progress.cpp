#include "progress.hpp"

#include <unistd.h>

#include <cmath>
#include <exception>

namespace dann::tool {

namespace {

constexpr double kTtyInterval = 0.2;  // seconds between redraws on a terminal
constexpr double kPlainInterval = 5.0; // seconds between lines in a log

double seconds(std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

} // namespace

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled,
                   std::FILE *stream)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled),
      tty_(enabled && isatty(fileno(stream)) == 1), stream_(stream), start_(clock::now()),
      last_draw_(start_), base_time_(start_), uncaught_(std::uncaught_exceptions()) {}

Progress::~Progress() {
    // Unwinding from an error: end the line, but do not claim completion.
    if (std::uncaught_exceptions() > uncaught_)
        abandon();
    else
        finish();
}

std::string Progress::format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    if (s < 60) {
        char text[32];
        std::snprintf(text, sizeof text, "%.1fs", s);
        return text;
    }
    const long total = std::lround(s);
    const long h = total / 3600, m = (total / 60) % 60, sec = total % 60;
    char text[48];
    if (h > 0)
        std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", h, m, sec);
    else
        std::snprintf(text, sizeof text, "%ld:%02ld", m, sec);
    return text;
}

std::string Progress::line(int64_t done, double elapsed, double eta) const {
    char text[256];
    std::string result = label_ + " ";
    if (total_ > 0) {
        std::snprintf(text, sizeof text, "%lld/%lld %s %5.1f%%", static_cast<long long>(done),
                      static_cast<long long>(total_), unit_.c_str(),
                      100.0 * static_cast<double>(done) / static_cast<double>(total_));
    } else {
        std::snprintf(text, sizeof text, "%lld %s", static_cast<long long>(done), unit_.c_str());
    }
    result += text;
    result += "  elapsed " + format_duration(elapsed);
    if (eta >= 0) result += "  ETA " + format_duration(eta);
    return result;
}

void Progress::update(int64_t done) {
    if (!enabled_ || finished_) return;
    const clock::time_point now = clock::now();
    if (base_done_ < 0) {
        base_done_ = done;
        base_time_ = now;
    }
    last_done_ = done;
    const double since = seconds(now - last_draw_);
    if (since < (tty_ ? kTtyInterval : kPlainInterval)) return;
    last_draw_ = now;
    draw(done, false);
}

void Progress::draw(int64_t done, bool final) {
    const clock::time_point now = clock::now();
    const double elapsed = seconds(now - start_);
    double eta = -1;
    if (!final && total_ > 0 && base_done_ >= 0 && done > base_done_ && done < total_) {
        const double rate = static_cast<double>(done - base_done_) / seconds(now - base_time_);
        if (rate > 0) eta = static_cast<double>(total_ - done) / rate;
    }
    std::string text = line(done, elapsed, eta);
    if (tty_) {
        const size_t width = text.size();
        if (width < last_width_) text += std::string(last_width_ - width, ' ');
        last_width_ = width;
        std::fprintf(stream_, "\r%s%s", text.c_str(), final ? "\n" : "");
    } else {
        std::fprintf(stream_, "%s\n", text.c_str());
    }
    std::fflush(stream_);
    drawn_ = true;
    drawn_done_ = done;
}

void Progress::finish() {
    if (!enabled_ || finished_) return;
    finished_ = true;
    // A job too short to have drawn anything stays silent off a terminal.
    const int64_t done = base_done_ >= 0 ? last_done_ : total_;
    if (tty_ || (drawn_ && drawn_done_ != done)) draw(done, true);
}

void Progress::abandon() {
    if (!enabled_ || finished_) return;
    finished_ = true;
    if (tty_ && drawn_) std::fputc('\n', stream_);
}

} // namespace dann::tool
