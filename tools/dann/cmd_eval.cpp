// dann eval: accuracy of a saved model on labelled samples.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "inference.hpp"
#include "io.hpp"
#include "json.hpp"

namespace dann::tool {

namespace {

constexpr const char *kCommand = "dann eval";

int eval(int argc, char **argv) {
    ArgParser args(kCommand, "Accuracy of a model on labelled samples.");
    args.required("--model", "MODEL", "a model file (from dann train) or a checkpoint")
        .required("--images", "F", "samples (IDX: uint8 images or float32 features)")
        .required("--labels", "F", "their labels (IDX uint8)")
        .option("--domain", "D",
                "batch-norm statistics to use with per-domain batch norm: source | target",
                "target")
        .option("--batch", "N", "samples per inference call", "256")
        .option("--threads", "T", "CPU threads (0: OpenMP's default)", "0")
        .option("--int8", "F",
                "predict in int8 (CPUs with VNNI or AMX), calibrated on these unlabelled "
                "samples (IDX, same kind as --images; e.g. target training images)")
        .option("--int8-count", "N", "calibrate on the first N samples of --int8", "1000")
        .flag("--per-class", "also report the accuracy of each class")
        .flag("--json", "print {\"accuracy\": A, \"n\": N} as the last line of stdout");
    if (!args.parse(argc, argv)) return 0;
    const std::string domain = args.get_choice("--domain", "target", {"source", "target"});
    PredictOptions options;
    options.domain = domain == "source" ? DANN_DOMAIN_SOURCE : DANN_DOMAIN_TARGET;
    options.batch = static_cast<size_t>(args.get_int("--batch", 256, 1, 1 << 20));
    options.label = "eval";
    const int threads = static_cast<int>(args.get_int("--threads", 0, 0, 4096));

    const std::string model_path = args.get("--model"), images = args.get("--images");
    ModelPtr model = load_model(model_path);
    check_dann(dann_model_set_threads(model.get(), threads), "cannot set the thread count");
    const Dataset data = load_dataset(images, args.get("--labels"));
    if (data.n == 0) throw CommandError(images + " holds no samples");
    const dann_model_info info = model_info(model.get());
    check_input(info, data, images);
    check_labels(data, info.num_classes, args.get("--labels"));
    Dataset calibration;
    if (args.has("--int8")) {
        if (!dann_precision_supported(DANN_PRECISION_INT8))
            throw UsageError("--int8: this CPU has no int8 dot products (AVX512-VNNI, AVX-VNNI or "
                             "AMX), or ONEDNN_MAX_CPU_ISA excludes them");
        const std::string path = args.get("--int8");
        calibration = load_dataset(path, "");
        const size_t count = static_cast<size_t>(args.get_int("--int8-count", 1000, 1, 1 << 30));
        if (calibration.n == 0) throw CommandError(path + " holds no samples");
        calibration.n = std::min(calibration.n, count);
        options.int8_calibration = &calibration;
    }
    const Predictions p = predict_all(model.get(), data, options, images);

    size_t correct = 0;
    std::vector<size_t> class_total(static_cast<size_t>(p.classes)), class_correct(class_total.size());
    for (size_t i = 0; i < data.n; ++i) {
        const auto label = static_cast<size_t>(data.labels[i]);
        ++class_total[label];
        if (p.argmax[i] == data.labels[i]) {
            ++correct;
            ++class_correct[label];
        }
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(data.n);
    const bool per_class = args.has("--per-class");
    if (args.has("--json")) {
        json::Value result = json::Value::object();
        result.add("accuracy", accuracy).add("n", data.n);
        if (per_class) {
            json::Value list = json::Value::array();
            for (size_t c = 0; c < class_total.size(); ++c)
                if (class_total[c])
                    list.push(static_cast<double>(class_correct[c]) /
                              static_cast<double>(class_total[c]));
                else
                    list.raw("", "null");
            result.add("correct", correct).add("domain", domain).add("per_class", list);
        }
        std::printf("%s\n", result.str().c_str());
    } else {
        std::printf("accuracy %.4f (%zu of %zu correct, %s statistics)\n", accuracy, correct, data.n,
                    domain.c_str());
        if (per_class)
            for (size_t c = 0; c < class_total.size(); ++c)
                if (class_total[c])
                    std::printf("class %3zu  %.4f (%zu of %zu)\n", c,
                                static_cast<double>(class_correct[c]) /
                                    static_cast<double>(class_total[c]),
                                class_correct[c], class_total[c]);
    }
    return 0;
}

} // namespace

int cmd_eval(int argc, char **argv) {
    return run_command(kCommand, [&] { return eval(argc, argv); });
}

} // namespace dann::tool
