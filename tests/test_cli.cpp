// The `dann` tool's building blocks (tools/dann): the option parser, PCA, the
// SVG pictures, the JSON writer, the progress line, the training log and the
// data loader. The tool itself runs end to end in the ctest cli_moons.
#include <doctest/doctest.h>

// Built only with the tool (DANN_BUILD_TOOLS), whose dann_tool library brings
// these headers.
#if __has_include("args.hpp")

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "args.hpp"
#include "data/idx.hpp"
#include "io.hpp"
#include "json.hpp"
#include "pca.hpp"
#include "progress.hpp"
#include "svg.hpp"
#include "train_log.hpp"

namespace {

using dann::tool::ArgParser;
using dann::tool::UsageError;

ArgParser moons_parser() {
    ArgParser args("dann data moons", "Writes the toy.");
    args.required("--out", "DIR", "output folder")
        .option("--samples", "N", "points per domain", "300")
        .option("--noise", "X", "noise", "0.05")
        .flag("--json", "JSON");
    return args;
}

// Parses a command line given as words; argv[0] is the command's name.
bool parse(ArgParser &args, std::vector<std::string> words) {
    words.insert(words.begin(), "moons");
    std::vector<char *> argv;
    for (std::string &w : words) argv.push_back(w.data());
    return args.parse(static_cast<int>(argv.size()), argv.data());
}

std::string usage_error(std::vector<std::string> words) {
    ArgParser args = moons_parser();
    try {
        parse(args, std::move(words));
    } catch (const UsageError &e) {
        return e.what();
    }
    return "";
}

size_t count(const std::string &text, const std::string &needle) {
    size_t n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
        ++n;
    return n;
}

// A small XML well-formedness check: every element closed in order, one
// root, attribute quotes balanced. Enough to catch a broken writer.
bool well_formed(const std::string &xml, std::string &why) {
    std::vector<std::string> open;
    int roots = 0;
    for (size_t pos = xml.find('<'); pos != std::string::npos; pos = xml.find('<', pos + 1)) {
        const size_t end = xml.find('>', pos);
        if (end == std::string::npos) {
            why = "unterminated tag";
            return false;
        }
        std::string tag = xml.substr(pos + 1, end - pos - 1);
        if (count(tag, "\"") % 2 != 0) {
            why = "unbalanced quotes in <" + tag + ">";
            return false;
        }
        if (!tag.empty() && tag[0] == '/') {
            const std::string name = tag.substr(1);
            if (open.empty() || open.back() != name) {
                why = "</" + name + "> closes " + (open.empty() ? "nothing" : "<" + open.back() + ">");
                return false;
            }
            open.pop_back();
        } else {
            const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
            if (open.empty()) ++roots;
            if (tag.back() != '/') open.push_back(name);
        }
        pos = end;
    }
    if (!open.empty()) {
        why = "<" + open.back() + "> never closed";
        return false;
    }
    if (roots != 1) {
        why = std::to_string(roots) + " root elements";
        return false;
    }
    return true;
}

std::vector<dann::tool::LogRow> sample_rows(bool with_eval) {
    std::vector<dann::tool::LogRow> rows;
    for (int i = 0; i <= 10; ++i) {
        dann::tool::LogRow r;
        r.step = i * 100;
        r.p = i / 10.0;
        r.lr = 0.01 / std::pow(1 + 10 * r.p, 0.75);
        r.lambda = 2 / (1 + std::exp(-10 * r.p)) - 1;
        r.label_loss = 2.3 * std::exp(-r.p * 3);
        r.domain_loss = 0.3 + 0.39 * r.p;
        r.domain_accuracy = 1 - 0.45 * r.p;
        r.eval_accuracy = with_eval ? 0.5 + 0.3 * r.p : -1;
        rows.push_back(r);
    }
    return rows;
}

std::string temp_path(const char *name) {
    const char *dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/dann_test_cli_" + std::to_string(getpid()) +
           "_" + name;
}

} // namespace

TEST_CASE("the option parser names an unknown option and suggests a close one") {
    CHECK(usage_error({"--out", "x", "--samplse", "3"}) ==
          "unknown option --samplse (did you mean --samples?)");
    CHECK(usage_error({"--out", "x", "--colour"}) == "unknown option --colour");
    CHECK(usage_error({"--out", "x", "stray"}) == "unexpected argument 'stray'");
}

TEST_CASE("the option parser reports a missing required option with its value name") {
    CHECK(usage_error({"--samples", "10"}) == "missing option --out DIR");
}

TEST_CASE("the option parser reports an option without its value") {
    CHECK(usage_error({"--out"}) == "--out needs a value (DIR)");
    CHECK(usage_error({"--out", "--json"}) == "--out needs a value (DIR)");
    CHECK(usage_error({"--out", "x", "--json=1"}) == "--json takes no value");
    CHECK(usage_error({"--out", "x", "--out", "y"}) == "--out is given more than once");
}

TEST_CASE("the option parser takes --name value and --name=value alike") {
    ArgParser a = moons_parser(), b = moons_parser();
    REQUIRE(parse(a, {"--out", "dir", "--samples", "12", "--json"}));
    REQUIRE(parse(b, {"--out=dir", "--samples=12", "--json"}));
    for (ArgParser *p : {&a, &b}) {
        CHECK(p->get("--out") == "dir");
        CHECK(p->get_int("--samples", 300, 2, 1000) == 12);
        CHECK(p->has("--json"));
        CHECK(p->get_double("--noise", 0.05, 0, 1) == 0.05);
    }
}

TEST_CASE("the option parser checks numbers for syntax and range, naming the option") {
    ArgParser args = moons_parser();
    REQUIRE(parse(args, {"--out", "d", "--samples", "12x", "--noise", "-1"}));
    CHECK_THROWS_WITH_AS(args.get_int("--samples", 0, 0, 100),
                         "--samples: expected an integer, got '12x'", UsageError);
    CHECK_THROWS_WITH_AS(args.get_double("--noise", 0, 0, 1), "--noise: -1 is outside [0, 1]",
                         UsageError);
    CHECK_THROWS_WITH_AS(args.get_choice("--out", "x", {"a", "b"}), "--out: 'd' is not one of a, b",
                         UsageError);
    CHECK_THROWS_AS(dann::tool::parse_int("99999999999999999999", "--steps"), UsageError);
    CHECK_THROWS_AS(dann::tool::parse_double("nan", "--lr"), UsageError);
}

TEST_CASE("--help is answered before any check, and the help lists every option") {
    ArgParser args = moons_parser();
    std::ostringstream printed;
    std::streambuf *const saved = std::cout.rdbuf(printed.rdbuf());
    const bool went_on = parse(args, {"--help", "--bogus"});
    std::cout.rdbuf(saved);
    CHECK_FALSE(went_on);
    const std::string help = args.help();
    CHECK(printed.str() == help);
    for (const char *option : {"--out DIR", "--samples N", "--noise X", "--json", "--help"})
        CHECK(help.find(option) != std::string::npos);
    CHECK(help.find("(default: 300)") != std::string::npos);
    CHECK(help.find("(required)") != std::string::npos);
}

TEST_CASE("PCA recovers the principal axes and variances of a known data set") {
    // Four points mean +- 3u and mean +- v: covariance (9 u u' + v v') / 2.
    const double u[3] = {0.6, 0.8, 0}, v[3] = {-0.8, 0.6, 0}, mean[3] = {1, 2, 3};
    std::vector<float> x;
    for (const double a : {3.0, -3.0})
        for (int i = 0; i < 3; ++i) x.push_back(static_cast<float>(mean[i] + a * u[i]));
    for (const double b : {1.0, -1.0})
        for (int i = 0; i < 3; ++i) x.push_back(static_cast<float>(mean[i] + b * v[i]));
    const dann::tool::Pca pca = dann::tool::fit_pca(x.data(), 4, 3, 2);
    REQUIRE(pca.count() == 2);
    CHECK(pca.variances[0] == doctest::Approx(4.5).epsilon(1e-6));
    CHECK(pca.variances[1] == doctest::Approx(0.5).epsilon(1e-6));
    // Signs: the largest entry of each component is positive.
    CHECK(pca.components[0] == doctest::Approx(0.6).epsilon(1e-6));
    CHECK(pca.components[1] == doctest::Approx(0.8).epsilon(1e-6));
    CHECK(pca.components[3] == doctest::Approx(0.8).epsilon(1e-6));
    CHECK(pca.components[4] == doctest::Approx(-0.6).epsilon(1e-6));
    CHECK(std::fabs(pca.components[2]) < 1e-6);
    const std::vector<float> p = dann::tool::pca_project(pca, x.data(), 4);
    CHECK(p[0] == doctest::Approx(3).epsilon(1e-5));
    CHECK(std::fabs(p[1]) < 1e-5);
    CHECK(std::fabs(p[4]) < 1e-5);
    CHECK(p[5] == doctest::Approx(-1).epsilon(1e-5)); // mean + v lies at -1 along (0.8, -0.6)
}

TEST_CASE("PCA of data without spread gives orthonormal directions of variance zero") {
    const std::vector<float> x(5 * 4, 2.5f);
    const dann::tool::Pca pca = dann::tool::fit_pca(x.data(), 5, 4, 2);
    CHECK(pca.variances[0] == 0);
    CHECK(pca.variances[1] == 0);
    double dot = 0, n0 = 0, n1 = 0;
    for (int i = 0; i < 4; ++i) {
        dot += pca.components[i] * pca.components[4 + i];
        n0 += pca.components[i] * pca.components[i];
        n1 += pca.components[4 + i] * pca.components[4 + i];
    }
    CHECK(std::fabs(dot) < 1e-9);
    CHECK(n0 == doctest::Approx(1));
    CHECK(n1 == doctest::Approx(1));
    CHECK_THROWS(dann::tool::fit_pca(x.data(), 0, 4, 2));
}

TEST_CASE("the training-curve SVG is well-formed with one polyline per series") {
    const std::string svg = dann::tool::svg::training_curves("a <run> & \"more\"", sample_rows(true));
    CHECK(svg.rfind("<svg ", 0) == 0);
    CHECK(svg.size() > 7);
    CHECK(svg.compare(svg.size() - 7, 7, "</svg>\n") == 0);
    std::string why;
    CHECK_MESSAGE(well_formed(svg, why), why);
    // label loss, domain loss, domain accuracy, lambda, learning rate, evaluation accuracy
    CHECK(count(svg, "<polyline") == 6);
    CHECK(svg.find("a &lt;run&gt; &amp; &quot;more&quot;") != std::string::npos);
    CHECK(svg.find("Evaluation accuracy") != std::string::npos);
}

TEST_CASE("a source-only log has no domain panels and no evaluation panel without evaluation") {
    std::vector<dann::tool::LogRow> rows = sample_rows(false);
    for (auto &r : rows) r.domain_loss = r.domain_accuracy = 0;
    const auto panels = dann::tool::svg::training_panels(rows);
    CHECK(panels.size() == 2); // losses and learning rate
    const std::string svg = dann::tool::svg::line_chart("t", panels);
    std::string why;
    CHECK_MESSAGE(well_formed(svg, why), why);
    CHECK(count(svg, "<polyline") == 2);
}

TEST_CASE("the scatter SVG is well-formed and draws every point") {
    namespace svg = dann::tool::svg;
    svg::ScatterPanel before, after;
    before.title = "before";
    after.title = "after";
    svg::Group source{"source", svg::source_color(), {0, 0, 1, 1, 2, 0.5f}, svg::Marker::circle};
    svg::Group target{"target", svg::target_color(), {3, 3, 4, 2}, svg::Marker::cross};
    before.groups = {source, target};
    after.groups = {source, target};
    const std::string text = svg::scatter("features", {before, after});
    CHECK(text.rfind("<svg ", 0) == 0);
    std::string why;
    CHECK_MESSAGE(well_formed(text, why), why);
    // Three source circles per panel plus one legend circle each.
    CHECK(count(text, "<circle") == 2 * (3 + 1));
}

TEST_CASE("JSON text escapes strings and writes non-finite numbers as null") {
    using dann::tool::json::Value;
    Value v = Value::object();
    v.add("name", "a\"b\\c\n").add("n", size_t{3}).add("x", 0.1).add("bad", std::nan(""))
        .add("ok", true).add("list", Value::array().push(1).push(2.5));
    CHECK(v.str() ==
          "{\"name\": \"a\\\"b\\\\c\\n\", \"n\": 3, \"x\": 0.1, \"bad\": null, \"ok\": true, "
          "\"list\": [1, 2.5]}");
}

TEST_CASE("the progress line shows count, percent, elapsed time and ETA") {
    dann::tool::Progress progress("train", 200, "steps", false);
    const std::string line = progress.line(50, 75.0, 3725.0);
    CHECK(line == "train 50/200 steps  25.0%  elapsed 1:15  ETA 1:02:05");
    CHECK(dann::tool::Progress::format_duration(4.25) == "4.2s");
}

TEST_CASE("the training log CSV reads back what it wrote") {
    const std::string path = temp_path("log.csv");
    const auto rows = sample_rows(true);
    {
        dann::tool::CsvLog log(path, false);
        for (size_t i = 0; i < 6; ++i) log.add(rows[i]);
    }
    // A resumed run from step 300 drops the rows past its checkpoint.
    {
        dann::tool::CsvLog log(path, true);
        for (size_t i = 4; i < rows.size(); ++i) log.add(rows[i]);
        CHECK(log.rows().size() == rows.size());
    }
    const auto back = dann::tool::read_log_csv(path);
    REQUIRE(back.size() == rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        CHECK(back[i].step == rows[i].step);
        CHECK(back[i].lr == rows[i].lr);
        CHECK(back[i].eval_accuracy == rows[i].eval_accuracy);
    }
    std::remove(path.c_str());
}

TEST_CASE("IDX samples load as images or features and are checked against a model") {
    namespace data = dann::data;
    const std::string features = temp_path("features"), images = temp_path("images"),
                      labels = temp_path("labels");
    data::write_idx(features, data::make_idx_f32({3, 2}, {0, 1, 2, 3, 4, 5}));
    data::write_idx(images, data::make_idx_u8({2, 4, 5}, std::vector<uint8_t>(40, 7)));
    data::write_idx(labels, data::make_idx_u8({3}, {0, 1, 1}));

    const dann::tool::Dataset f = dann::tool::load_dataset(features, labels);
    CHECK(f.format == DANN_INPUT_F32_NCHW);
    CHECK(f.n == 3);
    CHECK(f.channels == 2);
    CHECK(f.labels == std::vector<int32_t>{0, 1, 1});
    const dann::tool::Dataset im = dann::tool::load_samples(images);
    CHECK(im.format == DANN_INPUT_U8_HWC);
    CHECK(im.height == 4);
    CHECK(im.width == 5);
    CHECK(im.channels == 1);
    CHECK_THROWS_WITH(dann::tool::load_dataset(images, labels), (labels + ": 3 labels for 2 samples").c_str());
    CHECK_THROWS(dann::tool::load_samples(labels));

    dann_model_info mlp{};
    mlp.in_channels = 2;
    mlp.in_height = mlp.in_width = 1;
    mlp.num_classes = 2;
    CHECK_NOTHROW(dann::tool::check_input(mlp, f, features));
    CHECK_THROWS_WITH(dann::tool::check_input(mlp, im, images),
                      (images + " holds 2 images 4x5x1 (uint8), but the model expects 2 float features").c_str());
    mlp.num_classes = 1;
    CHECK_THROWS(dann::tool::check_labels(f, 1, labels));
    for (const std::string &p : {features, images, labels}) std::remove(p.c_str());
}

#endif // __has_include("args.hpp")
