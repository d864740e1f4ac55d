// One progress line on stderr for long work: done/total, percent, elapsed time,
// rate and ETA. On a terminal the line is redrawn in place ("\r") at most about
// five times a second; otherwise (a log file, CI) plain lines are written at
// most every few seconds, so that logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dann::tool {

class Progress {
public:
    // label: what is counted ("train", "fmnist-m train"); unit: "steps",
    // "images". total may be 0 when unknown. enabled = false prints nothing.
    Progress(std::string label, int64_t total, std::string unit = "steps", bool enabled = true,
             std::FILE *stream = stderr);
    ~Progress();
    Progress(const Progress &) = delete;
    Progress &operator=(const Progress &) = delete;

    // Reports that `done` units are complete; cheap when nothing is drawn.
    // The first value reported is the baseline of the rate (a resumed run
    // starts above zero).
    void update(int64_t done);
    // Changes the total (work that grows or shrinks as it goes).
    void set_total(int64_t total) { total_ = total; }
    // Draws the final state and ends the line. Called by the destructor too
    // (which calls abandon() instead while an exception unwinds).
    void finish();
    // Ends the line without the final state (before an error message).
    void abandon();

    // "1:02:03", "2:03" or "4.5s".
    static std::string format_duration(double seconds);
    // The line itself, for tests.
    std::string line(int64_t done, double elapsed, double eta) const;

private:
    using clock = std::chrono::steady_clock;
    void draw(int64_t done, bool final);

    std::string label_, unit_;
    int64_t total_;
    bool enabled_, tty_, finished_ = false, drawn_ = false;
    std::FILE *stream_;
    clock::time_point start_, last_draw_, base_time_;
    int64_t base_done_ = -1, last_done_ = 0, drawn_done_ = -1;
    size_t last_width_ = 0;
    int uncaught_ = 0;
};

} // namespace dann::tool
