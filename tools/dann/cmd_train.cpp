// dann train: loads the data, runs a recipe (recipe.hpp), saves the model, and
// writes the training log and its plot.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "args.hpp"
#include "commands.hpp"
#include "core/rng.hpp"
#include "io.hpp"
#include "json.hpp"
#include "progress.hpp"
#include "recipe.hpp"
#include "svg.hpp"
#include "train_log.hpp"

namespace dann::tool {

namespace {

constexpr const char *kCommand = "dann train";

bool file_exists(const std::string &path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

// mnist | svhn | gtsrb | mlp:H[,H...][:relu|:sigmoid]; throws UsageError otherwise.
void check_arch(const std::string &arch) {
    if (arch == "mnist" || arch == "svhn" || arch == "gtsrb") return;
    if (arch.compare(0, 4, "mlp:") == 0) {
        std::string list = arch.substr(4);
        for (const std::string suffix : {":relu", ":sigmoid"})
            if (list.size() > suffix.size() &&
                list.compare(list.size() - suffix.size(), suffix.size(), suffix) == 0)
                list.resize(list.size() - suffix.size());
        size_t begin = 0;
        while (begin <= list.size()) {
            size_t end = list.find(',', begin);
            if (end == std::string::npos) end = list.size();
            const int64_t units = parse_int(list.substr(begin, end - begin), "--arch " + arch);
            if (units < 1 || units > 65536)
                throw UsageError("--arch " + arch + ": hidden layer sizes must be in [1, 65536]");
            begin = end + 1;
        }
        return;
    }
    throw UsageError("--arch: '" + arch + "' is not one of mnist, svhn, gtsrb, mlp:H[,H...]");
}

// The preset networks read images of one size; catching a mismatch here names
// the file instead of a layer.
void check_arch_input(const std::string &arch, const Dataset &d, const std::string &what) {
    int side = 0;
    if (arch == "mnist") side = 28;
    if (arch == "svhn") side = 32;
    if (arch == "gtsrb") side = 40;
    if (side == 0) return;
    if (d.format != DANN_INPUT_U8_HWC || d.height != side || d.width != side ||
        (d.channels != 1 && d.channels != 3))
        throw CommandError(what + " holds " + describe(d) + ", but --arch " + arch + " reads " +
                           std::to_string(side) + "x" + std::to_string(side) +
                           " uint8 images with 1 or 3 channels");
}

// Every data set of a run holds the same kind of sample as the source.
void check_same_kind(const Dataset &source, const Dataset &other, const std::string &what) {
    const bool images = source.format == DANN_INPUT_U8_HWC;
    bool same = other.format == source.format;
    if (same && images)
        same = other.height == source.height && other.width == source.width &&
               (other.channels == source.channels || other.channels == 1 || source.channels == 1);
    if (same && !images) same = other.channels == source.channels;
    if (!same)
        throw CommandError(what + " holds " + describe(other) + ", unlike the source data (" +
                           describe(source) + ")");
}

json::Value row_json(const LogRow &r) {
    json::Value v = json::Value::object();
    v.add("step", r.step)
        .add("lr", r.lr)
        .add("lambda", r.lambda)
        .add("label_loss", r.label_loss)
        .add("domain_loss", r.domain_loss)
        .add("domain_accuracy", r.domain_accuracy)
        .add("target_entropy", r.target_entropy);
    if (r.eval_accuracy >= 0)
        v.add("eval_accuracy", r.eval_accuracy);
    else
        v.null("eval_accuracy");
    return v;
}

const char *mode_name(Mode m) {
    return m == Mode::dann ? "dann" : m == Mode::source_only ? "source-only" : "target-oracle";
}

int train(int argc, char **argv) {
    ArgParser args(kCommand,
                   "Trains a model: DANN on labelled source and unlabelled target data, or the\n"
                   "two reference rows (source only; trained on labelled target data).");
    args.required("--arch", "ARCH", "mnist | svhn | gtsrb | mlp:H[,H...][:relu] (hidden layer sizes; sigmoid units unless :relu)")
        .required("--source-images", "F", "source samples (IDX: uint8 images or float32 features)")
        .required("--source-labels", "F", "source labels (IDX uint8)")
        .option("--target-images", "F", "unlabelled target samples (required by dann, target-oracle)")
        .option("--target-labels", "F", "target labels; read only by --mode target-oracle")
        .option("--mode", "MODE", "dann | source-only | target-oracle", "dann")
        .option("--recipe", "R", "paper (the papers' SGD recipe) | best (tuned default)", "best")
        .option("--steps", "N", "training steps (default: 10000; 6000 for mlp with the best recipe)")
        .option("--batch", "N", "samples per domain and step", "64")
        .option("--seed", "S", "seed of the weights, batches and dropout", "1")
        .option("--threads", "T", "CPU threads (0: OpenMP's default)", "1")
        .option("--lr", "X", "initial learning rate, overriding the recipe's")
        .option("--lambda", "X", "final adaptation factor λ, overriding the recipe's")
        .option("--entropy-weight", "X", "target entropy weight, overriding the recipe's")
        .option("--candidates", "N",
                "shallow networks, best recipe: candidates trained, the one with the best "
                "label-free score kept (default: 16)")
        .option("--self-train-rounds", "R",
                "shallow networks, best recipe: self-training rounds per candidate (default: 20)")
        .option("--precision", "P",
                "f32 | bf16 (bf16 products with f32 weights; CPUs with AVX512-BF16 or AMX)",
                "f32")
        .flag("--deterministic", "the same result on every run with the same seed (may be slower)")
        .required("--out", "MODEL", "where to save the trained model")
        .option("--log", "CSV", "write the training log (one row every --log-every steps)")
        .option("--log-every", "N", "steps between log rows", "100")
        .option("--plot", "SVG", "write the training curves as an SVG picture")
        .option("--eval-images", "F", "labelled evaluation samples, scored at every log row")
        .option("--eval-labels", "F", "labels of --eval-images")
        .option("--eval-domain", "D", "batch-norm statistics for evaluation: source | target",
                "target")
        .option("--replay", "K",
                "store K labelled source samples (a seeded random subset) in the model, for "
                "adaptation on the device",
                "0")
        .option("--checkpoint", "PATH", "write a checkpoint (model + optimizer) here")
        .option("--checkpoint-every", "N", "steps between checkpoints", "1000")
        .option("--resume", "PATH", "continue from this checkpoint (--checkpoint defaults to it)")
        .flag("--quiet", "no progress line")
        .flag("--json", "print a JSON summary as the last line of stdout")
        .epilog("Target labels are read only by --mode target-oracle, which exists to give the\n"
                "reference row; evaluation labels are read only to score the log.\n"
                "\n"
                "Example (two moons):\n"
                "  dann data moons --out moons\n"
                "  dann train --arch mlp:15 --source-images moons/source-features \\\n"
                "      --source-labels moons/source-labels --target-images moons/target-features \\\n"
                "      --out moons.dann --plot moons.svg \\\n"
                "      --eval-images moons/test-features --eval-labels moons/test-labels");
    if (!args.parse(argc, argv)) return 0;

    RecipeConfig config;
    config.arch = args.get("--arch");
    check_arch(config.arch);
    const std::string mode = args.get_choice("--mode", "dann", {"dann", "source-only", "target-oracle"});
    config.mode = mode == "dann" ? Mode::dann : mode == "source-only" ? Mode::source_only
                                                                      : Mode::target_oracle;
    config.recipe = args.get_choice("--recipe", "best", {"paper", "best"}) == "paper"
                        ? RecipeKind::paper
                        : RecipeKind::best;
    config.steps = args.has("--steps") ? args.get_int("--steps", config.steps, 1, int64_t{1} << 40)
                                       : default_steps(config.arch, config.recipe);
    config.batch = static_cast<int>(args.get_int("--batch", config.batch, 1, 1 << 20));
    config.seed = args.get_u64("--seed", config.seed);
    config.threads = static_cast<int>(args.get_int("--threads", config.threads, 0, 4096));
    config.lr0 = args.get_double("--lr", config.lr0, 0.0, 1e6);
    config.lambda_max = args.get_double("--lambda", config.lambda_max, 0.0, 1e6);
    config.entropy_weight = args.get_double("--entropy-weight", config.entropy_weight, 0.0, 1e6);
    if (args.has("--lr") && config.lr0 <= 0) throw UsageError("--lr must be positive");
    config.candidates = static_cast<int>(args.get_int("--candidates", -1, 1, 1024));
    config.self_train_rounds = static_cast<int>(args.get_int("--self-train-rounds", -1, 0, 1000));
    config.deterministic = args.has("--deterministic");
    config.precision = args.get_choice("--precision", "f32", {"f32", "bf16"}) == "bf16"
                           ? DANN_PRECISION_BF16
                           : DANN_PRECISION_F32;
    if (config.precision == DANN_PRECISION_BF16 && !dann_precision_supported(DANN_PRECISION_BF16))
        throw UsageError("--precision bf16: this CPU has neither AVX512-BF16 nor AMX (or "
                         "ONEDNN_MAX_CPU_ISA excludes them)");
    config.checkpoint_every =
        args.get_int("--checkpoint-every", config.checkpoint_every, 1, int64_t{1} << 40);
    const int64_t log_every = args.get_int("--log-every", 100, 1, int64_t{1} << 40);
    const auto replay = static_cast<size_t>(args.get_int("--replay", 0, 0, int64_t{1} << 24));
    const std::string eval_domain = args.get_choice("--eval-domain", "target", {"source", "target"});
    const std::string out = args.get("--out");

    if (config.mode == Mode::target_oracle) {
        if (!args.has("--target-images") || !args.has("--target-labels"))
            throw UsageError("--mode target-oracle needs --target-images and --target-labels");
    } else if (args.has("--target-labels")) {
        throw UsageError("--target-labels is read only by --mode target-oracle; " + mode +
                         " never reads target labels");
    }
    if (config.mode == Mode::dann && !args.has("--target-images"))
        throw UsageError("--mode dann needs --target-images (unlabelled target samples)");
    if (args.has("--eval-images") != args.has("--eval-labels"))
        throw UsageError("--eval-images and --eval-labels go together");
    if (args.has("--checkpoint-every") && !args.has("--checkpoint") && !args.has("--resume"))
        throw UsageError("--checkpoint-every needs --checkpoint PATH");

    if (args.has("--resume")) {
        config.resume_path = args.get("--resume");
        config.checkpoint_path = args.get("--checkpoint", config.resume_path);
        if (!file_exists(config.resume_path)) {
            // Rerunning one command line after an interruption must work the
            // first time too, before any checkpoint exists.
            if (config.resume_path != config.checkpoint_path)
                throw CommandError("cannot resume: " + config.resume_path + " does not exist");
            if (!args.has("--quiet"))
                std::fprintf(stderr, "%s: no checkpoint at %s yet; starting from step 0\n", kCommand,
                             config.resume_path.c_str());
            config.resume_path.clear();
        }
    } else {
        config.checkpoint_path = args.get("--checkpoint");
    }

    for (const char *option : {"--out", "--log", "--plot", "--checkpoint"})
        if (args.has(option)) check_output_path(option, args.get(option));

    const std::string source_images = args.get("--source-images");
    Dataset source = load_dataset(source_images, args.get("--source-labels"));
    check_arch_input(config.arch, source, source_images);
    std::unique_ptr<Dataset> target;
    if (args.has("--target-images")) {
        const std::string path = args.get("--target-images");
        // Target labels are loaded for the oracle only: no other mode can read them.
        target = std::make_unique<Dataset>(load_dataset(
            path, config.mode == Mode::target_oracle ? args.get("--target-labels") : ""));
        check_arch_input(config.arch, *target, path);
        check_same_kind(source, *target, path);
    }
    std::unique_ptr<Dataset> eval;
    if (args.has("--eval-images")) {
        const std::string path = args.get("--eval-images");
        eval = std::make_unique<Dataset>(load_dataset(path, args.get("--eval-labels")));
        check_arch_input(config.arch, *eval, path);
        check_same_kind(source, *eval, path);
    }

    std::unique_ptr<CsvLog> csv;
    if (args.has("--log"))
        csv = std::make_unique<CsvLog>(args.get("--log"), !config.resume_path.empty());
    std::vector<LogRow> rows;

    Progress progress("train", config.steps, "steps", !args.has("--quiet"));
    Hooks hooks;
    hooks.progress = [&](int64_t step, int64_t total) {
        progress.set_total(total);
        progress.update(step);
    };
    hooks.log = [&](const LogRow &row) {
        if (csv)
            csv->add(row);
        else
            rows.push_back(row);
    };
    hooks.log_every = log_every;
    std::vector<CandidateScore> candidates;
    hooks.candidate = [&](const CandidateScore &c) { candidates.push_back(c); };
    hooks.eval = eval.get();
    hooks.eval_domain = eval_domain == "source" ? DANN_DOMAIN_SOURCE : DANN_DOMAIN_TARGET;

    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<dann_model, void (*)(dann_model *)> model(
        dann::tool::train(config, source, target.get(), hooks), dann_model_destroy);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.finish();
    if (!model) throw CommandError("the recipe returned no model");
    store_replay(model.get(), source, replay, config.seed);
    check_dann(dann_model_save(model.get(), out.c_str()), "cannot save the model to " + out);

    if (csv) rows = csv->rows();
    LogRow final_row;
    if (!rows.empty()) final_row = rows.back();
    // Scored again: the recipe may change the model after its last log row
    // (AdaBN, model selection), and the summary describes the saved model.
    double eval_accuracy = -1;
    if (eval) eval_accuracy = evaluate(model.get(), *eval, hooks.eval_domain, config.threads);
    if (args.has("--plot")) {
        std::string title = "dann train --arch " + config.arch + " --mode " + mode_name(config.mode) +
                            " --recipe " + (config.recipe == RecipeKind::paper ? "paper" : "best") +
                            " --steps " + std::to_string(config.steps);
        svg::write_file(args.get("--plot"), svg::training_curves(title, rows));
    }

    if (args.has("--json")) {
        json::Value summary = json::Value::object();
        summary.add("model", out)
            .add("arch", config.arch)
            .add("mode", mode_name(config.mode))
            .add("recipe", config.recipe == RecipeKind::paper ? "paper" : "best")
            .add("steps", config.steps)
            .add("seconds", seconds);
        if (!rows.empty())
            summary.add("final", row_json(final_row));
        else
            summary.null("final");
        if (!candidates.empty()) {
            // The recipe keeps the first candidate with the lowest score.
            size_t kept = 0;
            for (size_t i = 1; i < candidates.size(); ++i)
                if (candidates[i].score < candidates[kept].score) kept = i;
            json::Value list = json::Value::array();
            for (const CandidateScore &c : candidates) {
                json::Value v = json::Value::object();
                v.add("index", c.index)
                    .add("source_error", c.source_error)
                    .add("target_entropy", c.target_entropy)
                    .add("score", c.score);
                list.push(v);
            }
            summary.add("candidates", list).add("selected", candidates[kept].index);
            summary.add("label_free_score", candidates[kept].score);
        }
        if (eval_accuracy >= 0) {
            summary.add("eval_accuracy", eval_accuracy).add("eval_n", eval->n);
        } else {
            summary.null("eval_accuracy");
        }
        std::printf("%s\n", summary.str().c_str());
    } else {
        std::printf("model     %s (%lld steps, %s)\n", out.c_str(),
                    static_cast<long long>(config.steps), Progress::format_duration(seconds).c_str());
        if (!rows.empty())
            std::printf("final     label loss %.4f  domain loss %.4f  domain accuracy %.3f  λ %.3f  "
                        "lr %.3g\n",
                        final_row.label_loss, final_row.domain_loss, final_row.domain_accuracy,
                        final_row.lambda, final_row.lr);
        if (eval_accuracy >= 0)
            std::printf("eval      accuracy %.4f on %zu samples (%s statistics)\n", eval_accuracy,
                        eval->n, eval_domain.c_str());
        if (args.has("--log")) std::printf("log       %s\n", args.get("--log").c_str());
        if (args.has("--plot")) std::printf("plot      %s\n", args.get("--plot").c_str());
    }
    return 0;
}

} // namespace

int cmd_train(int argc, char **argv) {
    return run_command(kCommand, [&] { return train(argc, argv); });
}

} // namespace dann::tool
