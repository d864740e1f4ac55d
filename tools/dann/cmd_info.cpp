// dann info: what a model file holds.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "inference.hpp"
#include "io.hpp"
#include "io/model_file.hpp"
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

const char *format_name(dann_input_format f) {
    return f == DANN_INPUT_U8_HWC ? "U8_HWC" : f == DANN_INPUT_F32_NCHW ? "F32_NCHW" : "F32_NHWC";
}

struct Replay {
    dann_replay_info info{};
    std::vector<size_t> class_counts; // per class
};

Replay replay_of(const dann_model *model, int classes) {
    Replay r;
    check_dann(dann_model_replay_info(model, &r.info), "cannot read the replay set");
    if (r.info.n == 0) return r;
    std::vector<int32_t> labels(r.info.n);
    const size_t sample_bytes = size_t(r.info.channels) * size_t(r.info.height) * size_t(r.info.width) *
                                (r.info.format == DANN_INPUT_U8_HWC ? 1 : sizeof(float));
    std::vector<uint8_t> samples(r.info.n * sample_bytes);
    check_dann(dann_model_get_replay(model, 0, r.info.n, samples.data(), samples.size(), labels.data()),
               "cannot read the replay set");
    r.class_counts.assign(static_cast<size_t>(classes), 0);
    for (int32_t label : labels) ++r.class_counts[static_cast<size_t>(label)];
    return r;
}

bool has_optimizer(const ModelFileLayout &layout) {
    for (const ModelSection &s : layout.sections)
        if (s.tag == "OPTM" || (layout.version == 1 && (s.flags & 1))) return true;
    return false;
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
    // Read after the model loaded, so the structure is known to be sound.
    const ModelFileLayout layout = read_model_file_layout(path);
    const bool optimizer = has_optimizer(layout);
    const Replay replay = replay_of(model.get(), mi.num_classes);

    if (args.has("--json")) {
        json::Value sections = json::Value::array();
        for (const ModelSection &s : layout.sections)
            sections.push(json::Value::object()
                              .add("tag", s.tag)
                              .add("offset", s.offset)
                              .add("bytes", s.body_bytes)
                              .add("crc", s.crc)
                              .add("crc_ok", s.crc_ok)
                              .add("optional", layout.version >= 2 && (s.flags & 1) != 0));
        json::Value replay_json = json::Value::object();
        if (replay.info.n > 0) {
            json::Value counts = json::Value::array();
            for (size_t c : replay.class_counts) counts.push(c);
            replay_json.add("n", replay.info.n)
                .add("format", format_name(replay.info.format))
                .add("channels", replay.info.channels)
                .add("height", replay.info.height)
                .add("width", replay.info.width)
                .add("bytes", replay.info.bytes)
                .add("class_counts", counts);
        }
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
                                .add("format_version", layout.version)
                                .add("file_bytes", layout.file_bytes)
                                .add("sections", sections)
                                .add("optimizer", optimizer)
                                .raw("replay", replay.info.n > 0 ? replay_json.str() : "null")
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
    std::printf("weights     %zu trainable, in %zu parameters\n", mi.n_weights, mi.n_params);
    std::printf("optimizer   %s\n", optimizer ? "state present (a checkpoint)" : "none");
    if (replay.info.n > 0) {
        std::printf("replay      %zu samples, %s %dx%dx%d, %zu bytes\n", replay.info.n,
                    format_name(replay.info.format), replay.info.channels, replay.info.height,
                    replay.info.width, replay.info.bytes);
        std::string histogram;
        for (size_t c = 0; c < replay.class_counts.size(); ++c)
            histogram += (c ? "  " : "") + std::to_string(c) + ":" + std::to_string(replay.class_counts[c]);
        std::printf("            per class  %s\n", histogram.c_str());
    } else {
        std::printf("replay      none\n");
    }
    std::printf("file        format version %u, %llu bytes\n", layout.version,
                static_cast<unsigned long long>(layout.file_bytes));
    for (const ModelSection &s : layout.sections)
        std::printf("            %-8s %10llu bytes  %s%s\n", s.tag.c_str(),
                    static_cast<unsigned long long>(s.body_bytes), s.crc_ok ? "crc ok" : "CRC MISMATCH",
                    layout.version >= 2 && (s.flags & 1) ? "  (optional)" : "");
    std::printf("\n");
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
