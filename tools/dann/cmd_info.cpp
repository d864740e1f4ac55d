// dann info: what a model file holds.
#include <algorithm>
#include <cstdio>
#include <string>

#include "args.hpp"
#include "commands.hpp"
#include "inference.hpp"
#include "io.hpp"
#include "json.hpp"

namespace dann::tool {

namespace {

constexpr const char *kCommand = "dann info";

std::string shape_text(const dann_param_info &p) {
    std::string text;
    for (int d = 0; d < p.ndim; ++d) text += (d ? "x" : "") + std::to_string(p.shape[d]);
    return text;
}

bool ends_with(const std::string &text, const std::string &suffix) {
    return text.size() >= suffix.size() &&
           text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "per-domain" (source and target running statistics), "shared" or "none".
std::string batchnorm_kind(const dann_model *model) {
    std::string kind = "none";
    for (size_t i = 0; i < dann_model_param_count(model); ++i) {
        dann_param_info p{};
        if (dann_model_param_info(model, i, &p) != DANN_OK) continue;
        if (ends_with(p.name, "running_mean_target")) return "per-domain";
        if (ends_with(p.name, "running_mean")) kind = "shared";
    }
    return kind;
}

int info(int argc, char **argv) {
    ArgParser args(kCommand, "The architecture and parameters of a model file (or checkpoint).");
    args.required("--model", "MODEL", "a model file")
        .flag("--json", "print the summary as JSON on the last line of stdout");
    if (!args.parse(argc, argv)) return 0;
    const std::string path = args.get("--model");
    ModelPtr model = load_model(path);
    const dann_model_info mi = model_info(model.get());
    const size_t count = dann_model_param_count(model.get());

    if (args.has("--json")) {
        json::Value params = json::Value::array();
        for (size_t i = 0; i < count; ++i) {
            dann_param_info p{};
            check_dann(dann_model_param_info(model.get(), i, &p), "cannot read parameter " + std::to_string(i));
            json::Value shape = json::Value::array();
            for (int d = 0; d < p.ndim; ++d) shape.push(p.shape[d]);
            params.push(json::Value::object()
                            .add("name", p.name)
                            .add("shape", shape)
                            .add("numel", p.numel)
                            .add("trainable", p.trainable != 0));
        }
        json::Value input = json::Value::object();
        input.add("channels", mi.in_channels).add("height", mi.in_height).add("width", mi.in_width);
        std::printf("%s\n", json::Value::object()
                                .add("model", path)
                                .add("input", input)
                                .add("classes", mi.num_classes)
                                .add("feature_size", mi.feature_size)
                                .add("batchnorm", batchnorm_kind(model.get()))
                                .add("n_params", mi.n_params)
                                .add("n_weights", mi.n_weights)
                                .add("params", params)
                                .str()
                                .c_str());
        return 0;
    }
    std::printf("model       %s\n", path.c_str());
    if (mi.in_height == 1 && mi.in_width == 1)
        std::printf("input       %d float features\n", mi.in_channels);
    else
        std::printf("input       %d x %d x %d (channels x height x width)\n", mi.in_channels,
                    mi.in_height, mi.in_width);
    std::printf("classes     %d\n", mi.num_classes);
    std::printf("features    %d\n", mi.feature_size);
    const std::string batchnorm = batchnorm_kind(model.get());
    if (batchnorm == "per-domain")
        std::printf("batch norm  per domain: source and target statistics (eval and predict\n"
                    "            use the target's unless --domain source)\n");
    else if (batchnorm == "shared")
        std::printf("batch norm  one set of statistics for both domains\n");
    std::printf("weights     %zu trainable, in %zu parameters\n\n", mi.n_weights, mi.n_params);
    size_t width = 4;
    for (size_t i = 0; i < count; ++i) {
        dann_param_info p{};
        check_dann(dann_model_param_info(model.get(), i, &p), "cannot read parameter " + std::to_string(i));
        width = std::max(width, std::string(p.name).size());
    }
    std::printf("%-*s  %-14s %10s\n", static_cast<int>(width), "name", "shape", "count");
    for (size_t i = 0; i < count; ++i) {
        dann_param_info p{};
        check_dann(dann_model_param_info(model.get(), i, &p), "cannot read parameter " + std::to_string(i));
        std::printf("%-*s  %-14s %10zu%s\n", static_cast<int>(width), p.name, shape_text(p).c_str(),
                    p.numel, p.trainable ? "" : "  (buffer)");
    }
    return 0;
}

} // namespace

int cmd_info(int argc, char **argv) {
    return run_command(kCommand, [&] { return info(argc, argv); });
}

} // namespace dann::tool
