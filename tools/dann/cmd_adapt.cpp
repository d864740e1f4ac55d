// dann adapt: adapts a saved model to unlabelled target samples with the
// on-device adapter (the same code an application runs), and dann drift: how
// far samples are from the source, seen by a model's domain head.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "args.hpp"
#include "core/rng.hpp"
#include "commands.hpp"
#include "inference.hpp"
#include "io.hpp"
#include "json.hpp"
#include "progress.hpp"

namespace dann::tool {

namespace {

using AdapterPtr = std::unique_ptr<dann_adapter, void (*)(dann_adapter *)>;
using ContextPtr = std::unique_ptr<dann_context, void (*)(dann_context *)>;

const char *reason_name(dann_guard_reason r) {
    switch (r) {
    case DANN_GUARD_NONE: return "none";
    case DANN_GUARD_NONFINITE: return "non-finite";
    case DANN_GUARD_REPLAY_DROP: return "replay-drop";
    case DANN_GUARD_CLASS_COLLAPSE: return "class-collapse";
    }
    return "unknown";
}

// A seeded permutation of 0..n-1.
std::vector<size_t> shuffled(size_t n, uint64_t seed) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    SplitMix64 rng(seed);
    for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[size_t(rng.next() % i)]);
    return order;
}

// Samples `idx` of `data`, contiguous, in the data's own format.
Dataset subset(const Dataset &data, const std::vector<size_t> &idx) {
    Dataset out;
    out.format = data.format;
    out.height = data.height;
    out.width = data.width;
    out.channels = data.channels;
    out.n = idx.size();
    const size_t s = data.sample_size();
    for (const size_t i : idx) {
        if (data.format == DANN_INPUT_U8_HWC)
            out.u8.insert(out.u8.end(), data.u8.begin() + long(i * s), data.u8.begin() + long((i + 1) * s));
        else
            out.f32.insert(out.f32.end(), data.f32.begin() + long(i * s), data.f32.begin() + long((i + 1) * s));
        if (!data.labels.empty()) out.labels.push_back(data.labels[i]);
    }
    return out;
}

json::Value stats_json(const dann_adapter_stats &s) {
    json::Value v = json::Value::object();
    v.add("rounds", s.rounds)
        .add("steps", s.steps)
        .add("snapshots", s.snapshots)
        .add("guard_events", s.guard_events)
        .add("last_guard_reason", reason_name(s.last_guard_reason))
        .add("label_loss", double(s.label_loss))
        .add("domain_loss", double(s.domain_loss))
        .add("domain_accuracy", double(s.domain_accuracy))
        .add("replay_accuracy", double(s.replay_accuracy))
        .add("reference_replay_accuracy", double(s.reference_replay_accuracy))
        .add("class_entropy", double(s.class_entropy))
        .add("drift", double(s.drift));
    return v;
}

int adapt(int argc, char **argv) {
    constexpr const char *kCommand = "dann adapt";
    ArgParser args(kCommand,
                   "Adapts a model to unlabelled target samples with the on-device adapter:\n"
                   "rounds of DANN steps (labelled replay samples + target samples), each\n"
                   "checked by the label-free guard, which rolls back a harmful round.");
    args.required("--model", "IN", "the model to adapt (dann train; with a replay set, or give "
                                   "--source-images/--source-labels)")
        .required("--target-images", "F", "unlabelled target samples (IDX)")
        .required("--steps", "N", "adaptation steps (rounded up to whole rounds)")
        .required("--out", "OUT", "where to save the adapted model")
        .option("--source-images", "F", "labelled source samples to draw the replay set from "
                                        "(replaces the model's)")
        .option("--source-labels", "F", "their labels")
        .option("--replay", "K", "replay samples drawn from --source-images", "2000")
        .option("--mode", "M", "dann | batchnorm (AdaBN only, needs no replay set)", "dann")
        .option("--lr", "X", "learning rate (default: the adapter's, 1e-4)")
        .option("--lambda", "X", "GRL factor (default: the adapter's, 0.3)")
        .option("--batch", "N", "source and target samples per step (default: 32)")
        .option("--steps-per-round", "N", "steps between guard checks (default: 20)")
        .option("--seed", "S", "seed of the sampling", "1")
        .option("--threads", "T", "CPU threads (0: OpenMP's default)", "1")
        .option("--eval-images", "F", "labelled samples scored before and after (report only)")
        .option("--eval-labels", "F", "their labels")
        .flag("--quiet", "no progress line")
        .flag("--json", "print a JSON summary as the last line of stdout")
        .epilog("Target labels are never read; --eval-labels only score the report.");
    if (!args.parse(argc, argv)) return 0;
    const std::string out = args.get("--out");
    check_output_path("--out", out);
    if (args.has("--source-images") != args.has("--source-labels"))
        throw UsageError("--source-images and --source-labels go together");
    if (args.has("--eval-images") != args.has("--eval-labels"))
        throw UsageError("--eval-images and --eval-labels go together");
    const int64_t steps = args.get_int("--steps", 0, 1, int64_t{1} << 40);
    const uint64_t seed = args.get_u64("--seed", 1);
    const int threads = static_cast<int>(args.get_int("--threads", 1, 0, 4096));
    const std::string mode = args.get_choice("--mode", "dann", {"dann", "batchnorm"});

    ModelPtr model = load_model(args.get("--model"));
    check_dann(dann_model_set_threads(model.get(), threads), "cannot set the thread count");
    const dann_model_info info = model_info(model.get());
    const std::string target_path = args.get("--target-images");
    const Dataset target = load_samples(target_path);
    if (target.n == 0) throw CommandError(target_path + " holds no samples");
    check_input(info, target, target_path);

    if (args.has("--source-images")) {
        const std::string path = args.get("--source-images");
        const Dataset source = load_dataset(path, args.get("--source-labels"));
        check_input(info, source, path);
        check_labels(source, info.num_classes, args.get("--source-labels"));
        store_replay(model.get(), source,
                     size_t(args.get_int("--replay", 2000, 1, int64_t{1} << 24)), seed);
    }
    std::unique_ptr<Dataset> eval;
    if (args.has("--eval-images")) {
        eval = std::make_unique<Dataset>(
            load_dataset(args.get("--eval-images"), args.get("--eval-labels")));
        check_input(info, *eval, args.get("--eval-images"));
        check_labels(*eval, info.num_classes, args.get("--eval-labels"));
    }

    dann_adapter_params params = dann_adapter_params_default();
    params.mode = mode == "dann" ? DANN_ADAPT_DANN : DANN_ADAPT_BATCHNORM;
    params.format = target.format;
    params.channels = target.channels;
    params.background = 0;
    params.train.seed = seed;
    if (args.has("--lr")) params.lr = float(args.get_double("--lr", 0, 1e-12, 1e6));
    if (args.has("--lambda")) params.lambda = float(args.get_double("--lambda", 0, 0, 1e6));
    if (args.has("--batch"))
        params.source_batch = params.target_batch = size_t(args.get_int("--batch", 32, 1, 1 << 20));
    if (args.has("--steps-per-round"))
        params.steps_per_round = size_t(args.get_int("--steps-per-round", 20, 1, 1 << 20));
    params.capacity = std::max(params.capacity, params.target_batch);

    const auto start = std::chrono::steady_clock::now();
    const double before = eval ? evaluate(model.get(), *eval, DANN_DOMAIN_TARGET, threads) : -1.0;
    dann_adapter *raw = nullptr;
    check_dann(dann_adapter_create(model.get(), &params, &raw), "cannot create the adapter");
    AdapterPtr adapter(raw, dann_adapter_destroy);

    // The target file plays the stream: before each round, the next samples
    // of a seeded shuffle (cycling) are pushed, as many as one round reads.
    const std::vector<size_t> order = shuffled(target.n, seed ^ 0x7A26E7ull);
    const size_t per_round = params.steps_per_round * params.target_batch;
    const int64_t rounds = (steps + int64_t(params.steps_per_round) - 1) /
                           int64_t(params.steps_per_round);
    Dataset chunk;
    size_t next = 0;
    auto push_next = [&](size_t count) {
        std::vector<size_t> idx(count);
        for (size_t i = 0; i < count; ++i) idx[i] = order[(next + i) % target.n];
        next = (next + count) % target.n;
        chunk = subset(target, idx);
        const dann_batch b = batch_view(chunk, 0, chunk.n);
        check_dann(dann_adapter_push(adapter.get(), &b), "dann_adapter_push");
    };
    push_next(std::min(params.capacity, std::max(per_round, params.target_batch)));
    Progress progress("adapt", rounds * int64_t(params.steps_per_round), "steps",
                      !args.has("--quiet"));
    for (int64_t r = 0; r < rounds; ++r) {
        if (r > 0) push_next(std::min(per_round, params.capacity));
        check_dann(dann_adapter_run(adapter.get(), 1), "adaptation round " + std::to_string(r + 1));
        progress.update((r + 1) * int64_t(params.steps_per_round));
    }
    progress.finish();
    dann_adapter_stats stats{};
    check_dann(dann_adapter_get_stats(adapter.get(), &stats), "dann_adapter_get_stats");
    check_dann(dann_adapter_get_model(adapter.get(), model.get()), "dann_adapter_get_model");
    check_dann(dann_model_save(model.get(), out.c_str()), "cannot save the model to " + out);
    const double after = eval ? evaluate(model.get(), *eval, DANN_DOMAIN_TARGET, threads) : -1.0;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (args.has("--json")) {
        json::Value v = json::Value::object();
        v.add("model", out)
            .add("mode", mode)
            .add("memory_bytes", dann_adapter_memory(adapter.get()))
            .add("seconds", seconds)
            .add("stats", stats_json(stats));
        if (eval)
            v.add("eval_accuracy_before", before).add("eval_accuracy_after", after);
        else
            v.null("eval_accuracy_before").null("eval_accuracy_after");
        std::printf("%s\n", v.str().c_str());
    } else {
        std::printf("%llu rounds, %llu steps, %llu snapshots, %llu guard events (last: %s)\n",
                    static_cast<unsigned long long>(stats.rounds),
                    static_cast<unsigned long long>(stats.steps),
                    static_cast<unsigned long long>(stats.snapshots),
                    static_cast<unsigned long long>(stats.guard_events),
                    reason_name(stats.last_guard_reason));
        std::printf("replay accuracy %.4f (at the start %.4f), drift %.3f\n",
                    double(stats.replay_accuracy), double(stats.reference_replay_accuracy),
                    double(stats.drift));
        if (eval) std::printf("eval accuracy %.4f -> %.4f\n", before, after);
        std::printf("adapted model saved to %s\n", out.c_str());
    }
    return 0;
}

int drift(int argc, char **argv) {
    constexpr const char *kCommand = "dann drift";
    ArgParser args(kCommand,
                   "How far samples are from the source, seen by the model's domain head:\n"
                   "2 * AUC - 1 of P(target) on the samples against reference source samples\n"
                   "(the model's replay set, or --reference), clamped to [0, 1]: 0 means\n"
                   "indistinguishable from the source. Without a reference: the mean P(target).");
    args.required("--model", "MODEL", "a model file")
        .required("--images", "F", "the samples to score (IDX)")
        .option("--reference", "F", "source samples (default: the model's replay set)")
        .option("--max", "N", "samples used from each set (the first N)", "1000")
        .option("--domain", "D", "batch-norm statistics: source | target", "target")
        .option("--threads", "T", "CPU threads (0: OpenMP's default)", "0")
        .flag("--json", "print {\"drift\": D, ...} as the last line of stdout");
    if (!args.parse(argc, argv)) return 0;
    const size_t max_n = size_t(args.get_int("--max", 1000, 1, 1 << 20));
    const int threads = static_cast<int>(args.get_int("--threads", 0, 0, 4096));
    ModelPtr model = load_model(args.get("--model"));
    check_dann(dann_model_set_threads(model.get(), threads), "cannot set the thread count");
    const dann_model_info info = model_info(model.get());
    const std::string path = args.get("--images");
    const Dataset recent = load_samples(path);
    if (recent.n == 0) throw CommandError(path + " holds no samples");
    check_input(info, recent, path);

    Dataset reference;
    std::string reference_name = "none";
    std::vector<uint8_t> replay_bytes;
    dann_batch ref_batch{};
    bool have_reference = false;
    if (args.has("--reference")) {
        reference = load_samples(args.get("--reference"));
        check_input(info, reference, args.get("--reference"));
        ref_batch = batch_view(reference, 0, std::min(reference.n, max_n));
        reference_name = args.get("--reference");
        have_reference = ref_batch.n > 0;
    } else {
        dann_replay_info ri{};
        check_dann(dann_model_replay_info(model.get(), &ri), "dann_model_replay_info");
        if (ri.n > 0) {
            const size_t n = std::min(ri.n, max_n);
            const size_t per = size_t(ri.channels) * size_t(ri.height) * size_t(ri.width) *
                               (ri.format == DANN_INPUT_U8_HWC ? 1 : sizeof(float));
            replay_bytes.resize(n * per);
            check_dann(dann_model_get_replay(model.get(), 0, n, replay_bytes.data(),
                                             replay_bytes.size(), nullptr),
                       "dann_model_get_replay");
            ref_batch.format = ri.format;
            ref_batch.data = replay_bytes.data();
            ref_batch.n = n;
            ref_batch.height = ri.height;
            ref_batch.width = ri.width;
            ref_batch.channels = ri.channels;
            reference_name = "replay set";
            have_reference = true;
        }
    }
    dann_context *raw = nullptr;
    check_dann(dann_context_create(model.get(), &raw), "dann_context_create");
    ContextPtr ctx(raw, dann_context_destroy);
    const std::string domain = args.get_choice("--domain", "target", {"source", "target"});
    check_dann(dann_context_set_domain(ctx.get(),
                                       domain == "source" ? DANN_DOMAIN_SOURCE : DANN_DOMAIN_TARGET),
               "dann_context_set_domain");
    const dann_batch rb = batch_view(recent, 0, std::min(recent.n, max_n));
    float score = 0.0f;
    check_dann(dann_drift_score(ctx.get(), &rb, have_reference ? &ref_batch : nullptr, &score),
               "dann_drift_score");
    if (args.has("--json")) {
        json::Value v = json::Value::object();
        v.add("drift", double(score))
            .add("n", rb.n)
            .add("reference", reference_name)
            .add("reference_n", have_reference ? ref_batch.n : size_t{0})
            .add("measure", have_reference ? "2*AUC-1" : "mean P(target)");
        std::printf("%s\n", v.str().c_str());
    } else {
        std::printf("drift %.4f (%s over %zu samples, reference: %s)\n", double(score),
                    have_reference ? "2*AUC-1" : "mean P(target)", rb.n, reference_name.c_str());
    }
    return 0;
}

} // namespace

int cmd_adapt(int argc, char **argv) {
    return run_command("dann adapt", [&] { return adapt(argc, argv); });
}

int cmd_drift(int argc, char **argv) {
    return run_command("dann drift", [&] { return drift(argc, argv); });
}

} // namespace dann::tool
