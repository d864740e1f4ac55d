#include "io/replay.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace dann::io {
namespace {

bool stored_format(int format) { return format == DANN_INPUT_U8_HWC || format == DANN_INPUT_F32_NCHW; }

const char *format_name(int format) {
    return format == DANN_INPUT_U8_HWC ? "U8_HWC" : format == DANN_INPUT_F32_NCHW ? "F32_NCHW" : "F32_NHWC";
}

std::string dims_text(int c, int h, int w) {
    return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

// The first sample (of `n`, each `values` floats) holding NaN or Inf; n if none.
size_t first_non_finite(const uint8_t *data, size_t n, size_t values) {
    for (size_t s = 0; s < n; ++s)
        for (size_t i = 0; i < values; ++i) {
            float v;
            std::memcpy(&v, data + (s * values + i) * sizeof(float), sizeof v);
            if (!std::isfinite(v)) return s;
        }
    return n;
}

} // namespace

ReplaySet make_replay_set(const Model &m, const dann_batch &b, const int32_t *labels) {
    const int format = raw_enum(b.format);
    if (!stored_format(format))
        fail(DANN_ERR_INVALID_ARGUMENT, "replay samples: format must be DANN_INPUT_U8_HWC or "
                                        "DANN_INPUT_F32_NCHW, got " + std::to_string(format));
    if (!b.data) fail(DANN_ERR_INVALID_ARGUMENT, "replay samples: data is NULL");
    if (!labels) fail(DANN_ERR_INVALID_ARGUMENT, "replay labels are NULL");
    if (b.n > kMaxReplaySamples)
        fail(DANN_ERR_SHAPE, "replay set of " + std::to_string(b.n) + " samples is too large (at most " +
                                 std::to_string(kMaxReplaySamples) + ")");
    if (b.height != m.in_h || b.width != m.in_w || (b.channels != m.in_c && b.channels != 1))
        fail(DANN_ERR_SHAPE, "replay samples are " + dims_text(b.channels, b.height, b.width) +
                                 " (channels x height x width), the model reads " +
                                 dims_text(m.in_c, m.in_h, m.in_w) + " (or 1 channel)");
    for (size_t i = 0; i < b.n; ++i)
        if (labels[i] < 0 || labels[i] >= m.num_classes)
            fail(DANN_ERR_INVALID_ARGUMENT, "replay labels[" + std::to_string(i) + "] = " +
                                                std::to_string(labels[i]) + " is out of range: the model has " +
                                                std::to_string(m.num_classes) + " classes");
    ReplaySet r;
    r.format = static_cast<dann_input_format>(format);
    r.channels = b.channels;
    r.height = b.height;
    r.width = b.width;
    r.n = b.n;
    const size_t bytes = b.n * r.sample_bytes();
    const auto *src = static_cast<const uint8_t *>(b.data);
    if (format == DANN_INPUT_F32_NCHW) {
        const size_t values = r.sample_bytes() / sizeof(float);
        const size_t bad = first_non_finite(src, b.n, values);
        if (bad < b.n)
            fail(DANN_ERR_NUMERIC, "replay sample " + std::to_string(bad) + " holds NaN or Inf");
    }
    r.data.assign(src, src + bytes);
    r.labels.assign(labels, labels + b.n);
    return r;
}

uint32_t replay_label_bytes(int num_classes) {
    if (num_classes <= 256) return 1;
    if (num_classes <= 65536) return 2;
    return 4;
}

void write_replay(ByteWriter &w, const ReplaySet &replay, int num_classes) {
    w.u32(static_cast<uint32_t>(replay.format));
    w.u32(static_cast<uint32_t>(replay.channels));
    w.u32(static_cast<uint32_t>(replay.height));
    w.u32(static_cast<uint32_t>(replay.width));
    w.u64(replay.n);
    const uint32_t label_bytes = replay_label_bytes(num_classes);
    w.u32(label_bytes);
    if (replay.format == DANN_INPUT_U8_HWC) {
        w.raw(replay.data.data(), replay.data.size());
    } else {
        const size_t values = replay.data.size() / sizeof(float);
        w.bytes.reserve(w.bytes.size() + replay.data.size());
        for (size_t i = 0; i < values; ++i) {
            float v;
            std::memcpy(&v, replay.data.data() + i * sizeof(float), sizeof v);
            w.f32(v);
        }
    }
    for (int32_t label : replay.labels) {
        const auto u = static_cast<uint32_t>(label);
        if (label_bytes == 1) w.u8(static_cast<uint8_t>(u));
        else if (label_bytes == 2) w.u16(static_cast<uint16_t>(u));
        else w.u32(u);
    }
}

ReplaySet read_replay(ByteReader &r, const Model &m) {
    ReplaySet out;
    const uint32_t format = r.u32("replay format");
    if (format > 0xffff || !stored_format(static_cast<int>(format)))
        r.bad("unknown replay sample format " + std::to_string(format));
    const uint32_t c = r.u32("replay channels"), h = r.u32("replay height"), w = r.u32("replay width");
    if (h != uint32_t(m.in_h) || w != uint32_t(m.in_w) || (c != uint32_t(m.in_c) && c != 1))
        r.bad("replay samples are " + std::to_string(c) + "x" + std::to_string(h) + "x" +
              std::to_string(w) + ", the model reads " + dims_text(m.in_c, m.in_h, m.in_w) + " (or 1 channel)");
    const uint64_t n = r.u64("replay sample count");
    if (n == 0) r.bad("the replay set holds no samples");
    if (n > kMaxReplaySamples) r.bad("replay set of " + std::to_string(n) + " samples is too large");
    const uint32_t label_bytes = r.u32("replay label width");
    if (label_bytes != replay_label_bytes(m.num_classes))
        r.bad("replay labels of " + std::to_string(label_bytes) + " bytes; " +
              std::to_string(m.num_classes) + " classes take " +
              std::to_string(replay_label_bytes(m.num_classes)));
    out.format = static_cast<dann_input_format>(format);
    out.channels = static_cast<int>(c);
    out.height = static_cast<int>(h);
    out.width = static_cast<int>(w);
    const size_t sample_bytes = out.sample_bytes();
    // Samples and labels must both fit in what remains before either is read.
    r.need_items(n, sample_bytes + label_bytes, "replay set (" + std::to_string(n) + " " +
                                                    format_name(static_cast<int>(format)) + " samples)");
    out.n = static_cast<size_t>(n);
    const uint8_t *samples = r.bytes(out.n * sample_bytes, "replay samples");
    if (out.format == DANN_INPUT_U8_HWC) {
        out.data.assign(samples, samples + out.n * sample_bytes);
    } else {
        out.data.resize(out.n * sample_bytes);
        for (size_t i = 0; i < out.data.size(); i += 4) {
            const auto u = static_cast<uint32_t>(get_le(samples + i, 4));
            std::memcpy(out.data.data() + i, &u, 4);
        }
        const size_t bad = first_non_finite(out.data.data(), out.n, sample_bytes / sizeof(float));
        if (bad < out.n) r.bad("replay sample " + std::to_string(bad) + " holds NaN or Inf");
    }
    const uint8_t *labels = r.bytes(out.n * label_bytes, "replay labels");
    out.labels.resize(out.n);
    for (size_t i = 0; i < out.n; ++i) {
        const uint64_t label = get_le(labels + i * label_bytes, static_cast<int>(label_bytes));
        if (label >= uint64_t(m.num_classes))
            r.bad("replay label " + std::to_string(label) + " of sample " + std::to_string(i) +
                  " is out of range: the model has " + std::to_string(m.num_classes) + " classes");
        out.labels[i] = static_cast<int32_t>(label);
    }
    return out;
}

} // namespace dann::io
