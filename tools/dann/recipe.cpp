// The training recipes (docs/recipes.md): the paper's, and the default
// ("best") one built from what the strongest public implementations add.
// Everything goes through the public C API; nothing here reads the target's
// labels except target_oracle training and the evaluation hooks.
#include "recipe.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "recipe_parts.hpp"

namespace dann::tool {
namespace {

using namespace recipe_parts;

// ---------------------------------------------------------------------------
// The resolved hyperparameters of one training run.

struct Recipe {
    dann_train_params params = dann_train_params_default();
    float mu0 = 0.01f, alpha = 10.0f, beta = 0.75f; // lr = mu0 / (1 + alpha p)^beta
    float gamma = 10.0f, lambda_max = 1.0f;         // lambda = lambda_max (2/(1+e^-gamma p) - 1)
    float entropy_max = 0.0f;                       // ramped with lambda, see entropy_at()
    bool batchnorm = false, adabn = false;
    float dropout = 0.0f;
    float average = 0.0f; // decay of the weight average kept as the result (0: none)
    // Label-free model selection and self-training (the shallow networks).
    int candidates = 1;
    int self_rounds = 0;
    int64_t self_steps = 0; // per round: 2/15 of the DANN phase (800 for 6000)
    float self_lr = 0.0f;
};

Recipe resolve(const RecipeConfig &c, const Arch &arch) {
    Recipe r;
    if (c.recipe == RecipeKind::paper) {
        r.params.optimizer = DANN_OPTIMIZER_SGD;
        r.params.momentum = 0.9f;
    } else if (!arch.mlp) {
        r.params.optimizer = DANN_OPTIMIZER_ADAM;
        r.mu0 = 1e-3f;
        r.entropy_max = 0.03f;
        r.batchnorm = true;
        r.adabn = true;
        r.dropout = 0.5f;
        r.average = 0.999f;
    } else {
        r.params.optimizer = DANN_OPTIMIZER_SGD;
        r.params.momentum = 0.9f;
        // Chosen without target labels (examples/tune_moons.sh, docs/recipes.md).
        r.mu0 = 0.5f;
        r.lambda_max = 1.0f;
        r.candidates = 16; // a compute budget: the score only falls as candidates are added
        r.self_rounds = 20;
        r.self_steps = std::max<int64_t>(1, (c.steps * 2 + 7) / 15);
        r.self_lr = 0.03f;
    }
    if (c.lr0 > 0) r.mu0 = float(c.lr0);
    if (c.lambda_max >= 0) r.lambda_max = float(c.lambda_max);
    if (c.entropy_weight >= 0) r.entropy_max = float(c.entropy_weight);
    if (c.candidates > 0) r.candidates = c.candidates;
    if (c.self_train_rounds >= 0) r.self_rounds = c.self_train_rounds;
    r.params.precision = c.precision;
    if (c.mode != Mode::dann) {
        r.entropy_max = 0.0f;
        r.candidates = 1;
        r.self_rounds = 0;
    }
    return r;
}

// The entropy weight follows lambda in quarter steps: a new weight means a new
// trainer (dann_train_params are fixed per trainer), so it changes only a few
// times in a run; the weight is a function of the step alone.
float entropy_at(const Recipe &r, double p) {
    if (r.entropy_max <= 0.0f) return 0.0f;
    const double ramp = double(dann_schedule_lambda(float(p), r.gamma));
    return r.entropy_max * float(std::floor(ramp * 4.0 + 0.5) / 4.0);
}

// ---------------------------------------------------------------------------
// One training session: the data, the resolved recipe, and the phases.

class Session {
public:
    Session(const RecipeConfig &config, const Recipe &recipe, const Dataset &source,
            const Dataset *target, const Hooks &hooks)
        : c_(config), hooks_(hooks), arch_(parse_arch(config.arch)), r_(recipe), target_(target) {
        if (c_.steps < 0) fail("steps must be >= 0");
        if (c_.batch < 1) fail("batch must be >= 1");
        if (c_.threads < 0) fail("threads must be >= 0");
        if (c_.deterministic) {
            if (c_.threads == 0) fail("deterministic mode needs an explicit thread count");
            const char *dynamic = std::getenv("OMP_DYNAMIC");
            if (dynamic && (dynamic[0] == 't' || dynamic[0] == 'T' || dynamic[0] == '1'))
                fail("deterministic mode: OMP_DYNAMIC must not be true");
        }
        check_dataset(source, "source", c_.mode != Mode::target_oracle);
        if (c_.mode != Mode::source_only && !target) fail("this mode needs target data");
        if (target) {
            check_dataset(*target, "target", c_.mode == Mode::target_oracle);
            if (target->format != source.format || target->height != source.height ||
                target->width != source.width)
                fail("source and target samples differ in format or size");
            if (source.format != DANN_INPUT_U8_HWC && target->channels != source.channels)
                fail("source and target feature vectors differ in width");
        }
        // What the steps train on: the target with its labels for the oracle.
        train_ = c_.mode == Mode::target_oracle ? target : &source;
        classes_ = count_classes(*train_);
        if (c_.mode == Mode::target_oracle && !source.labels.empty())
            classes_ = std::max(classes_, count_classes(source));
        in_c_ = std::max(source.channels, target ? target->channels : 0);
        compute_input_mean(source);
    }

    dann_model *run() {
        const int64_t per_candidate = c_.steps + 2 * int64_t(r_.self_rounds) * r_.self_steps;
        total_ = per_candidate * r_.candidates;
        ModelPtr best;
        double best_score = std::numeric_limits<double>::infinity();
        for (int k = 0; k < r_.candidates; ++k) {
            // Candidate 0 is the run a single-candidate recipe would make.
            const uint64_t seed =
                k == 0 ? c_.seed : mix64(c_.seed ^ (kCandidate << 56) ^ uint64_t(k));
            ModelPtr m = new_model(seed);
            train_dann(m.get(), seed, r_.candidates == 1);
            if (r_.self_rounds > 0) self_train(m.get(), seed);
            if (r_.candidates == 1) {
                // Scored only for whoever asks (the score costs two passes).
                if (hooks_.candidate && c_.mode == Mode::dann) {
                    CandidateScore cs = label_free_score(m.get());
                    hooks_.candidate(cs);
                }
                best = std::move(m);
                break;
            }
            CandidateScore cs = label_free_score(m.get());
            cs.index = k;
            if (hooks_.candidate) hooks_.candidate(cs);
            if (!best || cs.score < best_score) {
                best_score = cs.score;
                best = std::move(m);
            }
        }
        return best.release();
    }

private:
    void compute_input_mean(const Dataset &source) {
        mean_.assign(size_t(in_c_), 0.0f);
        if (source.format != DANN_INPUT_U8_HWC) return;
        // Exact integer sums: the mean does not depend on the summation order.
        std::vector<uint64_t> sum(size_t(in_c_), 0);
        uint64_t pixels = 0;
        for (const Dataset *d : {&source, target_}) {
            if (!d) continue;
            const size_t px = d->n * size_t(d->height) * size_t(d->width);
            const size_t ch = size_t(d->channels);
            std::vector<uint64_t> s(ch, 0);
            for (size_t i = 0; i < px; ++i)
                for (size_t k = 0; k < ch; ++k) s[k] += d->u8[i * ch + k];
            for (size_t k = 0; k < size_t(in_c_); ++k) sum[k] += s[ch == 1 ? 0 : k];
            pixels += px;
        }
        for (size_t k = 0; k < size_t(in_c_); ++k)
            mean_[k] = float(double(sum[k]) / double(pixels) / 255.0);
    }

    ModelPtr new_model(uint64_t seed) const {
        dann_model *m = nullptr;
        const Dataset &d = *train_;
        if (arch_.mlp) {
            const dann_layer_desc act = arch_.relu ? dann_layer_relu() : dann_layer_sigmoid();
            std::vector<dann_layer_desc> features;
            for (const int h : arch_.hidden) {
                features.push_back(dann_layer_dense(h));
                features.push_back(act);
            }
            const std::vector<dann_layer_desc> label = {dann_layer_dense(classes_)};
            const std::vector<dann_layer_desc> domain = {dann_layer_dense(1)};
            dann_model_desc desc{};
            desc.in_channels = in_c_;
            desc.in_height = d.height;
            desc.in_width = d.width;
            desc.features = features.data();
            desc.n_features = features.size();
            desc.label_head = label.data();
            desc.n_label_head = label.size();
            desc.domain_head = domain.data();
            desc.n_domain_head = domain.size();
            check(dann_model_create(&desc, seed, &m), "dann_model_create (" + c_.arch + ")");
        } else {
            const ImageShape shape = preset_shape(arch_.preset);
            if (d.format != DANN_INPUT_U8_HWC || d.height != shape.size || d.width != shape.size)
                fail("--arch " + c_.arch + " takes " + std::to_string(shape.size) + "x" +
                     std::to_string(shape.size) + " images");
            if (in_c_ != 1 && in_c_ != 3) fail("image networks take 1 or 3 channels");
            if (!r_.batchnorm) {
                if (classes_ > shape.classes)
                    fail("--arch " + c_.arch + " has " + std::to_string(shape.classes) +
                         " classes, the labels " + std::to_string(classes_));
                check(dann_model_create_preset(arch_.preset, seed, &m), "dann_model_create_preset");
            } else {
                const std::vector<dann_layer_desc> features = best_features(arch_.preset);
                const std::vector<int> label_hidden =
                    arch_.preset == DANN_PRESET_MNIST  ? std::vector<int>{100, 100}
                    : arch_.preset == DANN_PRESET_SVHN ? std::vector<int>{3072, 2048}
                                                       : std::vector<int>{512};
                const std::vector<int> domain_hidden = arch_.preset == DANN_PRESET_MNIST
                                                           ? std::vector<int>{100}
                                                           : std::vector<int>{1024, 1024};
                const std::vector<dann_layer_desc> label =
                    dense_stack(label_hidden, dann_layer_relu(), r_.dropout, classes_);
                const std::vector<dann_layer_desc> domain =
                    dense_stack(domain_hidden, dann_layer_relu(),
                                arch_.preset == DANN_PRESET_SVHN ? r_.dropout : 0.0f, 1);
                dann_model_desc desc{};
                desc.in_channels = 3;
                desc.in_height = desc.in_width = shape.size;
                desc.features = features.data();
                desc.n_features = features.size();
                desc.label_head = label.data();
                desc.n_label_head = label.size();
                desc.domain_head = domain.data();
                desc.n_domain_head = domain.size();
                desc.domain_batchnorm = 1;
                check(dann_model_create(&desc, seed, &m), "dann_model_create (" + c_.arch + ")");
            }
        }
        ModelPtr model(m);
        if (d.format == DANN_INPUT_U8_HWC) {
            dann_model_info info;
            check(dann_model_get_info(model.get(), &info), "dann_model_get_info");
            std::vector<float> mean(size_t(info.in_channels), 0.0f);
            for (size_t k = 0; k < mean.size(); ++k) mean[k] = mean_[std::min(k, mean_.size() - 1)];
            check(dann_model_set_input_norm(model.get(), 1.0f / 255.0f, mean.data(),
                                            info.in_channels),
                  "dann_model_set_input_norm");
        }
        check(dann_model_set_threads(model.get(), c_.threads), "dann_model_set_threads");
        return model;
    }

    // The DANN (or source-only, or oracle) phase: c_.steps steps of the
    // schedules, with checkpoints when the run has a single candidate.
    void train_dann(dann_model *model, uint64_t seed, bool checkpoints) {
        dann_train_params params = r_.params;
        params.seed = mix64(seed ^ 0xD0D0ull);
        // Beside the checkpoint, where a run's folder keeps it (and a killed
        // run's leftover is overwritten by the next one).
        Stepper stepper(model, params,
                        checkpoints && !c_.checkpoint_path.empty() ? c_.checkpoint_path + ".switch"
                                                                   : "");
        std::unique_ptr<WeightAverage> average;
        if (r_.average > 0.0f) average = std::make_unique<WeightAverage>(model, r_.average);
        const int64_t steps = c_.steps;
        int64_t start = 0, saved = -1;
        if (checkpoints && !c_.resume_path.empty()) {
            if (!std::filesystem::exists(c_.resume_path))
                fail("--resume: no checkpoint at " + c_.resume_path);
            dann_trainer *t = stepper.get(0.0f);
            check(dann_trainer_load(t, c_.resume_path.c_str()), "resuming from " + c_.resume_path);
            start = int64_t(dann_trainer_steps(t));
            if (start > steps)
                fail("the checkpoint " + c_.resume_path + " is at step " + std::to_string(start) +
                     ", beyond the run's " + std::to_string(steps) + " steps");
            if (average)
                average->load(WeightAverage::path_for(c_.resume_path, uint64_t(start)),
                              uint64_t(start));
            saved = start;
            done_ += start;
        }
        const bool adapt = c_.mode == Mode::dann;
        const Dataset &src = *train_;
        const size_t b = size_t(c_.batch);
        std::vector<size_t> idx(b);
        Batch sb, tb;
        for (int64_t s = start; s < steps; ++s) {
            const double p = double(s) / double(steps);
            const float lr = dann_schedule_lr(float(p), r_.mu0, r_.alpha, r_.beta);
            const float lambda =
                adapt ? r_.lambda_max * dann_schedule_lambda(float(p), r_.gamma) : 0.0f;
            dann_trainer *t = stepper.get(adapt ? entropy_at(r_, p) : 0.0f);
            Draws ds(seed, kSourceDraw, uint64_t(s));
            for (size_t i = 0; i < b; ++i) idx[i] = ds.below(src.n);
            gather(src, idx, src.labels.data(), sb);
            const dann_batch *tv = nullptr;
            if (adapt) {
                Draws dt(seed, kTargetDraw, uint64_t(s));
                for (size_t i = 0; i < b; ++i) idx[i] = dt.below(target_->n);
                gather(*target_, idx, nullptr, tb);
                tv = &tb.view;
            }
            dann_step_result res{};
            check(dann_trainer_step(t, &sb.view, sb.labels.data(), tv, lambda, lr, &res),
                  "step " + std::to_string(s));
            if (average) average->update(model, uint64_t(s));
            const int64_t done = s + 1;
            if (checkpoints && !c_.checkpoint_path.empty() &&
                (done == steps || (c_.checkpoint_every > 0 && done % c_.checkpoint_every == 0)))
                save_checkpoint(t, average.get(), done, saved);
            record(model, res, p, lr, lambda, 1, done == steps);
        }
        if (average) average->apply(model);
        finish_batchnorm(model, stepper, average != nullptr);
    }

    // The weight average first, then the checkpoint, then the previous
    // average: whichever moment a run is cut off, the checkpoint on disk has
    // its average beside it.
    void save_checkpoint(dann_trainer *t, const WeightAverage *average, int64_t step,
                         int64_t &saved) const {
        const std::string &path = c_.checkpoint_path;
        if (average) average->save(WeightAverage::path_for(path, uint64_t(step)), uint64_t(step));
        check(dann_trainer_save(t, path.c_str()), "writing the checkpoint " + path);
        if (average && saved >= 0 && saved != step)
            std::remove(WeightAverage::path_for(path, uint64_t(saved)).c_str());
        saved = step;
    }

    // The model leaves training with statistics it can predict with. Averaged
    // weights get their own, re-estimated on the training data. Then DANN's
    // target statistics are AdaBN's, re-estimated on the unlabelled target
    // training images; a model trained on one domain only predicts the
    // target with the statistics of the domain it trained on.
    void finish_batchnorm(dann_model *model, Stepper &stepper, bool averaged) {
        if (!r_.batchnorm) return;
        dann_trainer *t = stepper.current() ? stepper.current() : stepper.get(0.0f);
        const size_t chunk = 500;
        if (averaged) {
            // adapt_batchnorm fills the target slots; move them to the source's.
            const dann_batch all = view_of(*train_, 0, train_->n);
            check(dann_trainer_adapt_batchnorm(t, &all, chunk), "dann_trainer_adapt_batchnorm");
            copy_statistics(model, true);
        }
        if (c_.mode == Mode::dann && r_.adabn) {
            const dann_batch all = view_of(*target_, 0, target_->n);
            check(dann_trainer_adapt_batchnorm(t, &all, chunk), "dann_trainer_adapt_batchnorm");
        } else {
            copy_statistics(model, false);
        }
    }

    // Adds one step (or a pair of steps) to the log window; writes a row
    // every log_every steps of the session and at the end of a phase.
    void record(const dann_model *model, const dann_step_result &res, double p, float lr,
                float lambda, int64_t steps, bool last) {
        const int64_t before = done_, every = std::max<int64_t>(1, hooks_.log_every);
        done_ += steps;
        window_.label_loss += double(res.label_loss);
        window_.domain_loss += double(res.domain_loss);
        window_.domain_accuracy += double(res.domain_accuracy);
        window_.target_entropy += double(res.target_entropy);
        ++window_n_;
        if (hooks_.log && (last || done_ / every != before / every)) {
            LogRow row = window_;
            const double w = double(window_n_);
            row.step = done_;
            row.p = p;
            row.lr = double(lr);
            row.lambda = double(lambda);
            row.label_loss /= w;
            row.domain_loss /= w;
            row.domain_accuracy /= w;
            row.target_entropy /= w;
            if (hooks_.eval) {
                // A one-domain model's target statistics are set only at the
                // end; until then it predicts with the ones it trains.
                const dann_domain domain =
                    c_.mode == Mode::dann ? hooks_.eval_domain : DANN_DOMAIN_SOURCE;
                row.eval_accuracy = evaluate(model, *hooks_.eval, domain, c_.threads);
            }
            hooks_.log(row);
            window_ = LogRow{};
            window_n_ = 0;
        }
        if (hooks_.progress) hooks_.progress(done_, total_);
    }

    // Label-free score of a candidate (lower is better): the error on the
    // labelled source training data plus the mean prediction entropy on the
    // unlabelled target training data, in units of ln(classes).
    CandidateScore label_free_score(const dann_model *model) const {
        const size_t k = size_t(classes_);
        const std::vector<float> ps = predict_all(model, *train_, DANN_DOMAIN_SOURCE);
        size_t wrong = 0;
        for (size_t i = 0; i < train_->n; ++i)
            wrong += argmax(&ps[i * k], k) != size_t(train_->labels[i]);
        const std::vector<float> pt = predict_all(model, *target_, DANN_DOMAIN_TARGET);
        double entropy = 0.0;
        for (size_t i = 0; i < target_->n; ++i)
            for (size_t j = 0; j < k; ++j) {
                const double q = double(pt[i * k + j]);
                if (q > 0.0) entropy -= q * std::log(q);
            }
        CandidateScore cs;
        cs.source_error = double(wrong) / double(train_->n);
        cs.target_entropy = entropy / double(target_->n) / std::log(double(k));
        cs.score = cs.source_error + cs.target_entropy;
        return cs;
    }

    // Self-training (docs/recipes.md): rounds of pseudo-labelling the
    // unlabelled target training data with the model's own predictions. Round
    // r of R keeps the r/R most confident share of each predicted class; each
    // of its steps is one DANN step (source + target, lambda at its maximum)
    // followed by one step on pseudo-labelled target samples alone (no domain
    // term). Only the target's inputs are read, never its labels.
    void self_train(dann_model *model, uint64_t seed) {
        const Dataset &tgt = *target_;
        const size_t b = size_t(c_.batch);
        dann_train_params params = r_.params;
        params.seed = mix64(seed ^ 0x5E1Full);
        Stepper stepper(model, params);
        dann_trainer *t = stepper.get(0.0f);
        std::vector<int32_t> pseudo(tgt.n);
        std::vector<size_t> chosen, idx(b);
        Batch sb, tb, pb;
        for (int round = 0; round < r_.self_rounds; ++round) {
            pseudo_label(model, round, pseudo, chosen);
            for (int64_t s = 0; s < r_.self_steps; ++s) {
                const uint64_t step = uint64_t(round) * uint64_t(r_.self_steps) + uint64_t(s);
                Draws d(seed, kPseudoDraw, step);
                for (size_t i = 0; i < b; ++i) idx[i] = d.below(train_->n);
                gather(*train_, idx, train_->labels.data(), sb);
                for (size_t i = 0; i < b; ++i) idx[i] = d.below(tgt.n);
                gather(tgt, idx, nullptr, tb);
                for (size_t i = 0; i < b; ++i) idx[i] = chosen[d.below(chosen.size())];
                gather(tgt, idx, pseudo.data(), pb);
                dann_step_result res{}, self{};
                check(dann_trainer_step(t, &sb.view, sb.labels.data(), &tb.view, r_.lambda_max,
                                        r_.self_lr, &res),
                      "self-training step " + std::to_string(step));
                check(dann_trainer_step(t, &pb.view, pb.labels.data(), nullptr, 0.0f, r_.self_lr,
                                        &self),
                      "self-training step " + std::to_string(step));
                const bool last = round + 1 == r_.self_rounds && s + 1 == r_.self_steps;
                record(model, res, 1.0, r_.self_lr, r_.lambda_max, 2, last);
            }
        }
    }

    // The model's class for every target training sample, and the samples
    // kept in round `round`: the most confident (round + 1) / R share of each
    // predicted class (ties broken by index, so the choice is deterministic).
    void pseudo_label(const dann_model *model, int round, std::vector<int32_t> &pseudo,
                      std::vector<size_t> &chosen) const {
        const size_t k = size_t(classes_);
        const Dataset &tgt = *target_;
        const std::vector<float> pt = predict_all(model, tgt, DANN_DOMAIN_TARGET);
        std::vector<std::vector<std::pair<float, size_t>>> by_class(k);
        for (size_t i = 0; i < tgt.n; ++i) {
            const size_t y = argmax(&pt[i * k], k);
            pseudo[i] = int32_t(y);
            by_class[y].push_back({pt[i * k + y], i});
        }
        const double share = double(round + 1) / double(r_.self_rounds);
        chosen.clear();
        for (auto &list : by_class) {
            std::sort(list.begin(), list.end(), [](const auto &x, const auto &z) {
                return x.first != z.first ? x.first > z.first : x.second < z.second;
            });
            const size_t take = size_t(std::ceil(share * double(list.size())));
            for (size_t i = 0; i < take; ++i) chosen.push_back(list[i].second);
        }
        std::sort(chosen.begin(), chosen.end());
    }

    const RecipeConfig &c_;
    const Hooks &hooks_;
    Arch arch_;
    Recipe r_;
    const Dataset *target_;
    const Dataset *train_ = nullptr;
    int classes_ = 2, in_c_ = 1;
    std::vector<float> mean_;
    int64_t total_ = 0, done_ = 0;
    LogRow window_;
    int64_t window_n_ = 0;
};

} // namespace

dann_model *train(const RecipeConfig &config, const Dataset &source, const Dataset *target,
                  const Hooks &hooks) {
    Session session(config, resolve(config, parse_arch(config.arch)), source, target, hooks);
    return session.run();
}

int64_t default_steps(const std::string &arch, RecipeKind recipe) {
    return recipe == RecipeKind::best && parse_arch(arch).mlp ? 6000 : 10000;
}

std::string describe_recipe(const RecipeConfig &config) {
    const Recipe r = resolve(config, parse_arch(config.arch));
    char text[512];
    const bool adam = r.params.optimizer == DANN_OPTIMIZER_ADAM;
    std::string s = config.recipe == RecipeKind::paper ? "paper: " : "best: ";
    std::snprintf(text, sizeof text,
                  "%s lr %g/(1+%gp)^%g, lambda %g*(2/(1+exp(-%gp))-1), %d+%d per step",
                  adam ? "Adam" : "SGD momentum 0.9", double(r.mu0), double(r.alpha),
                  double(r.beta), double(r.lambda_max), double(r.gamma), config.batch,
                  config.mode == Mode::dann ? config.batch : 0);
    s += text;
    if (r.params.weight_decay > 0.0f)
        s += ", weight decay " + std::to_string(r.params.weight_decay);
    if (r.batchnorm) s += ", per-domain batch norm";
    if (r.dropout > 0.0f) s += ", dropout " + std::to_string(r.dropout).substr(0, 3);
    if (r.entropy_max > 0.0f) {
        std::snprintf(text, sizeof text, ", target entropy %g (ramped with lambda)",
                      double(r.entropy_max));
        s += text;
    }
    if (r.average > 0.0f) {
        std::snprintf(text, sizeof text, ", weight average %g", double(r.average));
        s += text;
    }
    if (r.batchnorm && r.adabn && config.mode == Mode::dann) s += ", AdaBN";
    if (r.params.precision == DANN_PRECISION_BF16) s += ", bf16 products";
    if (r.self_rounds > 0)
        s += ", self-training " + std::to_string(r.self_rounds) + " rounds x " +
             std::to_string(r.self_steps) + " step pairs";
    if (r.candidates > 1)
        s += ", best of " + std::to_string(r.candidates) +
             " candidates by source error + target entropy";
    return s;
}

double evaluate(const dann_model *model, const Dataset &data, dann_domain domain, int threads) {
    if (!model) fail("evaluate: no model");
    check_dataset(data, "evaluation data", true);
    (void)threads; // the model's own thread setting applies
    dann_model_info info;
    check(dann_model_get_info(model, &info), "dann_model_get_info");
    const size_t k = size_t(info.num_classes);
    const std::vector<float> probs = predict_all(model, data, domain);
    size_t right = 0;
    for (size_t i = 0; i < data.n; ++i) right += argmax(&probs[i * k], k) == size_t(data.labels[i]);
    return double(right) / double(data.n);
}

} // namespace dann::tool
