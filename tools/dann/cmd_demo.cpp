// dann demo: the README's main demo. Builds the target domain
// (Fashion-MNIST-M) when it is missing, trains source-only and DANN on
// Fashion-MNIST -> Fashion-MNIST-M (and, with --full, the target-oracle
// reference), prints a table, and writes the training curves and a PCA
// picture of the features before and after adaptation.
//
// Every run keeps its model, log and checkpoint in its own folder, so that a
// demo cut off midway resumes where it stopped and finished runs are reused.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "data/fmnist_m.hpp"
#include "inference.hpp"
#include "io.hpp"
#include "json.hpp"
#include "pca.hpp"
#include "progress.hpp"
#include "recipe.hpp"
#include "svg.hpp"
#include "train_log.hpp"


namespace dann::tool {
namespace {

namespace fs = std::filesystem;

constexpr const char *kCommand = "dann demo";
constexpr const char *kFmnistDefault = "/usr/share/datasets/fashion-mnist";
constexpr int64_t kShortSteps = 2000;
constexpr size_t kLogEvalSamples = 2000; // target test images scored at each log row
constexpr size_t kPcaSamples = 500;      // per domain in the feature picture

struct Options {
    std::string out, fmnist, photos;
    RecipeKind recipe = RecipeKind::best;
    int64_t steps = kShortSteps;
    uint64_t seed = 1;
    int threads = 0;
    bool full = false, quiet = false, json = false;
};

struct Data {
    Dataset source, source_test, target, target_test, target_log;
    std::vector<int32_t> target_labels; // the oracle's only: adaptation never sees them
};

struct Run {
    std::string name, title;
    Mode mode = Mode::dann;
    ModelPtr model{nullptr, dann_model_destroy};
    std::vector<LogRow> rows;
    double target_accuracy = -1, source_accuracy = -1, seconds = 0;
    bool reused = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool all_exist(const std::string &dir, const std::vector<std::string> &names) {
    for (const std::string &n : names)
        if (!fs::exists(dir + "/" + n)) return false;
    return true;
}

// The target domain, built once into OUT/fmnist-m.
std::string ensure_target_domain(const Options &o) {
    const std::string dir = o.out + "/fmnist-m";
    const std::vector<std::string> files = {"train-images-idx4-ubyte", "train-labels-idx1-ubyte",
                                            "t10k-images-idx4-ubyte", "t10k-labels-idx1-ubyte"};
    if (all_exist(dir, files)) return dir;
    const std::string photos = photos_dir(o.photos);
    fs::create_directories(dir);
    Progress progress("fmnist-m", 4, "files", !o.quiet);
    progress.update(0);
    data::build_fmnist_m(o.fmnist, photos, dir,
                         [&](const std::string &, int done, int) { progress.update(done); });
    return dir;
}

Dataset first_samples(const Dataset &d, size_t n) {
    Dataset s;
    s.format = d.format;
    s.height = d.height;
    s.width = d.width;
    s.channels = d.channels;
    s.n = std::min(n, d.n);
    s.u8.assign(d.u8.begin(), d.u8.begin() + std::ptrdiff_t(s.n * d.sample_size()));
    s.labels.assign(d.labels.begin(), d.labels.begin() + std::ptrdiff_t(s.n));
    return s;
}

Data load_data(const Options &o, const std::string &target_dir) {
    Data d;
    const std::string f = o.fmnist + "/";
    d.source = load_dataset(f + "train-images-idx3-ubyte.gz", f + "train-labels-idx1-ubyte.gz");
    d.source_test = load_dataset(f + "t10k-images-idx3-ubyte.gz", f + "t10k-labels-idx1-ubyte.gz");
    const std::string t = target_dir + "/";
    d.target = load_samples(t + "train-images-idx4-ubyte");
    if (o.full) {
        Dataset labels = d.target;
        labels.u8.clear();
        load_labels(t + "train-labels-idx1-ubyte", labels);
        d.target_labels = std::move(labels.labels);
    }
    d.target_test = load_dataset(t + "t10k-images-idx4-ubyte", t + "t10k-labels-idx1-ubyte");
    d.target_log = first_samples(d.target_test, kLogEvalSamples);
    return d;
}

// One run of the table: trained (or resumed) unless its model and log exist.
void train_run(Run &run, const Options &o, const std::string &dir, Data &d) {
    const std::string model_path = dir + "/" + run.name + ".dann";
    const std::string log_path = dir + "/" + run.name + ".csv";
    const std::string ckpt = dir + "/" + run.name + ".ckpt";
    if (fs::exists(model_path) && fs::exists(log_path)) {
        run.model = load_model(model_path);
        run.rows = read_log_csv(log_path);
        run.reused = true;
        return;
    }
    RecipeConfig c;
    c.arch = "mnist";
    c.mode = run.mode;
    c.recipe = o.recipe;
    c.steps = o.steps;
    c.seed = o.seed;
    c.threads = o.threads;
    c.checkpoint_path = ckpt;
    c.checkpoint_every = std::max<int64_t>(100, o.steps / 10);
    if (fs::exists(ckpt)) c.resume_path = ckpt;

    CsvLog csv(log_path, !c.resume_path.empty());
    Progress progress(run.name, c.steps, "steps", !o.quiet);
    Hooks hooks;
    hooks.progress = [&](int64_t step, int64_t total) {
        progress.set_total(total);
        progress.update(step);
    };
    hooks.log = [&](const LogRow &row) { csv.add(row); };
    hooks.log_every = std::max<int64_t>(1, o.steps / 20);
    hooks.eval = &d.target_log;
    hooks.eval_domain = DANN_DOMAIN_TARGET;

    // The oracle trains on the target's labels; no other run is given them.
    if (run.mode == Mode::target_oracle) d.target.labels = d.target_labels;
    const auto start = std::chrono::steady_clock::now();
    try {
        run.model = ModelPtr(train(c, d.source, &d.target, hooks), dann_model_destroy);
    } catch (...) {
        d.target.labels.clear();
        throw;
    }
    d.target.labels.clear();
    run.seconds = seconds_since(start);
    progress.finish();
    check_dann(dann_model_save(run.model.get(), model_path.c_str()),
               "cannot save the model to " + model_path);
    run.rows = csv.rows();
    // The model is saved: the checkpoint and its weight averages are spent.
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind(run.name + ".ckpt", 0) == 0)
            fs::remove(e.path(), ec);
}

// Features of the first kPcaSamples test images of each domain, each domain
// normalised with its own batch-norm statistics.
std::vector<float> features(const dann_model *model, const Data &d) {
    const dann_model_info info = model_info(model);
    const size_t width = size_t(info.feature_size), n = kPcaSamples;
    std::vector<float> out(2 * n * width);
    dann_context *raw = nullptr;
    check_dann(dann_context_create(model, &raw), "dann_context_create");
    std::unique_ptr<dann_context, void (*)(dann_context *)> ctx(raw, dann_context_destroy);
    const Dataset *sets[2] = {&d.source_test, &d.target_test};
    const dann_domain domains[2] = {DANN_DOMAIN_SOURCE, DANN_DOMAIN_TARGET};
    for (int k = 0; k < 2; ++k) {
        check_dann(dann_context_set_domain(ctx.get(), domains[k]), "dann_context_set_domain");
        const dann_batch b = batch_view(*sets[k], 0, std::min(n, sets[k]->n));
        check_dann(dann_features(ctx.get(), &b, out.data() + size_t(k) * n * width, n * width),
                   "dann_features");
    }
    return out;
}

svg::ScatterPanel pca_panel(const std::string &title, const dann_model *model, const Data &d) {
    const std::vector<float> f = features(model, d);
    const size_t n = kPcaSamples, width = f.size() / (2 * n);
    const Pca pca = fit_pca(f.data(), 2 * n, width, 2);
    const std::vector<float> xy = pca_project(pca, f.data(), 2 * n);
    svg::ScatterPanel panel;
    panel.title = title;
    panel.x_label = "PC 1";
    panel.y_label = "PC 2";
    svg::Group source{"source (Fashion-MNIST)", svg::source_color(), {}, svg::Marker::circle};
    svg::Group target{"target (Fashion-MNIST-M)", svg::target_color(), {}, svg::Marker::cross};
    source.xy.assign(xy.begin(), xy.begin() + std::ptrdiff_t(2 * n));
    target.xy.assign(xy.begin() + std::ptrdiff_t(2 * n), xy.end());
    panel.groups = {source, target};
    return panel;
}

int demo(int argc, char **argv) {
    ArgParser args(kCommand,
                   "The main demo: builds Fashion-MNIST-M, trains source-only and DANN on\n"
                   "Fashion-MNIST -> Fashion-MNIST-M, prints their target accuracy and writes\n"
                   "the training curves and a PCA picture of the features before and after\n"
                   "adaptation. A few minutes on 2 cores; --full runs the full length and the\n"
                   "target-oracle reference.");
    args.option("--out", "DIR", "output folder (created if missing)", "dann-demo")
        .option("--fmnist", "DIR", "Fashion-MNIST IDX files (dataset-fashion-mnist)",
                kFmnistDefault)
        .option("--photos", "DIR", "the six photographs of Fashion-MNIST-M",
                "$DANN_DATA_DIR/photos, else the source tree's or the installed data/photos")
        .option("--recipe", "R", "best | paper", "best")
        .option("--steps", "N", "training steps per run",
                std::to_string(kShortSteps) + "; 10000 with --full")
        .option("--seed", "S", "seed of the weights, batches and dropout", "1")
        .option("--threads", "T", "CPU threads (0: OpenMP's default, all cores)", "0")
        .flag("--full", "the full length (10000 steps) and the target-oracle reference")
        .flag("--quiet", "no progress lines")
        .flag("--json", "print a JSON summary as the last line of stdout")
        .epilog("Runs are kept under OUT/runs/<recipe>-<steps>-s<seed>/: run the same command\n"
                "again after an interruption and it resumes from the last checkpoint; finished\n"
                "runs are reused. Target labels are read only to score the table and the\n"
                "curves, and by the target-oracle reference (--full), which trains on them.");
    if (!args.parse(argc, argv)) return 0;

    Options o;
    o.out = args.get("--out", "dann-demo");
    o.fmnist = args.get("--fmnist", kFmnistDefault);
    o.photos = args.get("--photos");
    o.recipe = args.get_choice("--recipe", "best", {"best", "paper"}) == "paper" ? RecipeKind::paper
                                                                                 : RecipeKind::best;
    o.full = args.has("--full");
    o.steps = args.get_int("--steps", o.full ? 10000 : kShortSteps, 1, int64_t{1} << 40);
    o.seed = args.get_u64("--seed", 1);
    o.threads = static_cast<int>(args.get_int("--threads", 0, 0, 4096));
    o.quiet = args.has("--quiet");
    o.json = args.has("--json");

    const auto start = std::chrono::steady_clock::now();
    fs::create_directories(o.out);
    const std::string target_dir = ensure_target_domain(o);
    Data d = load_data(o, target_dir);
    const std::string recipe_name = o.recipe == RecipeKind::paper ? "paper" : "best";
    const std::string dir = o.out + "/runs/" + recipe_name + "-" + std::to_string(o.steps) + "-s" +
                            std::to_string(o.seed);
    fs::create_directories(dir);

    std::vector<Run> runs(o.full ? 3 : 2);
    runs[0].name = "source-only";
    runs[0].title = "source only";
    runs[0].mode = Mode::source_only;
    runs[1].name = "dann";
    runs[1].title = "DANN";
    runs[1].mode = Mode::dann;
    if (o.full) {
        runs[2].name = "target-oracle";
        runs[2].title = "target oracle";
        runs[2].mode = Mode::target_oracle;
    }
    for (Run &run : runs) {
        if (!o.quiet) std::fprintf(stderr, "%s: %s\n", kCommand, run.title.c_str());
        train_run(run, o, dir, d);
        run.target_accuracy =
            evaluate(run.model.get(), d.target_test, DANN_DOMAIN_TARGET, o.threads);
        run.source_accuracy =
            evaluate(run.model.get(), d.source_test, DANN_DOMAIN_SOURCE, o.threads);
    }

    // Pictures.
    std::vector<std::string> plots;
    for (const Run &run : runs) {
        const std::string path = o.out + "/curves-" + run.name + ".svg";
        svg::write_file(path,
                        svg::training_curves("Fashion-MNIST -> Fashion-MNIST-M: " + run.title +
                                                 " (" + recipe_name + " recipe, " +
                                                 std::to_string(o.steps) + " steps)",
                                             run.rows));
        plots.push_back(path);
    }
    const std::string pca_path = o.out + "/features-pca.svg";
    svg::write_file(
        pca_path,
        svg::scatter("Features of " + std::to_string(kPcaSamples) +
                         " test images per domain, first two principal components",
                     {pca_panel("before adaptation (source only)", runs[0].model.get(), d),
                      pca_panel("after adaptation (DANN)", runs[1].model.get(), d)}));
    plots.push_back(pca_path);

    double gap = std::nan("");
    if (o.full) {
        const double so = runs[0].target_accuracy, da = runs[1].target_accuracy,
                     oracle = runs[2].target_accuracy;
        if (oracle > so) gap = (da - so) / (oracle - so);
    }
    RecipeConfig described;
    described.arch = "mnist";
    described.recipe = o.recipe;
    described.batch = 64;
    const double seconds = seconds_since(start);

    std::printf(
        "Fashion-MNIST -> Fashion-MNIST-M, the paper's MNIST network, %s recipe, %lld steps, "
        "seed %llu\n%s\n\n",
        recipe_name.c_str(), static_cast<long long>(o.steps),
        static_cast<unsigned long long>(o.seed), describe_recipe(described).c_str());
    std::printf("%-16s %16s %16s %10s\n", "run", "target accuracy", "source accuracy", "time");
    for (const Run &run : runs)
        std::printf("%-16s %16.4f %16.4f %10s\n", run.title.c_str(), run.target_accuracy,
                    run.source_accuracy,
                    run.reused ? "(reused)" : Progress::format_duration(run.seconds).c_str());
    if (o.full)
        std::printf("\nshare of the source-only -> oracle gap closed by DANN: %.1f%%\n",
                    100.0 * gap);
    else
        std::printf(
            "\n(--full also trains the target-oracle reference and reports the share of the\n"
            "source-only -> oracle gap that DANN closes; the paper's MNIST-M figure is 56%%)\n");
    std::printf("\nplots:\n");
    for (const std::string &p : plots) std::printf("  %s\n", p.c_str());
    std::printf("runs:   %s\n", dir.c_str());

    if (o.json) {
        json::Value list = json::Value::array();
        for (const Run &run : runs)
            list.push(json::Value::object()
                          .add("run", run.name)
                          .add("target_accuracy", run.target_accuracy)
                          .add("source_accuracy", run.source_accuracy)
                          .add("seconds", run.seconds)
                          .add("reused", run.reused));
        json::Value plot_list = json::Value::array();
        for (const std::string &p : plots) plot_list.push(p);
        json::Value summary = json::Value::object();
        summary.add("recipe", recipe_name)
            .add("steps", o.steps)
            .add("seed", o.seed)
            .add("runs", list)
            .add("plots", plot_list)
            .add("seconds", seconds);
        if (o.full)
            summary.add("gap_closed", gap);
        else
            summary.null("gap_closed");
        std::printf("%s\n", summary.str().c_str());
    }
    return 0;
}

} // namespace
} // namespace dann::tool

int cmd_demo(int argc, char **argv) {
    return dann::tool::run_command(dann::tool::kCommand,
                                   [&] { return dann::tool::demo(argc, argv); });
}
