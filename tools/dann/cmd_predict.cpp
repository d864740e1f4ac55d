// dann predict: predicted labels (and probabilities) of a saved model.
#include <cstdio>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "data/idx.hpp"
#include "inference.hpp"
#include "io.hpp"
#include "json.hpp"

namespace dann::tool {

namespace {

constexpr const char *kCommand = "dann predict";

int predict(int argc, char **argv) {
    ArgParser args(kCommand,
                   "Predicted labels for samples: written as a uint8 IDX file with --out, or\n"
                   "printed one per line.");
    args.required("--model", "MODEL", "a model file (from dann train) or a checkpoint")
        .required("--images", "F", "samples (IDX: uint8 images or float32 features)")
        .option("--out", "IDX", "write the labels as uint8 IDX (N) (.gz: compressed)")
        .option("--probs", "IDX", "write the class probabilities as float32 IDX (N, classes)")
        .option("--domain-probs", "IDX",
                "write the domain head's P(target) as float32 IDX (N): a drift score")
        .option("--domain", "D",
                "batch-norm statistics to use with per-domain batch norm: source | target",
                "target")
        .option("--batch", "N", "samples per inference call", "256")
        .option("--threads", "T", "CPU threads (0: OpenMP's default)", "0")
        .flag("--json", "print a JSON summary as the last line of stdout")
        .epilog("Without --out, --probs or --domain-probs the labels are printed, one per line.");
    if (!args.parse(argc, argv)) return 0;
    const std::string domain = args.get_choice("--domain", "target", {"source", "target"});
    PredictOptions options;
    options.domain = domain == "source" ? DANN_DOMAIN_SOURCE : DANN_DOMAIN_TARGET;
    options.batch = static_cast<size_t>(args.get_int("--batch", 256, 1, 1 << 20));
    options.domain_probs = args.has("--domain-probs");
    const int threads = static_cast<int>(args.get_int("--threads", 0, 0, 4096));

    const std::string images = args.get("--images");
    ModelPtr model = load_model(args.get("--model"));
    check_dann(dann_model_set_threads(model.get(), threads), "cannot set the thread count");
    const Dataset data = load_samples(images);
    const Predictions p = predict_all(model.get(), data, options, images);
    const auto n = static_cast<uint32_t>(p.n);

    if (args.has("--out")) {
        if (p.classes > 256)
            throw CommandError("--out: " + std::to_string(p.classes) +
                               " classes do not fit uint8 labels; use --probs");
        data::write_idx(args.get("--out"), data::make_idx_u8({n}, p.labels));
    }
    if (args.has("--probs"))
        data::write_idx(args.get("--probs"),
                        data::make_idx_f32({n, static_cast<uint32_t>(p.classes)}, p.probs));
    if (args.has("--domain-probs"))
        data::write_idx(args.get("--domain-probs"), data::make_idx_f32({n}, p.domain_probs));

    const bool print_labels = !args.has("--out") && !args.has("--probs") && !args.has("--domain-probs");
    if (print_labels) {
        std::string text;
        text.reserve(p.n * 3);
        for (const int32_t label : p.argmax) text += std::to_string(label) + "\n";
        std::fputs(text.c_str(), stdout);
    }
    if (args.has("--json")) {
        std::vector<size_t> counts(static_cast<size_t>(p.classes));
        for (const int32_t label : p.argmax) ++counts[static_cast<size_t>(label)];
        json::Value list = json::Value::array();
        for (const size_t c : counts) list.push(c);
        json::Value result = json::Value::object();
        result.add("n", p.n).add("classes", p.classes).add("domain", domain).add("counts", list);
        for (const char *key : {"--out", "--probs", "--domain-probs"}) {
            std::string name = key + 2;
            for (char &c : name)
                if (c == '-') c = '_';
            if (args.has(key))
                result.add(name, args.get(key));
            else
                result.null(name);
        }
        if (options.domain_probs) {
            double mean = 0;
            for (const float v : p.domain_probs) mean += static_cast<double>(v);
            result.add("mean_domain_prob", p.n ? mean / static_cast<double>(p.n) : 0.0);
        }
        std::printf("%s\n", result.str().c_str());
    }
    return 0;
}

} // namespace

int cmd_predict(int argc, char **argv) {
    return run_command(kCommand, [&] { return predict(argc, argv); });
}

} // namespace dann::tool
