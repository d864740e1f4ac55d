#include "io/model_file.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>
#include <zlib.h>

#include "core/error.hpp"

namespace dann {
namespace {

constexpr char kMagic[8] = {'D', 'A', 'N', 'N', 'M', 'O', 'D', 'L'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kFlagOptimizer = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 4; // magic, version, flags, size, crc
constexpr uint64_t kMaxPayload = uint64_t(1) << 34;

// Little-endian encoding, whatever the host.
class Writer {
public:
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
    void f32(float v) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        u32(u);
    }
    void floats(const float *v, size_t n) {
        for (size_t i = 0; i < n; ++i) f32(v[i]);
    }
    void str(const std::string &s) {
        u32(static_cast<uint32_t>(s.size()));
        bytes.insert(bytes.end(), s.begin(), s.end());
    }
    std::vector<uint8_t> bytes;
};

class Reader {
public:
    Reader(const uint8_t *p, size_t n, const std::string &path) : p_(p), left_(n), path_(path) {}
    uint32_t u32(const char *what) {
        need(4, what);
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= uint32_t(p_[i]) << (8 * i);
        advance(4);
        return v;
    }
    uint64_t u64(const char *what) {
        need(8, what);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t(p_[i]) << (8 * i);
        advance(8);
        return v;
    }
    int32_t i32(const char *what) { return static_cast<int32_t>(u32(what)); }
    float f32(const char *what) {
        const uint32_t u = u32(what);
        float v;
        std::memcpy(&v, &u, 4);
        return v;
    }
    void floats(float *out, uint64_t n, const std::string &what) {
        if (n > left_ / 4) bad("truncated: " + what + " needs " + std::to_string(n * 4) +
                               " bytes, " + std::to_string(left_) + " remain");
        for (uint64_t i = 0; i < n; ++i) out[i] = f32(what.c_str());
    }
    std::string str(const char *what, uint32_t max_len) {
        const uint32_t n = u32(what);
        if (n > max_len) bad(std::string(what) + " of " + std::to_string(n) + " bytes is too long");
        need(n, what);
        std::string s(reinterpret_cast<const char *>(p_), n);
        advance(n);
        return s;
    }
    size_t left() const { return left_; }
    [[noreturn]] void bad(const std::string &what) const {
        fail(DANN_ERR_FORMAT, path_ + ": " + what);
    }

private:
    void need(size_t n, const char *what) const {
        if (n > left_)
            bad(std::string("truncated while reading ") + what + " (" + std::to_string(n) +
                " bytes needed, " + std::to_string(left_) + " remain)");
    }
    void advance(size_t n) {
        p_ += n;
        left_ -= n;
    }
    const uint8_t *p_;
    size_t left_;
    const std::string &path_;
};

void write_layers(Writer &w, const std::vector<LayerSpec> &layers) {
    w.u32(static_cast<uint32_t>(layers.size()));
    for (const LayerSpec &s : layers) {
        const dann_layer_desc &d = s.desc;
        w.i32(raw_enum(d.kind));
        for (int v : {d.units, d.kernel_h, d.kernel_w, d.stride_h, d.stride_w, d.pad_h, d.pad_w})
            w.i32(v);
        w.f32(d.rate);
        w.f32(d.eps);
        w.f32(d.momentum);
    }
}

std::vector<dann_layer_desc> read_layers(Reader &r, const char *stack) {
    const uint32_t n = r.u32("layer count");
    if (n > 4096) r.bad(std::string(stack) + ": " + std::to_string(n) + " layers is too many");
    std::vector<dann_layer_desc> out(n);
    for (dann_layer_desc &d : out) {
        std::memset(&d, 0, sizeof d);
        const int32_t kind = r.i32("layer kind");
        if (kind < DANN_LAYER_CONV2D || kind > DANN_LAYER_FLATTEN)
            r.bad(std::string(stack) + ": unknown layer kind " + std::to_string(kind));
        d.kind = static_cast<dann_layer_kind>(kind);
        for (int *v : {&d.units, &d.kernel_h, &d.kernel_w, &d.stride_h, &d.stride_w, &d.pad_h,
                       &d.pad_w})
            *v = r.i32("layer field");
        d.rate = r.f32("dropout rate");
        d.eps = r.f32("batch-norm eps");
        d.momentum = r.f32("batch-norm momentum");
    }
    return out;
}

std::vector<uint8_t> read_file(const std::string &path) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) fail(DANN_ERR_IO, "cannot open " + path + ": " + std::strerror(errno));
    std::vector<uint8_t> data;
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) {
        data.insert(data.end(), buf, buf + got);
        if (data.size() > kMaxPayload + kHeaderBytes) {
            std::fclose(f);
            fail(DANN_ERR_FORMAT, path + ": file is too large to be a model");
        }
    }
    const bool error = std::ferror(f) != 0;
    std::fclose(f);
    if (error) fail(DANN_ERR_IO, "cannot read " + path);
    return data;
}

// Temporary file in the target's folder, flushed to disk, renamed over the
// target, then the folder flushed: after a crash the old or the new file is
// there, whole.
void write_atomically(const std::string &path, const std::vector<uint8_t> &bytes) {
    std::string tmpl = path + ".tmp.XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    const int fd = mkstemp(name.data());
    if (fd < 0) fail(DANN_ERR_IO, "cannot create a temporary file next to " + path + ": " + std::strerror(errno));
    const std::string tmp(name.data());
    auto give_up = [&](const std::string &what) {
        const int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail(DANN_ERR_IO, what + " " + tmp + ": " + std::strerror(e) + "; " + path + " is unchanged");
    };
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            give_up("cannot write");
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) give_up("cannot flush");
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        fail(DANN_ERR_IO, "cannot close " + tmp + ": " + std::strerror(e) + "; " + path + " is unchanged");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        fail(DANN_ERR_IO, "cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
    }
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        const int rc = ::fsync(dfd);
        const int e = errno;
        ::close(dfd);
        if (rc != 0) fail(DANN_ERR_IO, "cannot flush folder " + dir + ": " + std::strerror(e));
    }
}

} // namespace

void save_model_file(const std::string &path, const Model &m, const OptimizerState *opt) {
    Writer p;
    p.u32(static_cast<uint32_t>(m.in_c));
    p.u32(static_cast<uint32_t>(m.in_h));
    p.u32(static_cast<uint32_t>(m.in_w));
    p.u32(m.domain_bn ? 1 : 0);
    p.f32(m.input_scale);
    p.floats(m.input_mean.data(), m.input_mean.size());
    write_layers(p, m.features);
    write_layers(p, m.label_head);
    write_layers(p, m.domain_head);
    p.u32(static_cast<uint32_t>(m.params.size()));
    for (const Param &q : m.params) {
        p.str(q.name);
        p.u32(static_cast<uint32_t>(q.shape.size()));
        for (int64_t s : q.shape) p.u64(static_cast<uint64_t>(s));
        p.floats(q.data.f32(), q.numel);
    }
    if (opt) {
        p.u32(static_cast<uint32_t>(opt->optimizer));
        p.u64(opt->steps);
        for (size_t i = 0; i < m.params.size(); ++i) {
            p.u64(opt->param_steps[i]);
            p.u64(opt->slot1[i].size());
            p.floats(opt->slot1[i].data(), opt->slot1[i].size());
            p.u64(opt->slot2[i].size());
            p.floats(opt->slot2[i].data(), opt->slot2[i].size());
        }
    }
    Writer f;
    f.bytes.assign(kMagic, kMagic + 8);
    f.u32(kVersion);
    f.u32(opt ? kFlagOptimizer : 0);
    f.u64(p.bytes.size());
    f.u32(static_cast<uint32_t>(crc32(0L, p.bytes.data(), static_cast<uInt>(p.bytes.size()))));
    f.bytes.insert(f.bytes.end(), p.bytes.begin(), p.bytes.end());
    write_atomically(path, f.bytes);
}

LoadedModel load_model_file(const std::string &path) {
    const std::vector<uint8_t> data = read_file(path);
    Reader h(data.data(), data.size(), path);
    if (data.size() < kHeaderBytes || std::memcmp(data.data(), kMagic, 8) != 0)
        h.bad("not a dann model file (bad magic)");
    Reader hr(data.data() + 8, kHeaderBytes - 8, path);
    const uint32_t version = hr.u32("version");
    if (version != kVersion)
        h.bad("format version " + std::to_string(version) + " is not supported (this build reads " +
              std::to_string(kVersion) + ")");
    const uint32_t flags = hr.u32("flags");
    if (flags & ~kFlagOptimizer) h.bad("unknown flags " + std::to_string(flags));
    const uint64_t size = hr.u64("payload size");
    const uint32_t crc = hr.u32("checksum");
    if (size != data.size() - kHeaderBytes)
        h.bad("payload should be " + std::to_string(size) + " bytes, the file holds " +
              std::to_string(data.size() - kHeaderBytes) + " (truncated or padded)");
    const uint8_t *payload = data.data() + kHeaderBytes;
    if (static_cast<uint32_t>(crc32(0L, payload, static_cast<uInt>(size))) != crc)
        h.bad("checksum mismatch: the file is corrupted");

    Reader r(payload, static_cast<size_t>(size), path);
    dann_model_desc desc{};
    desc.in_channels = static_cast<int>(r.u32("input channels"));
    desc.in_height = static_cast<int>(r.u32("input height"));
    desc.in_width = static_cast<int>(r.u32("input width"));
    desc.domain_batchnorm = static_cast<int>(r.u32("domain batch-norm flag"));
    if (desc.in_channels <= 0 || desc.in_channels > 65536)
        r.bad("input channels " + std::to_string(desc.in_channels) + " out of range");
    const float scale = r.f32("input scale");
    std::vector<float> mean(static_cast<size_t>(desc.in_channels));
    r.floats(mean.data(), mean.size(), "input mean");
    const auto features = read_layers(r, "features");
    const auto label = read_layers(r, "label_head");
    const auto domain = read_layers(r, "domain_head");
    desc.features = features.data();
    desc.n_features = features.size();
    desc.label_head = label.data();
    desc.n_label_head = label.size();
    desc.domain_head = domain.data();
    desc.n_domain_head = domain.size();
    LoadedModel out;
    try {
        out.model = Model::create(desc, 0);
    } catch (const Error &e) {
        r.bad(std::string("the architecture is invalid: ") + e.what());
    }
    Model &m = *out.model;
    if (!std::isfinite(scale)) r.bad("input scale is not finite");
    for (float v : mean)
        if (!std::isfinite(v)) r.bad("input mean is not finite");
    m.input_scale = scale;
    m.input_mean = mean;

    const uint32_t count = r.u32("parameter count");
    if (count != m.params.size())
        r.bad("holds " + std::to_string(count) + " parameters, the architecture has " +
              std::to_string(m.params.size()));
    for (Param &q : m.params) {
        const std::string name = r.str("parameter name", 4096);
        if (name != q.name) r.bad("parameter '" + name + "' where '" + q.name + "' was expected");
        const uint32_t ndim = r.u32("parameter rank");
        if (ndim != q.shape.size()) r.bad(name + ": rank " + std::to_string(ndim) + " does not match");
        for (int64_t s : q.shape)
            if (r.u64("parameter shape") != static_cast<uint64_t>(s))
                r.bad(name + ": shape does not match the architecture");
        r.floats(q.data.f32(), q.numel, name);
        for (size_t i = 0; i < q.numel; ++i)
            if (!std::isfinite(q.data.f32()[i])) r.bad(name + " holds NaN or Inf");
    }
    if (flags & kFlagOptimizer) {
        OptimizerState &s = out.optimizer;
        out.has_optimizer = true;
        s.optimizer = static_cast<int>(r.u32("optimizer"));
        if (s.optimizer != DANN_OPTIMIZER_SGD && s.optimizer != DANN_OPTIMIZER_ADAM)
            r.bad("unknown optimizer " + std::to_string(s.optimizer));
        s.steps = r.u64("step count");
        for (const Param &q : m.params) {
            s.param_steps.push_back(r.u64("parameter step count"));
            for (auto *slot : {&s.slot1, &s.slot2}) {
                const uint64_t n = r.u64("optimizer state size");
                const bool second = slot == &s.slot2;
                const uint64_t want = !q.trainable ? 0
                                      : second     ? (s.optimizer == DANN_OPTIMIZER_ADAM ? q.numel : 0)
                                                   : q.numel;
                if (n != want) r.bad(q.name + ": optimizer state has " + std::to_string(n) +
                                     " values, expected " + std::to_string(want));
                slot->emplace_back(static_cast<size_t>(n));
                r.floats(slot->back().data(), n, q.name + " optimizer state");
            }
        }
    }
    if (r.left() != 0) r.bad(std::to_string(r.left()) + " unexpected bytes after the contents");
    return out;
}

void copy_weights(const Model &src, Model &dst) {
    bool same = src.params.size() == dst.params.size() && src.in_c == dst.in_c &&
                src.in_h == dst.in_h && src.in_w == dst.in_w && src.domain_bn == dst.domain_bn;
    for (size_t i = 0; same && i < src.params.size(); ++i)
        same = src.params[i].name == dst.params[i].name && src.params[i].shape == dst.params[i].shape;
    if (!same) fail(DANN_ERR_SHAPE, "the file's architecture differs from the trainer's model");
    for (size_t i = 0; i < src.params.size(); ++i)
        std::memcpy(dst.params[i].data.f32(), src.params[i].data.f32(), src.params[i].numel * sizeof(float));
    dst.input_scale = src.input_scale;
    dst.input_mean = src.input_mean;
    ++dst.version;
}

} // namespace dann
