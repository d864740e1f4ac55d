// Format version 1 (docs/model-format.md, "Reading version 1"): a 28-byte
// header with one CRC-32 over a payload that holds everything in a fixed
// order. Read, never written.
#include <cstring>
#include <zlib.h>

#include "io/model_parts.hpp"

namespace dann::io {
namespace {

constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 4; // magic, version, flags, size, crc
constexpr uint32_t kFlagOptimizer = 1;

struct HeaderV1 {
    uint32_t flags = 0;
    uint64_t payload_bytes = 0;
    uint32_t crc = 0;
};

HeaderV1 read_header(const uint8_t *data, size_t size, const ByteReader &whole) {
    if (size < kHeaderBytes)
        whole.bad("truncated: " + std::to_string(size) + " bytes, a version 1 header alone is " +
                  std::to_string(kHeaderBytes));
    ByteReader h(data + 12, kHeaderBytes - 12, whole.context());
    HeaderV1 out;
    out.flags = h.u32("flags");
    out.payload_bytes = h.u64("payload size");
    out.crc = h.u32("checksum");
    if (out.flags & ~kFlagOptimizer) whole.bad("unknown flags " + std::to_string(out.flags));
    const uint64_t held = size - kHeaderBytes;
    if (out.payload_bytes > held)
        whole.bad("truncated: the payload should be " + std::to_string(out.payload_bytes) +
                  " bytes, the file holds " + std::to_string(held));
    if (out.payload_bytes < held)
        whole.bad("the payload should be " + std::to_string(out.payload_bytes) + " bytes, the file holds " +
                  std::to_string(held) + " (padded, or two files joined)");
    return out;
}

uint32_t payload_crc(const uint8_t *data, uint64_t bytes) {
    return static_cast<uint32_t>(crc32_z(0L, data + kHeaderBytes, static_cast<z_size_t>(bytes)));
}

} // namespace

ModelFileLayout layout_v1(const uint8_t *data, size_t size, const std::string &name) {
    const ByteReader whole(data, size, name);
    const HeaderV1 h = read_header(data, size, whole);
    ModelFileLayout out;
    out.version = 1;
    out.file_bytes = size;
    ModelSection s;
    s.tag = "payload";
    s.flags = h.flags;
    s.offset = kHeaderBytes;
    s.header_bytes = 0;
    s.body_bytes = h.payload_bytes;
    s.crc = h.crc;
    s.crc_ok = payload_crc(data, h.payload_bytes) == h.crc;
    out.sections.push_back(s);
    return out;
}

LoadedModel parse_model_v1(const uint8_t *data, size_t size, const std::string &name) {
    const ByteReader whole(data, size, name);
    const HeaderV1 h = read_header(data, size, whole);
    if (payload_crc(data, h.payload_bytes) != h.crc) whole.bad("checksum mismatch: the file is corrupted");

    ByteReader r(data + kHeaderBytes, static_cast<size_t>(h.payload_bytes), name);
    dann_model_desc desc{};
    desc.in_channels = static_cast<int>(r.u32("input channels"));
    desc.in_height = static_cast<int>(r.u32("input height"));
    desc.in_width = static_cast<int>(r.u32("input width"));
    const uint32_t domain_bn = r.u32("domain batch-norm flag");
    if (domain_bn > 1) r.bad("domain batch-norm flag " + std::to_string(domain_bn) + " is not 0 or 1");
    desc.domain_batchnorm = static_cast<int>(domain_bn);
    if (desc.in_channels <= 0 || desc.in_channels > 65536)
        r.bad("input channels " + std::to_string(desc.in_channels) + " out of range");
    const float scale = r.f32("input scale");
    std::vector<float> mean;
    r.need_items(uint64_t(desc.in_channels), 4, "input mean");
    mean.resize(static_cast<size_t>(desc.in_channels));
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
    out.format_version = 1;
    out.model = create_checked(desc, r.left(), r);
    Model &m = *out.model;
    check_norm(r, scale, mean);
    m.input_scale = scale;
    m.input_mean = mean;
    read_params(r, m);
    if (h.flags & kFlagOptimizer) {
        out.has_optimizer = true;
        read_optimizer(r, m, out.optimizer);
    }
    if (r.left() != 0) r.bad(std::to_string(r.left()) + " unexpected bytes after the contents");
    return out;
}

} // namespace dann::io
