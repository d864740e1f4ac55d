#include "adapt/adapter.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <new>

#include "core/error.hpp"

namespace dann {
namespace {

constexpr size_t kMaxBatch = size_t(1) << 16;
constexpr size_t kMaxCapacity = size_t(1) << 24;
constexpr size_t kMaxGuardSamples = size_t(1) << 20;

const char *format_name(int f) {
    switch (f) {
    case DANN_INPUT_F32_NCHW: return "DANN_INPUT_F32_NCHW";
    case DANN_INPUT_F32_NHWC: return "DANN_INPUT_F32_NHWC";
    case DANN_INPUT_U8_HWC: return "DANN_INPUT_U8_HWC";
    }
    return "an unknown format";
}

[[noreturn]] void bad_param(const std::string &what) {
    fail(DANN_ERR_INVALID_ARGUMENT, "params." + what);
}

void check_count(size_t value, size_t lo, size_t hi, const char *name) {
    if (value < lo || value > hi)
        bad_param(std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + std::to_string(value));
}

void check_ratio(float value, const char *name) {
    if (!(value >= 0.0f && value <= 1.0f))
        bad_param(std::string(name) + " must be in [0, 1], got " + std::to_string(value));
}

// The replay set as dann_model_set_replay admits it: a model file or a direct
// assignment could still hold something else.
void check_replay(const Model &m, const ReplaySet &rp) {
    const std::string what = "the model's replay set: ";
    const int f = raw_enum(rp.format);
    if (f != DANN_INPUT_U8_HWC && f != DANN_INPUT_F32_NCHW)
        fail(DANN_ERR_INVALID_ARGUMENT, what + "format must be U8_HWC or F32_NCHW");
    if (rp.height != m.in_h || rp.width != m.in_w || (rp.channels != 1 && rp.channels != m.in_c))
        fail(DANN_ERR_SHAPE, what + "samples are " + std::to_string(rp.channels) + "x" +
                                 std::to_string(rp.height) + "x" + std::to_string(rp.width) +
                                 ", the model takes " + std::to_string(m.in_c) + "x" +
                                 std::to_string(m.in_h) + "x" + std::to_string(m.in_w));
    if (rp.data.size() != rp.n * rp.sample_bytes() || rp.labels.size() != rp.n)
        fail(DANN_ERR_INTERNAL, what + "storage does not match its sample count");
    for (size_t i = 0; i < rp.n; ++i)
        if (rp.labels[i] < 0 || rp.labels[i] >= m.num_classes)
            fail(DANN_ERR_INVALID_ARGUMENT, what + "label " + std::to_string(i) + " = " +
                                                std::to_string(rp.labels[i]) + " is outside [0, " +
                                                std::to_string(m.num_classes) + ")");
    if (f == DANN_INPUT_F32_NCHW) {
        const float *x = reinterpret_cast<const float *>(rp.data.data());
        for (size_t i = 0, n = rp.data.size() / sizeof(float); i < n; ++i)
            if (!std::isfinite(x[i]))
                fail(DANN_ERR_NUMERIC, what + "sample " + std::to_string(i / (n / rp.n)) +
                                           " contains NaN or Inf");
    }
}

const dann_adapter_params &checked(const Model &m, const dann_adapter_params &p) {
    check_adapter_params(m, p);
    return p;
}

size_t sample_bytes_of(const Model &m, const dann_adapter_params &p) {
    const size_t c = static_cast<size_t>(p.channels ? p.channels : m.in_c);
    return c * size_t(m.in_h) * size_t(m.in_w) *
           (raw_enum(p.format) == DANN_INPUT_U8_HWC ? 1 : sizeof(float));
}

bool params_finite(const Model &m) {
    for (const Param &p : m.params) {
        const float *x = p.data.f32();
        float sum = 0.0f;
        for (size_t i = 0; i < p.numel; ++i) sum += x[i] * 0.0f;
        if (!std::isfinite(sum)) return false;
    }
    return true;
}

// The status and message of the exception in flight, as the C API boundary
// would report it. Never throws.
dann_status describe_current_exception(std::string &message) noexcept {
    dann_status st = DANN_ERR_INTERNAL;
    try {
        try {
            throw;
        } catch (const Error &e) {
            st = e.status();
            message = e.what();
        } catch (const dnnl::error &e) {
            st = e.status == dnnl_out_of_memory ? DANN_ERR_OUT_OF_MEMORY : DANN_ERR_BACKEND;
            message = std::string("oneDNN: ") + e.what();
        } catch (const std::bad_alloc &) {
            st = DANN_ERR_OUT_OF_MEMORY;
            message = "out of memory";
        } catch (const std::exception &e) {
            message = std::string("internal error: ") + e.what();
        } catch (...) {
            message = "internal error: unknown exception";
        }
    } catch (...) {
        // No room for the message: the status alone.
    }
    return st;
}

} // namespace

dann_adapter_params default_adapter_params() {
    dann_adapter_params p;
    std::memset(&p, 0, sizeof p);
    p.mode = DANN_ADAPT_DANN;
    p.train = dann_train_params_default();
    p.train.optimizer = DANN_OPTIMIZER_ADAM;
    p.lr = 1e-4f;
    p.lambda = 0.3f;
    p.source_batch = 32;
    p.target_batch = 32;
    p.steps_per_round = 20;
    p.min_new_samples = 64;
    p.capacity = 2048;
    p.format = DANN_INPUT_U8_HWC;
    p.channels = 0;
    p.guard_samples = 256;
    p.guard_max_replay_drop = 0.05f;
    p.guard_min_class_entropy = 0.5f;
    p.memory_budget = 0;
    p.background = 1;
    return p;
}

void check_adapter_params(const Model &m, const dann_adapter_params &p) {
    const int mode = raw_enum(p.mode);
    if (mode != DANN_ADAPT_DANN && mode != DANN_ADAPT_BATCHNORM)
        bad_param("mode: unknown adaptation mode " + std::to_string(mode) +
                  " (DANN_ADAPT_DANN or DANN_ADAPT_BATCHNORM)");
    const bool dann_mode = mode == DANN_ADAPT_DANN;
    check_train_params(p.train, "params.train.");
    if (!(std::isfinite(p.lr) && p.lr >= 0.0f))
        bad_param("lr must be finite and >= 0, got " + std::to_string(p.lr));
    if (!(std::isfinite(p.lambda) && p.lambda >= 0.0f))
        bad_param("lambda must be finite and >= 0, got " + std::to_string(p.lambda));
    if (dann_mode) {
        check_count(p.source_batch, 1, kMaxBatch, "source_batch");
        check_count(p.steps_per_round, 1, kMaxCapacity, "steps_per_round");
    }
    // AdaBN needs at least two samples for batch statistics.
    check_count(p.target_batch, dann_mode ? 1 : 2, kMaxBatch, "target_batch");
    if (p.capacity < p.target_batch || p.capacity > kMaxCapacity)
        bad_param("capacity must be at least target_batch (" + std::to_string(p.target_batch) +
                  ") and at most " + std::to_string(kMaxCapacity) + ", got " +
                  std::to_string(p.capacity));
    const int format = raw_enum(p.format);
    if (format != DANN_INPUT_U8_HWC && format != DANN_INPUT_F32_NCHW)
        bad_param(std::string("format must be DANN_INPUT_U8_HWC or DANN_INPUT_F32_NCHW, got ") +
                  format_name(format) + " (" + std::to_string(format) + ")");
    if (p.channels != 0 && p.channels != 1 && p.channels != m.in_c)
        bad_param("channels must be 0 (the model's), 1 or the model's " + std::to_string(m.in_c) +
                  ", got " + std::to_string(p.channels));
    check_count(p.guard_samples, 1, kMaxGuardSamples, "guard_samples");
    check_ratio(p.guard_max_replay_drop, "guard_max_replay_drop");
    check_ratio(p.guard_min_class_entropy, "guard_min_class_entropy");

    if (m.replay.n > 0) check_replay(m, m.replay);
    if (dann_mode && m.replay.n == 0)
        fail(DANN_ERR_INVALID_ARGUMENT,
             "DANN_ADAPT_DANN needs labelled source samples: the model has no replay set "
             "(dann_model_set_replay), or use DANN_ADAPT_BATCHNORM");
    if (!dann_mode && !has_batchnorm(m))
        fail(DANN_ERR_INVALID_ARGUMENT,
             "DANN_ADAPT_BATCHNORM re-estimates batch-norm statistics, but the model has no "
             "BATCHNORM layer");
}

Adapter::Adapter(const Model &m, const dann_adapter_params &params)
    : p_(checked(m, params)), dann_mode_(raw_enum(params.mode) == DANN_ADAPT_DANN),
      channels_(params.channels ? params.channels : m.in_c),
      sample_bytes_(sample_bytes_of(m, params)), ring_(params.capacity, sample_bytes_),
      rng_(splitmix64_hash(params.train.seed ^ 0xA5A5A5A5DA77ull)) {
    // Rounds may run on another thread than this one: fix the thread count
    // the plans are built for.
    const int threads = m.threads > 0 ? m.threads : omp_get_max_threads();
    working_ = m.clone();
    working_->threads = threads;
    committed_ = copy_without_replay(m);
    committed_->threads = threads;
    published_ = std::make_unique<Snapshot>(m);

    const size_t tb = p_.target_batch;
    target_stage_.resize(tb * sample_bytes_);
    if (dann_mode_) {
        trainer_ = std::make_unique<Trainer>(*working_, p_.train);
        trainer_->reserve_step(p_.source_batch, tb);
        source_stage_.resize(p_.source_batch * working_->replay.sample_bytes());
        source_labels_.assign(p_.source_batch, 0);
    } else {
        batchnorm_ = std::make_unique<BatchnormPass>(*working_, tb);
    }
    Guard::Setup setup;
    setup.replay = &working_->replay;
    setup.guard_samples = p_.guard_samples;
    setup.format = p_.format;
    setup.channels = channels_;
    guard_ = std::make_unique<Guard>(*working_, *committed_, setup);
    stats_.reference_replay_accuracy = guard_->reference_accuracy();
    stats_.replay_accuracy = stats_.reference_replay_accuracy;

    bytes_ = model_bytes(*working_) + model_bytes(*committed_) + published_->bytes() +
             (trainer_ ? trainer_->bytes() : 0) + (batchnorm_ ? batchnorm_->bytes() : 0) +
             guard_->bytes() + ring_.bytes() + source_stage_.bytes() + target_stage_.bytes() +
             source_labels_.capacity() * sizeof(int32_t);
    if (p_.memory_budget > 0 && bytes_ > p_.memory_budget)
        fail(DANN_ERR_OUT_OF_MEMORY, "the adapter needs " + std::to_string(bytes_) +
                                         " bytes, the budget is " +
                                         std::to_string(p_.memory_budget) +
                                         " (params.memory_budget)");
    // Last: a constructor that throws after this would leave a joinable thread.
    if (p_.background) thread_ = std::thread([this] { thread_main(); });
}

Adapter::~Adapter() {
    {
        std::lock_guard<std::mutex> lock(ring_mu_);
        quit_ = true;
        running_ = false;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Adapter::push(const dann_batch &b) {
    const int f = raw_enum(b.format);
    if (f != raw_enum(p_.format))
        fail(DANN_ERR_INVALID_ARGUMENT, std::string("batch: format ") + format_name(f) +
                                            ", the adapter takes " +
                                            format_name(raw_enum(p_.format)) + " (params.format)");
    if (b.channels != channels_)
        fail(DANN_ERR_SHAPE, "batch: " + std::to_string(b.channels) +
                                 " channels, the adapter takes " + std::to_string(channels_) +
                                 " (params.channels)");
    if (f == DANN_INPUT_F32_NCHW) {
        const float *x = static_cast<const float *>(b.data);
        const size_t per = sample_bytes_ / sizeof(float);
        for (size_t i = 0, n = b.n * per; i < n; ++i)
            if (!std::isfinite(x[i]))
                fail(DANN_ERR_NUMERIC, "batch: sample " + std::to_string(i / per) +
                                           " contains NaN or Inf; nothing was pushed");
    }
    {
        std::lock_guard<std::mutex> lock(ring_mu_);
        ring_.push(static_cast<const uint8_t *>(b.data), b.n);
        new_since_round_ += b.n;
    }
    cv_.notify_all();
}

void Adapter::gather_source() {
    const ReplaySet &rp = working_->replay;
    const size_t bytes = rp.sample_bytes();
    uint8_t *dst = static_cast<uint8_t *>(source_stage_.data());
    for (size_t i = 0; i < p_.source_batch; ++i) {
        const size_t k = static_cast<size_t>(rng_.next() % rp.n);
        std::memcpy(dst + i * bytes, rp.data.data() + k * bytes, bytes);
        source_labels_[i] = rp.labels[k];
    }
}

void Adapter::gather_target() {
    uint8_t *dst = static_cast<uint8_t *>(target_stage_.data());
    std::lock_guard<std::mutex> lock(ring_mu_);
    const size_t n = ring_.size();
    for (size_t i = 0; i < p_.target_batch; ++i) {
        const size_t k = static_cast<size_t>(rng_.next() % n);
        std::memcpy(dst + i * sample_bytes_, ring_.sample(k), sample_bytes_);
    }
}

void Adapter::dann_steps(size_t &done, double (&sums)[3], dann_guard_reason &reason) {
    const ReplaySet &rp = working_->replay;
    dann_batch source = rp.batch(0, p_.source_batch);
    source.data = source_stage_.data();
    dann_batch target = source;
    target.format = p_.format;
    target.channels = channels_;
    target.data = target_stage_.data();
    target.n = p_.target_batch;
    for (size_t s = 0; s < p_.steps_per_round; ++s) {
        gather_source();
        gather_target();
        dann_step_result r;
        try {
            r = trainer_->step(source, source_labels_.data(), &target, p_.lambda, p_.lr);
        } catch (const Error &e) {
            if (e.status() != DANN_ERR_NUMERIC) throw;
            reason = DANN_GUARD_NONFINITE; // the rejected step was not applied
            return;
        }
        sums[0] += static_cast<double>(r.label_loss);
        sums[1] += static_cast<double>(r.domain_loss);
        sums[2] += static_cast<double>(r.domain_accuracy);
        ++done;
    }
}

void Adapter::batchnorm_pass(size_t n_ring) {
    // The most recent whole batches: one plan, one batch size.
    const size_t tb = p_.target_batch;
    const size_t total = n_ring / tb * tb;
    dann_batch part;
    part.format = p_.format;
    part.data = target_stage_.data();
    part.n = tb;
    part.height = working_->in_h;
    part.width = working_->in_w;
    part.channels = channels_;
    for (size_t seen = 0; seen < total; seen += tb) {
        {
            std::lock_guard<std::mutex> lock(ring_mu_);
            ring_.copy(ring_.size() - total + seen, tb,
                       static_cast<uint8_t *>(target_stage_.data()));
        }
        batchnorm_->accumulate(part, seen);
    }
}

void Adapter::restore_working() {
    working_->copy_params_from(published_->publisher_view());
    if (trainer_) trainer_->reset_optimizer();
}

void Adapter::round() {
    std::lock_guard<std::mutex> round_lock(round_mu_);
    size_t n_ring = 0, n_recent = 0;
    {
        std::lock_guard<std::mutex> lock(ring_mu_);
        n_ring = ring_.size();
        if (n_ring < p_.target_batch)
            fail(DANN_ERR_SHAPE, "the ring buffer holds " + std::to_string(n_ring) +
                                     " samples; a round needs at least target_batch = " +
                                     std::to_string(p_.target_batch) + " (dann_adapter_push)");
        new_since_round_ = 0;
        n_recent = std::min(guard_->guard_samples(), n_ring);
        ring_.copy(n_ring - n_recent, n_recent, guard_->recent());
    }

    size_t done = 0;
    double sums[3] = {0.0, 0.0, 0.0};
    dann_guard_reason reason = DANN_GUARD_NONE;
    Guard::Verdict verdict;
    try {
        if (dann_mode_)
            dann_steps(done, sums, reason);
        else
            batchnorm_pass(n_ring);
        if (reason == DANN_GUARD_NONE && !params_finite(*working_)) reason = DANN_GUARD_NONFINITE;
        verdict = guard_->check(n_recent, reason == DANN_GUARD_NONE, p_.guard_max_replay_drop,
                                p_.guard_min_class_entropy);
        if (reason == DANN_GUARD_NONE) reason = verdict.reason;
    } catch (...) {
        restore_working();
        throw;
    }
    const bool accepted = reason == DANN_GUARD_NONE;
    if (accepted)
        published_->publish(*working_);
    else
        restore_working();

    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.rounds;
    stats_.steps += done;
    const double steps = done ? static_cast<double>(done) : 1.0;
    stats_.label_loss = static_cast<float>(sums[0] / steps);
    stats_.domain_loss = static_cast<float>(sums[1] / steps);
    stats_.domain_accuracy = static_cast<float>(sums[2] / steps);
    stats_.drift = verdict.drift;
    if (accepted) {
        ++stats_.snapshots;
        stats_.replay_accuracy = verdict.replay_accuracy;
        stats_.class_entropy = verdict.class_entropy;
    } else {
        ++stats_.guard_events;
        stats_.last_guard_reason = reason;
    }
}

void Adapter::run(size_t rounds) {
    {
        std::lock_guard<std::mutex> lock(ring_mu_);
        if (running_)
            fail(DANN_ERR_INVALID_ARGUMENT,
                 "the background thread is running (dann_adapter_start): stop it first");
    }
    for (size_t r = 0; r < rounds; ++r) round();
}

void Adapter::thread_main() {
    std::unique_lock<std::mutex> lock(ring_mu_);
    for (;;) {
        cv_.wait(lock, [this] {
            return quit_ || (running_ && waiting_ == 0 && ring_.size() >= p_.target_batch &&
                             new_since_round_ >= p_.min_new_samples);
        });
        if (quit_) return;
        busy_ = true;
        lock.unlock();
        dann_status st = DANN_OK;
        std::string message;
        try {
            round();
        } catch (...) {
            st = describe_current_exception(message);
        }
        lock.lock();
        if (st != DANN_OK && error_status_ == DANN_OK) {
            error_status_ = st;
            error_message_.swap(message);
        }
        busy_ = false;
        cv_.notify_all();
    }
}

void Adapter::start() {
    if (!p_.background)
        fail(DANN_ERR_INVALID_ARGUMENT,
             "the adapter has no background thread: it was created with params.background = 0");
    {
        std::lock_guard<std::mutex> lock(ring_mu_);
        if (!running_) {
            running_ = true;
            error_status_ = DANN_OK;
            error_message_.clear();
        }
    }
    cv_.notify_all();
}

dann_status Adapter::stop(std::string &message) {
    std::unique_lock<std::mutex> lock(ring_mu_);
    running_ = false;
    cv_.wait(lock, [this] { return !busy_; });
    const dann_status st = error_status_;
    message.swap(error_message_);
    error_status_ = DANN_OK;
    error_message_.clear();
    return st;
}

// Marks a commit() or rollback() as waiting for round_mu_ while it lives.
class Adapter::Waiter {
public:
    explicit Waiter(Adapter &a) : a_(a) {
        std::lock_guard<std::mutex> lock(a_.ring_mu_);
        ++a_.waiting_;
    }
    ~Waiter() {
        {
            std::lock_guard<std::mutex> lock(a_.ring_mu_);
            --a_.waiting_;
        }
        a_.cv_.notify_all();
    }
    Waiter(const Waiter &) = delete;
    Waiter &operator=(const Waiter &) = delete;

private:
    Adapter &a_;
};

void Adapter::commit() {
    const Waiter waiter(*this);
    std::lock_guard<std::mutex> round_lock(round_mu_);
    committed_->copy_params_from(published_->publisher_view());
    guard_->measure_reference();
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.reference_replay_accuracy = guard_->reference_accuracy();
    stats_.replay_accuracy = stats_.reference_replay_accuracy;
}

void Adapter::rollback() {
    const Waiter waiter(*this);
    std::lock_guard<std::mutex> round_lock(round_mu_);
    working_->copy_params_from(*committed_);
    if (trainer_) trainer_->reset_optimizer();
    published_->publish(*working_);
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.snapshots;
    stats_.replay_accuracy = stats_.reference_replay_accuracy;
}

dann_adapter_stats Adapter::stats() const {
    dann_adapter_stats s;
    {
        std::lock_guard<std::mutex> lock(stats_mu_);
        s = stats_;
    }
    std::lock_guard<std::mutex> lock(ring_mu_);
    s.samples_pushed = ring_.pushed();
    s.samples_buffered = ring_.size();
    s.running = running_ ? 1 : 0;
    return s;
}

void Adapter::copy_snapshot_to(Model &dst) const {
    const Model &src = *working_;
    bool same = dst.in_c == src.in_c && dst.in_h == src.in_h && dst.in_w == src.in_w &&
                dst.params.size() == src.params.size();
    for (size_t i = 0; same && i < src.params.size(); ++i)
        same = dst.params[i].name == src.params[i].name &&
               dst.params[i].shape == src.params[i].shape;
    if (!same)
        fail(DANN_ERR_INVALID_ARGUMENT,
             "model: its architecture differs from the adapter's (input " +
                 std::to_string(dst.in_c) + "x" + std::to_string(dst.in_h) + "x" +
                 std::to_string(dst.in_w) + " with " + std::to_string(dst.params.size()) +
                 " parameters, the adapter's " + std::to_string(src.in_c) + "x" +
                 std::to_string(src.in_h) + "x" + std::to_string(src.in_w) + " with " +
                 std::to_string(src.params.size()) + ")");
    // Copies that may fail first, so that a failure leaves `dst` unchanged.
    ReplaySet replay = src.replay;
    std::vector<float> mean = src.input_mean;
    published_->read(dst);
    dst.input_scale = src.input_scale;
    dst.input_mean.swap(mean);
    dst.replay = std::move(replay);
}

} // namespace dann
