#include "svg.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace dann::tool::svg {

namespace {

constexpr int kChartWidth = 440, kChartHeight = 270;
constexpr int kScatterWidth = 440, kScatterHeight = 420;
constexpr int kTitleHeight = 36;
constexpr int kLeft = 64, kRight = 16, kTop = 50, kBottom = 42;
constexpr const char *kFont = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

std::string coord(double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.1f", value);
    return text;
}

std::string short_number(double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.3g", value);
    return text;
}

struct Range {
    double lo = 0, hi = 1, step = 0.2;
};

double nice_step(double span, int target_ticks) {
    const double raw = span / target_ticks;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double f = raw / magnitude;
    const double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nice * magnitude;
}

// A range covering [lo, hi] with round tick marks at its ends.
Range nice_range(double lo, double hi, int target_ticks, bool snap) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(hi))) {
        const double pad = std::fabs(lo) > 0 ? std::fabs(lo) * 0.1 : 0.5;
        lo -= pad;
        hi += pad;
    }
    Range r;
    r.step = nice_step(hi - lo, target_ticks);
    r.lo = snap ? std::floor(lo / r.step + 1e-9) * r.step : lo;
    r.hi = snap ? std::ceil(hi / r.step - 1e-9) * r.step : hi;
    return r;
}

// Tick label text with as many decimals as the step needs.
std::string tick_label(double value, double step) {
    if (std::fabs(value) < step * 1e-6) value = 0;
    const double a = std::fabs(value);
    if (a != 0 && (a >= 1e6 || a < 1e-4)) return short_number(value);
    const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

struct Frame { // where a plot area sits on the page, and its data ranges
    double left, top, width, height;
    Range x, y;
    double px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
    double py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};

void text(std::ostream &out, double x, double y, const std::string &content,
          const char *anchor = "middle", int size = 11, const char *extra = "") {
    out << "<text x=\"" << coord(x) << "\" y=\"" << coord(y) << "\" text-anchor=\"" << anchor
        << "\" font-size=\"" << size << "\" " << extra << ">" << escape(content) << "</text>\n";
}

// Axes, grid, ticks and labels of a frame.
void axes(std::ostream &out, const Frame &f, const std::string &x_label,
          const std::string &y_label) {
    out << "<rect x=\"" << coord(f.left) << "\" y=\"" << coord(f.top) << "\" width=\""
        << coord(f.width) << "\" height=\"" << coord(f.height)
        << "\" fill=\"#ffffff\" stroke=\"#444444\" stroke-width=\"1\"/>\n";
    for (double v = f.x.lo; v <= f.x.hi + f.x.step * 1e-6; v += f.x.step) {
        const double x = f.px(v);
        out << "<line x1=\"" << coord(x) << "\" y1=\"" << coord(f.top) << "\" x2=\"" << coord(x)
            << "\" y2=\"" << coord(f.top + f.height) << "\" stroke=\"#e5e5e5\"/>\n";
        text(out, x, f.top + f.height + 15, tick_label(v, f.x.step), "middle", 10);
    }
    for (double v = f.y.lo; v <= f.y.hi + f.y.step * 1e-6; v += f.y.step) {
        const double y = f.py(v);
        out << "<line x1=\"" << coord(f.left) << "\" y1=\"" << coord(y) << "\" x2=\""
            << coord(f.left + f.width) << "\" y2=\"" << coord(y) << "\" stroke=\"#e5e5e5\"/>\n";
        text(out, f.left - 5, y + 3.5, tick_label(v, f.y.step), "end", 10);
    }
    out << "<rect x=\"" << coord(f.left) << "\" y=\"" << coord(f.top) << "\" width=\""
        << coord(f.width) << "\" height=\"" << coord(f.height)
        << "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n";
    if (!x_label.empty()) text(out, f.left + f.width / 2, f.top + f.height + 32, x_label);
    if (!y_label.empty()) {
        const double x = f.left - 48, y = f.top + f.height / 2;
        const std::string rotate = "transform=\"rotate(-90 " + coord(x) + " " + coord(y) + ")\"";
        text(out, x, y, y_label, "middle", 11, rotate.c_str());
    }
}

struct LegendEntry {
    std::string name, color;
    bool dashed = false;
    bool is_marker = false;
    Marker marker = Marker::circle;
};

using Points = std::vector<std::pair<double, double>>; // page coordinates

// The page points of a series, with its segments filled in, so that the legend
// can stay off the lines.
void trace(const Frame &f, const std::vector<double> &xs, const std::vector<double> &ys,
           Points &points) {
    bool have_last = false;
    double lx = 0, ly = 0;
    for (size_t i = 0; i < xs.size() && i < ys.size(); ++i) {
        if (!std::isfinite(xs[i]) || !std::isfinite(ys[i])) continue;
        const double x = f.px(xs[i]), y = f.py(ys[i]);
        if (have_last) {
            const int pieces = std::min(50, static_cast<int>(std::hypot(x - lx, y - ly) / 4) + 1);
            for (int k = 1; k < pieces; ++k) {
                const double t = static_cast<double>(k) / pieces;
                points.emplace_back(lx + t * (x - lx), ly + t * (y - ly));
            }
        }
        points.emplace_back(x, y);
        lx = x;
        ly = y;
        have_last = true;
    }
}

double text_width(const std::string &content, double per_char) {
    size_t chars = 0; // UTF-8: count the first byte of each character only
    for (const char c : content) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return per_char * static_cast<double>(chars);
}

// A legend's sample of a series (a short line) or of a group (its marker),
// starting at x, centred on y.
void legend_mark(std::ostream &out, const LegendEntry &e, double x, double y) {
    const std::string color = escape(e.color);
    if (!e.is_marker) {
        out << "<line x1=\"" << coord(x) << "\" y1=\"" << coord(y) << "\" x2=\"" << coord(x + 19)
            << "\" y2=\"" << coord(y) << "\" stroke=\"" << color << "\" stroke-width=\"2\""
            << (e.dashed ? " stroke-dasharray=\"5,3\"" : "") << "/>\n";
        return;
    }
    const double cx = x + 9;
    if (e.marker == Marker::circle)
        out << "<circle cx=\"" << coord(cx) << "\" cy=\"" << coord(y) << "\" r=\"3.5\" fill=\""
            << color << "\"/>\n";
    else if (e.marker == Marker::square)
        out << "<rect x=\"" << coord(cx - 3.5) << "\" y=\"" << coord(y - 3.5)
            << "\" width=\"7\" height=\"7\" fill=\"" << color << "\"/>\n";
    else if (e.marker == Marker::cross)
        out << "<path fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" d=\"M"
            << coord(cx - 3.5) << " " << coord(y - 3.5) << "l7 7m0 -7l-7 7\"/>\n";
    else
        out << "<path fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" d=\"M"
            << coord(cx - 4) << " " << coord(y) << "h8m-4 -4v8\"/>\n";
}

// The legend: one row above the frame when it fits, else in the corner of the
// frame that covers the fewest points.
void legend(std::ostream &out, const Frame &f, const std::vector<LegendEntry> &entries,
            const Points &points) {
    if (entries.empty()) return;
    double row_width = 0;
    for (const LegendEntry &e : entries) row_width += 30 + text_width(e.name, 5.8) + 14;
    if (row_width <= f.width) {
        double x = f.left + f.width - row_width + 14;
        const double y = f.top - 8;
        for (const LegendEntry &e : entries) {
            legend_mark(out, e, x, y);
            text(out, x + 25, y + 3.5, e.name, "start", 10);
            x += 30 + text_width(e.name, 5.8) + 14;
        }
        return;
    }
    double longest = 0;
    for (const LegendEntry &e : entries) longest = std::max(longest, text_width(e.name, 6.2));
    const double width = 34 + longest, row = 15;
    const double height = 6 + row * static_cast<double>(entries.size());
    const double corners[4][2] = {{f.left + f.width - width - 6, f.top + 6},
                                  {f.left + 6, f.top + 6},
                                  {f.left + f.width - width - 6, f.top + f.height - height - 6},
                                  {f.left + 6, f.top + f.height - height - 6}};
    size_t best = 0, best_count = SIZE_MAX;
    for (size_t c = 0; c < 4; ++c) {
        size_t covered = 0;
        for (const auto &[x, y] : points)
            covered += x >= corners[c][0] - 3 && x <= corners[c][0] + width + 3 &&
                       y >= corners[c][1] - 3 && y <= corners[c][1] + height + 3;
        if (covered < best_count) {
            best_count = covered;
            best = c;
        }
    }
    const double x0 = corners[best][0], y0 = corners[best][1];
    out << "<rect x=\"" << coord(x0) << "\" y=\"" << coord(y0) << "\" width=\"" << coord(width)
        << "\" height=\"" << coord(height)
        << "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n";
    for (size_t i = 0; i < entries.size(); ++i) {
        const LegendEntry &e = entries[i];
        const double y = y0 + 3 + row * (static_cast<double>(i) + 0.5);
        legend_mark(out, e, x0 + 5, y);
        text(out, x0 + 29, y + 3.5, e.name, "start", 10);
    }
}

void polyline(std::ostream &out, const Frame &f, const Series &s, int clip) {
    out << "<polyline clip-path=\"url(#clip" << clip << ")\" fill=\"none\" stroke=\""
        << escape(s.color) << "\" stroke-width=\"1.6\" stroke-linejoin=\"round\""
        << (s.dashed ? " stroke-dasharray=\"5,3\"" : "") << " points=\"";
    size_t shown = 0;
    double last_x = 0, last_y = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
        last_x = f.px(s.x[i]);
        last_y = f.py(s.y[i]);
        out << (shown++ ? " " : "") << coord(last_x) << "," << coord(last_y);
    }
    out << "\"/>\n";
    if (shown == 1)
        out << "<circle clip-path=\"url(#clip" << clip << ")\" cx=\"" << coord(last_x)
            << "\" cy=\"" << coord(last_y) << "\" r=\"2.5\" fill=\"" << escape(s.color) << "\"/>\n";
}

void clip_path(std::ostream &out, const Frame &f, int id) {
    out << "<clipPath id=\"clip" << id << "\"><rect x=\"" << coord(f.left) << "\" y=\""
        << coord(f.top) << "\" width=\"" << coord(f.width) << "\" height=\"" << coord(f.height)
        << "\"/></clipPath>\n";
}

std::string header(int width, int height, const std::string &title) {
    std::ostringstream out;
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << width
        << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " " << height << "\" "
        << kFont << ">\n";
    out << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height
        << "\" fill=\"#ffffff\"/>\n";
    if (!title.empty()) text(out, width / 2.0, 24, title, "middle", 16, "font-weight=\"bold\"");
    return out.str();
}

void grid_size(size_t panels, int columns, int cell_w, int cell_h, int &width, int &height,
               int &cols) {
    cols = std::max(1, std::min<int>(columns, static_cast<int>(std::max<size_t>(panels, 1))));
    const int rows = static_cast<int>((std::max<size_t>(panels, 1) + cols - 1) / cols);
    width = cols * cell_w;
    height = kTitleHeight + rows * cell_h;
}

} // namespace

std::string escape(const std::string &content) {
    std::string out;
    out.reserve(content.size());
    for (const char c : content) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default: out += c;
        }
    }
    return out;
}

std::string line_chart(const std::string &title, const std::vector<Panel> &panels, int columns) {
    int width = 0, height = 0, cols = 1;
    grid_size(panels.size(), columns, kChartWidth, kChartHeight, width, height, cols);
    // One x range for every panel, so that a step sits at the same place in each.
    double all_x_lo = INFINITY, all_x_hi = -INFINITY;
    for (const Panel &panel : panels) {
        if (std::isfinite(panel.x_include)) {
            all_x_lo = std::min(all_x_lo, panel.x_include);
            all_x_hi = std::max(all_x_hi, panel.x_include);
        }
        for (const Series &s : panel.series)
            for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
                if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
                    all_x_lo = std::min(all_x_lo, s.x[i]);
                    all_x_hi = std::max(all_x_hi, s.x[i]);
                }
    }
    std::ostringstream out;
    out << header(width, height, title);
    for (size_t p = 0; p < panels.size(); ++p) {
        const Panel &panel = panels[p];
        const double ox = static_cast<double>((p % cols) * kChartWidth);
        const double oy = kTitleHeight + static_cast<double>((p / cols) * kChartHeight);

        double y_lo = INFINITY, y_hi = -INFINITY;
        for (const Series &s : panel.series)
            for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
                if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
                y_lo = std::min(y_lo, s.y[i]);
                y_hi = std::max(y_hi, s.y[i]);
            }
        for (const Reference &r : panel.references) {
            y_lo = std::min(y_lo, r.y);
            y_hi = std::max(y_hi, r.y);
        }
        Frame f;
        f.left = ox + kLeft;
        f.top = oy + kTop;
        f.width = kChartWidth - kLeft - kRight;
        f.height = kChartHeight - kTop - kBottom;
        f.x = nice_range(all_x_lo, all_x_hi, 6, true);
        if (std::isfinite(panel.y_min) && std::isfinite(panel.y_max) && panel.y_max > panel.y_min) {
            f.y.lo = panel.y_min;
            f.y.hi = panel.y_max;
            f.y.step = nice_step(f.y.hi - f.y.lo, 5);
        } else {
            f.y = nice_range(y_lo, y_hi, 5, true);
        }

        text(out, ox + kChartWidth / 2.0, oy + 22, panel.title, "middle", 13,
             "font-weight=\"bold\"");
        axes(out, f, panel.x_label, panel.y_label);
        clip_path(out, f, static_cast<int>(p));
        std::vector<LegendEntry> entries;
        Points points;
        for (const Series &series : panel.series) trace(f, series.x, series.y, points);
        for (const Reference &r : panel.references) trace(f, {f.x.lo, f.x.hi}, {r.y, r.y}, points);
        for (const Reference &r : panel.references) {
            const double y = f.py(r.y);
            out << "<line x1=\"" << coord(f.left) << "\" y1=\"" << coord(y) << "\" x2=\""
                << coord(f.left + f.width) << "\" y2=\"" << coord(y)
                << "\" stroke=\"#888888\" stroke-width=\"1\" stroke-dasharray=\"5,3\"/>\n";
        }
        for (const Series &s : panel.series) {
            polyline(out, f, s, static_cast<int>(p));
            entries.push_back({s.name, s.color, s.dashed, false, Marker::circle});
        }
        for (const Reference &r : panel.references)
            entries.push_back({r.label, "#888888", true, false, Marker::circle});
        if (entries.size() > 1) legend(out, f, entries, points);
    }
    out << "</svg>\n";
    return out.str();
}

std::vector<Panel> training_panels(const std::vector<LogRow> &rows) {
    std::vector<double> step;
    Series label{"label loss", "#1f77b4", {}, {}, false};
    Series domain{"domain loss", "#ff7f0e", {}, {}, false};
    Series entropy{"target entropy", "#2ca02c", {}, {}, true};
    Series domain_acc{"domain accuracy", "#9467bd", {}, {}, false};
    Series lambda{"λ", "#8c564b", {}, {}, false};
    Series lr{"learning rate", "#e377c2", {}, {}, false};
    Series eval{"evaluation accuracy", "#d62728", {}, {}, false};
    bool has_domain = false, has_entropy = false;
    for (const LogRow &r : rows) {
        const double x = static_cast<double>(r.step);
        label.x.push_back(x);
        label.y.push_back(r.label_loss);
        // A step without a target batch reports 0 for both (a real logistic
        // loss is never 0): no point rather than a drop to zero.
        const bool no_domain = r.domain_loss == 0 && r.domain_accuracy == 0;
        const double missing = std::numeric_limits<double>::quiet_NaN();
        domain.x.push_back(x);
        domain.y.push_back(no_domain ? missing : r.domain_loss);
        entropy.x.push_back(x);
        entropy.y.push_back(r.target_entropy);
        domain_acc.x.push_back(x);
        domain_acc.y.push_back(no_domain ? missing : r.domain_accuracy);
        lambda.x.push_back(x);
        lambda.y.push_back(r.lambda);
        lr.x.push_back(x);
        lr.y.push_back(r.lr);
        if (r.eval_accuracy >= 0) {
            eval.x.push_back(x);
            eval.y.push_back(r.eval_accuracy);
        }
        has_domain = has_domain || r.domain_loss != 0 || r.domain_accuracy != 0;
        has_entropy = has_entropy || r.target_entropy != 0;
    }
    std::vector<Panel> panels;
    Panel losses;
    losses.title = "Losses";
    losses.x_label = "step";
    losses.y_label = "loss (nats)";
    losses.series.push_back(label);
    if (has_domain) {
        losses.series.push_back(domain);
        losses.references.push_back({std::log(2.0), "ln 2 (chance)"});
    }
    if (has_entropy) losses.series.push_back(entropy);
    panels.push_back(losses);
    if (has_domain) {
        Panel acc;
        acc.title = "Domain classifier accuracy";
        acc.x_label = "step";
        acc.y_label = "accuracy";
        acc.series.push_back(domain_acc);
        acc.references.push_back({0.5, "chance"});
        acc.y_min = 0;
        acc.y_max = 1;
        panels.push_back(acc);
        Panel l;
        l.title = "Adaptation factor λ";
        l.x_label = "step";
        l.y_label = "λ";
        l.series.push_back(lambda);
        panels.push_back(l);
    }
    Panel rate;
    rate.title = "Learning rate";
    rate.x_label = "step";
    rate.y_label = "learning rate";
    rate.series.push_back(lr);
    panels.push_back(rate);
    if (!eval.x.empty()) {
        Panel e;
        e.title = "Evaluation accuracy";
        e.x_label = "step";
        e.y_label = "accuracy";
        e.series.push_back(eval);
        panels.push_back(e);
    }
    for (Panel &panel : panels) panel.x_include = 0; // steps count from 0
    return panels;
}

std::string training_curves(const std::string &title, const std::vector<LogRow> &rows) {
    return line_chart(title, training_panels(rows), 2);
}

std::string scatter(const std::string &title, const std::vector<ScatterPanel> &panels,
                    int columns) {
    int width = 0, height = 0, cols = 1;
    grid_size(panels.size(), columns, kScatterWidth, kScatterHeight, width, height, cols);
    std::ostringstream out;
    out << header(width, height, title);
    for (size_t p = 0; p < panels.size(); ++p) {
        const ScatterPanel &panel = panels[p];
        const double ox = static_cast<double>((p % cols) * kScatterWidth);
        const double oy = kTitleHeight + static_cast<double>((p / cols) * kScatterHeight);

        double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
        for (const Group &g : panel.groups)
            for (size_t i = 0; i + 1 < g.xy.size(); i += 2) {
                const double x = static_cast<double>(g.xy[i]), y = static_cast<double>(g.xy[i + 1]);
                if (!std::isfinite(x) || !std::isfinite(y)) continue;
                x_lo = std::min(x_lo, x);
                x_hi = std::max(x_hi, x);
                y_lo = std::min(y_lo, y);
                y_hi = std::max(y_hi, y);
            }
        Frame f;
        f.left = ox + kLeft;
        f.top = oy + kTop;
        f.width = kScatterWidth - kLeft - kRight;
        f.height = kScatterHeight - kTop - kBottom;
        if (!std::isfinite(x_lo)) {
            x_lo = y_lo = 0;
            x_hi = y_hi = 1;
        }
        // 5% margin so that no point sits on the frame.
        const double mx = std::max(x_hi - x_lo, 1e-9) * 0.05, my = std::max(y_hi - y_lo, 1e-9) * 0.05;
        x_lo -= mx;
        x_hi += mx;
        y_lo -= my;
        y_hi += my;
        if (panel.equal_aspect) { // widen the narrower axis to a common scale
            const double scale = std::max((x_hi - x_lo) / f.width, (y_hi - y_lo) / f.height);
            const double cx = (x_lo + x_hi) / 2, cy = (y_lo + y_hi) / 2;
            x_lo = cx - scale * f.width / 2;
            x_hi = cx + scale * f.width / 2;
            y_lo = cy - scale * f.height / 2;
            y_hi = cy + scale * f.height / 2;
        }
        f.x = nice_range(x_lo, x_hi, 6, false);
        f.y = nice_range(y_lo, y_hi, 6, false);
        // Ticks start at the first round value inside the range.
        Frame ticks = f;
        ticks.x.lo = std::ceil(f.x.lo / f.x.step - 1e-9) * f.x.step;
        ticks.y.lo = std::ceil(f.y.lo / f.y.step - 1e-9) * f.y.step;

        text(out, ox + kScatterWidth / 2.0, oy + 22, panel.title, "middle", 13,
             "font-weight=\"bold\"");
        // The frame and grid use f's mapping; the tick loop starts at round values.
        out << "<rect x=\"" << coord(f.left) << "\" y=\"" << coord(f.top) << "\" width=\""
            << coord(f.width) << "\" height=\"" << coord(f.height)
            << "\" fill=\"#ffffff\" stroke=\"#444444\"/>\n";
        for (double v = ticks.x.lo; v <= f.x.hi; v += f.x.step) {
            const double x = f.px(v);
            out << "<line x1=\"" << coord(x) << "\" y1=\"" << coord(f.top) << "\" x2=\"" << coord(x)
                << "\" y2=\"" << coord(f.top + f.height) << "\" stroke=\"#eeeeee\"/>\n";
            text(out, x, f.top + f.height + 15, tick_label(v, f.x.step), "middle", 10);
        }
        for (double v = ticks.y.lo; v <= f.y.hi; v += f.y.step) {
            const double y = f.py(v);
            out << "<line x1=\"" << coord(f.left) << "\" y1=\"" << coord(y) << "\" x2=\""
                << coord(f.left + f.width) << "\" y2=\"" << coord(y) << "\" stroke=\"#eeeeee\"/>\n";
            text(out, f.left - 5, y + 3.5, tick_label(v, f.y.step), "end", 10);
        }
        if (!panel.x_label.empty()) text(out, f.left + f.width / 2, f.top + f.height + 32, panel.x_label);
        if (!panel.y_label.empty()) {
            const double x = f.left - 48, y = f.top + f.height / 2;
            const std::string rotate = "transform=\"rotate(-90 " + coord(x) + " " + coord(y) + ")\"";
            text(out, x, y, panel.y_label, "middle", 11, rotate.c_str());
        }
        clip_path(out, f, static_cast<int>(p));

        std::vector<LegendEntry> entries;
        for (const Group &g : panel.groups) {
            const std::string color = escape(g.color);
            out << "<g clip-path=\"url(#clip" << p << ")\">\n";
            if (g.marker == Marker::cross || g.marker == Marker::plus) {
                out << "<path fill=\"none\" stroke=\"" << color
                    << "\" stroke-width=\"1.1\" stroke-opacity=\"0.7\" d=\"";
                for (size_t i = 0; i + 1 < g.xy.size(); i += 2) {
                    const double x = f.px(static_cast<double>(g.xy[i]));
                    const double y = f.py(static_cast<double>(g.xy[i + 1]));
                    if (!std::isfinite(x) || !std::isfinite(y)) continue;
                    if (g.marker == Marker::cross)
                        out << "M" << coord(x - 2.5) << " " << coord(y - 2.5) << "l5 5m0 -5l-5 5";
                    else
                        out << "M" << coord(x - 3) << " " << coord(y) << "h6m-3 -3v6";
                }
                out << "\"/>\n";
            } else {
                for (size_t i = 0; i + 1 < g.xy.size(); i += 2) {
                    const double x = f.px(static_cast<double>(g.xy[i]));
                    const double y = f.py(static_cast<double>(g.xy[i + 1]));
                    if (!std::isfinite(x) || !std::isfinite(y)) continue;
                    if (g.marker == Marker::square)
                        out << "<rect x=\"" << coord(x - 2) << "\" y=\"" << coord(y - 2)
                            << "\" width=\"4\" height=\"4\" fill=\"" << color
                            << "\" fill-opacity=\"0.55\"/>";
                    else
                        out << "<circle cx=\"" << coord(x) << "\" cy=\"" << coord(y)
                            << "\" r=\"2.2\" fill=\"" << color << "\" fill-opacity=\"0.55\"/>";
                }
                out << "\n";
            }
            out << "</g>\n";
            entries.push_back({g.name, g.color, false, true, g.marker});
        }
        for (const Series &s : panel.lines) {
            polyline(out, f, s, static_cast<int>(p));
            entries.push_back({s.name, s.color, s.dashed, false, Marker::circle});
        }
        Points points;
        for (const Group &g : panel.groups)
            for (size_t i = 0; i + 1 < g.xy.size(); i += 2)
                if (std::isfinite(g.xy[i]) && std::isfinite(g.xy[i + 1]))
                    points.emplace_back(f.px(static_cast<double>(g.xy[i])),
                                        f.py(static_cast<double>(g.xy[i + 1])));
        for (const Series &line : panel.lines) trace(f, line.x, line.y, points);
        legend(out, f, entries, points);
    }
    out << "</svg>\n";
    return out.str();
}

void write_file(const std::string &path, const std::string &content) {
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
        out << content;
        out.flush();
        if (!out) {
            std::remove(temporary.c_str());
            throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
        }
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        const std::string reason = std::strerror(errno);
        std::remove(temporary.c_str());
        throw std::runtime_error("cannot write " + path + ": " + reason);
    }
}

} // namespace dann::tool::svg
