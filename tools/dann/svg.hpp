// SVG pictures written by the tool: line charts (the training curves) and
// scatter plots (features projected to 2-D, coloured by domain). Plain SVG 1.1
// text with no scripts or external references, readable in any browser.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "recipe.hpp"

namespace dann::tool::svg {

// One line of a chart. Non-finite points are skipped. Each series becomes one
// <polyline> (and a dot per point when it has a single point).
struct Series {
    std::string name;  // legend text
    std::string color; // any SVG colour, e.g. "#1f77b4"
    std::vector<double> x, y;
    bool dashed = false;
};

// A horizontal reference line (e.g. ln 2 for the domain loss).
struct Reference {
    double y = 0;
    std::string label;
};

struct Panel {
    std::string title, x_label, y_label;
    std::vector<Series> series;
    std::vector<Reference> references;
    // A value the x axis must include (e.g. step 0), when finite.
    double x_include = std::numeric_limits<double>::quiet_NaN();
    // Fixed y range when both are finite; otherwise fitted to the data.
    double y_min = std::numeric_limits<double>::quiet_NaN();
    double y_max = std::numeric_limits<double>::quiet_NaN();
};

// Panels laid out in a grid of `columns`, under a title.
std::string line_chart(const std::string &title, const std::vector<Panel> &panels,
                       int columns = 2);

// The training curves of a run: losses (with ln 2 marked), domain accuracy
// (with chance marked), lambda, learning rate, and the evaluation accuracy
// when the rows have it. Panels without data (domain panels of a source-only
// run) are left out.
std::vector<Panel> training_panels(const std::vector<LogRow> &rows);
std::string training_curves(const std::string &title, const std::vector<LogRow> &rows);

// One group of points in a scatter panel, drawn with one marker shape.
enum class Marker { circle, square, cross, plus };

struct Group {
    std::string name, color;
    std::vector<float> xy; // x0, y0, x1, y1, ...
    Marker marker = Marker::circle;
};

struct ScatterPanel {
    std::string title, x_label, y_label;
    std::vector<Group> groups;
    std::vector<Series> lines; // drawn over the points (e.g. a decision boundary)
    bool equal_aspect = true;  // same scale on both axes (a PCA plane)
};

// Panels side by side (`columns` per row), under a title.
std::string scatter(const std::string &title, const std::vector<ScatterPanel> &panels,
                    int columns = 2);

// The colours used for the two domains everywhere.
inline const char *source_color() { return "#1f77b4"; }
inline const char *target_color() { return "#d62728"; }

// Escapes &, <, >, " and ' for SVG text and attributes.
std::string escape(const std::string &text);

// Writes `text` to `path` through a temporary file and a rename, so that a
// reader never sees half a picture. Throws std::runtime_error naming the path.
void write_file(const std::string &path, const std::string &text);

} // namespace dann::tool::svg
