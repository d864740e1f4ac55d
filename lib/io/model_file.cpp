// Format version 2 (docs/model-format.md): a fixed header with its own CRC,
// then tagged sections, each with a CRC over its header fields and body.
#include "io/model_file.hpp"

#include <cstring>
#include <zlib.h>

#include "core/error.hpp"
#include "io/model_parts.hpp"
#include "io/replay.hpp"

namespace dann {
namespace {

using io::ByteReader;
using io::ByteWriter;

constexpr uint8_t kMagic[8] = {'D', 'A', 'N', 'N', 'M', 'O', 'D', 'L'};
// magic, version, flags, file size, section count, header CRC
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 4 + 4;
constexpr size_t kHeaderCrcOffset = 28;
// tag, flags, body length, CRC
constexpr size_t kSectionHeaderBytes = 4 + 4 + 8 + 4;
constexpr size_t kSectionCrcOffset = 16;
constexpr uint32_t kSectionOptional = 1;
constexpr uint32_t kMaxSections = 1024;

enum Known { kArch, kNorm, kParm, kOptm, kRply, kKnownCount };
constexpr const char *kTags[kKnownCount] = {"ARCH", "NORM", "PARM", "OPTM", "RPLY"};
// Sections that a reader interested only in running the model could skip.
constexpr uint32_t kWrittenFlags[kKnownCount] = {0, 0, 0, kSectionOptional, kSectionOptional};

uint32_t crc_of(uint32_t crc, const uint8_t *p, uint64_t n) {
    return static_cast<uint32_t>(crc32_z(crc, p, static_cast<z_size_t>(n)));
}

// A section's CRC covers its tag, flags and length as well as its body, so
// that damage to any byte of the file is detected.
uint32_t section_crc(const uint8_t *section, uint64_t body_bytes) {
    return crc_of(crc_of(0, section, kSectionCrcOffset), section + kSectionHeaderBytes, body_bytes);
}

std::string tag_text(const uint8_t *p) {
    static const char hex[] = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 4; ++i) {
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            s += static_cast<char>(p[i]);
        } else {
            s += "\\x";
            s += hex[p[i] >> 4];
            s += hex[p[i] & 15];
        }
    }
    return s;
}

void add_section(ByteWriter &file, Known which, const std::vector<uint8_t> &body) {
    const size_t start = file.bytes.size();
    file.raw(kTags[which], 4);
    file.u32(kWrittenFlags[which]);
    file.u64(body.size());
    file.u32(0);
    file.raw(body.data(), body.size());
    io::put_le(file.bytes.data() + start + kSectionCrcOffset, section_crc(file.bytes.data() + start, body.size()), 4);
}

// A reader that must be used up: anything left over is reported.
void expect_end(const ByteReader &r) {
    if (r.left() != 0) r.bad(std::to_string(r.left()) + " unexpected bytes at the end");
}

void check_magic(const uint8_t *data, size_t size, const ByteReader &whole) {
    if (size < sizeof kMagic) {
        if (size > 0 && std::memcmp(data, kMagic, size) == 0)
            whole.bad("truncated: " + std::to_string(size) + " bytes, too short for a model file");
        whole.bad(size == 0 ? "truncated: the file is empty" : "not a dann model file (bad magic)");
    }
    if (std::memcmp(data, kMagic, sizeof kMagic) != 0) whole.bad("not a dann model file (bad magic)");
    if (size < 12) whole.bad("truncated: " + std::to_string(size) + " bytes, too short for a model file");
}

uint32_t version_of(const uint8_t *data) { return static_cast<uint32_t>(io::get_le(data + 8, 4)); }

[[noreturn]] void unsupported_version(uint32_t version, const ByteReader &whole) {
    whole.bad("format version " + std::to_string(version) + " is not supported (this build reads 1 and " +
              std::to_string(kModelFormatVersion) + ")");
}

ModelFileLayout layout_v2(const uint8_t *data, size_t size, const std::string &name) {
    const ByteReader whole(data, size, name);
    if (size < kHeaderBytes)
        whole.bad("truncated: " + std::to_string(size) + " bytes, the header alone is " +
                  std::to_string(kHeaderBytes));
    ByteReader h(data + 12, kHeaderBytes - 12, name);
    const uint32_t flags = h.u32("header flags");
    const uint64_t file_bytes = h.u64("file size");
    const uint32_t count = h.u32("section count");
    const uint32_t crc = h.u32("header checksum");
    if (crc_of(0, data, kHeaderCrcOffset) != crc) whole.bad("header checksum mismatch: the file is corrupted");
    if (flags != 0) whole.bad("unknown header flags " + std::to_string(flags));
    if (file_bytes > size)
        whole.bad("truncated: the header says " + std::to_string(file_bytes) + " bytes, the file holds " +
                  std::to_string(size));
    if (file_bytes < size)
        whole.bad("the header says " + std::to_string(file_bytes) + " bytes, the file holds " +
                  std::to_string(size) + " (padded, or two files joined)");
    if (count > kMaxSections) whole.bad(std::to_string(count) + " sections is too many");

    ModelFileLayout out;
    out.version = 2;
    out.file_bytes = size;
    size_t pos = kHeaderBytes;
    for (uint32_t i = 0; i < count; ++i) {
        if (size - pos < kSectionHeaderBytes)
            whole.bad("the header counts " + std::to_string(count) + " sections, the file ends after " +
                      std::to_string(i));
        ModelSection s;
        s.tag = tag_text(data + pos);
        ByteReader sh(data + pos + 4, kSectionHeaderBytes - 4, name + ": section " + s.tag);
        s.flags = sh.u32("section flags");
        s.body_bytes = sh.u64("section length");
        s.crc = sh.u32("section checksum");
        s.offset = pos;
        s.header_bytes = kSectionHeaderBytes;
        const size_t remain = size - pos - kSectionHeaderBytes;
        if (s.body_bytes > remain)
            sh.bad("a body of " + std::to_string(s.body_bytes) + " bytes runs past the end of the file (" +
                   std::to_string(remain) + " bytes remain)");
        s.crc_ok = section_crc(data + pos, s.body_bytes) == s.crc;
        pos += kSectionHeaderBytes + static_cast<size_t>(s.body_bytes);
        out.sections.push_back(std::move(s));
    }
    if (pos != size)
        whole.bad(std::to_string(size - pos) + " bytes after the last of the " + std::to_string(count) +
                  " sections");
    return out;
}

LoadedModel parse_v2(const uint8_t *data, size_t size, const std::string &name) {
    const ModelFileLayout layout = layout_v2(data, size, name);
    const ModelSection *found[kKnownCount] = {};
    for (const ModelSection &s : layout.sections) {
        const ByteReader sr(nullptr, 0, name + ": section " + s.tag);
        if (!s.crc_ok) sr.bad("checksum mismatch: the file is corrupted");
        if (s.flags & ~kSectionOptional) sr.bad("unknown section flags " + std::to_string(s.flags));
        int which = -1;
        for (int k = 0; k < kKnownCount; ++k)
            if (s.tag == kTags[k]) which = k;
        if (which < 0) {
            if (s.flags & kSectionOptional) continue; // a newer writer's optional section
            sr.bad("unknown section, not marked optional (written by a newer dann?)");
        }
        if (found[which]) sr.bad("duplicate section");
        found[which] = &s;
    }
    for (int k : {kArch, kNorm, kParm})
        if (!found[k])
            ByteReader(nullptr, 0, name).bad(std::string("missing required section ") + kTags[k]);
    auto body = [&](Known k) {
        const ModelSection &s = *found[k];
        return ByteReader(data + s.offset + s.header_bytes, static_cast<size_t>(s.body_bytes),
                          name + ": section " + kTags[k]);
    };

    ByteReader arch = body(kArch);
    dann_model_desc desc{};
    const uint32_t c = arch.u32("input channels"), h = arch.u32("input height"), w = arch.u32("input width");
    if (c == 0 || c > 65536 || h == 0 || h > 65536 || w == 0 || w > 65536)
        arch.bad("input shape " + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w) +
                 " is out of range");
    desc.in_channels = static_cast<int>(c);
    desc.in_height = static_cast<int>(h);
    desc.in_width = static_cast<int>(w);
    const uint32_t domain_bn = arch.u32("domain batch-norm flag");
    if (domain_bn > 1) arch.bad("domain batch-norm flag " + std::to_string(domain_bn) + " is not 0 or 1");
    desc.domain_batchnorm = static_cast<int>(domain_bn);
    const auto features = io::read_layers(arch, "features");
    const auto label = io::read_layers(arch, "label_head");
    const auto domain = io::read_layers(arch, "domain_head");
    expect_end(arch);
    desc.features = features.data();
    desc.n_features = features.size();
    desc.label_head = label.data();
    desc.n_label_head = label.size();
    desc.domain_head = domain.data();
    desc.n_domain_head = domain.size();

    LoadedModel out;
    out.format_version = 2;
    out.model = io::create_checked(desc, found[kParm]->body_bytes, arch);
    Model &m = *out.model;

    ByteReader norm = body(kNorm);
    const float scale = norm.f32("input scale");
    const uint32_t channels = norm.u32("mean channels");
    if (channels != uint32_t(m.in_c))
        norm.bad("holds the mean of " + std::to_string(channels) + " channels, the model has " +
                 std::to_string(m.in_c));
    std::vector<float> mean(channels);
    norm.floats(mean.data(), channels, "input mean");
    expect_end(norm);
    io::check_norm(norm, scale, mean);
    m.input_scale = scale;
    m.input_mean = mean;

    ByteReader parm = body(kParm);
    io::read_params(parm, m);
    expect_end(parm);

    if (found[kOptm]) {
        ByteReader optm = body(kOptm);
        io::read_optimizer(optm, m, out.optimizer);
        expect_end(optm);
        out.has_optimizer = true;
    }
    if (found[kRply]) {
        ByteReader rply = body(kRply);
        m.replay = io::read_replay(rply, m);
        expect_end(rply);
    }
    return out;
}

} // namespace

std::vector<uint8_t> encode_model_file(const Model &m, const OptimizerState *optimizer) {
    ByteWriter arch;
    arch.u32(static_cast<uint32_t>(m.in_c));
    arch.u32(static_cast<uint32_t>(m.in_h));
    arch.u32(static_cast<uint32_t>(m.in_w));
    arch.u32(m.domain_bn ? 1 : 0);
    io::write_layers(arch, m.features);
    io::write_layers(arch, m.label_head);
    io::write_layers(arch, m.domain_head);
    ByteWriter norm;
    norm.f32(m.input_scale);
    norm.u32(static_cast<uint32_t>(m.input_mean.size()));
    norm.floats(m.input_mean.data(), m.input_mean.size());
    ByteWriter parm;
    io::write_params(parm, m);

    ByteWriter file;
    file.raw(kMagic, sizeof kMagic);
    file.u32(kModelFormatVersion);
    file.u32(0);                         // flags
    file.u64(0);                         // file size, set below
    file.u32(0);                         // section count, set below
    file.u32(0);                         // header CRC, set below
    uint32_t count = 3;
    add_section(file, kArch, arch.bytes);
    add_section(file, kNorm, norm.bytes);
    add_section(file, kParm, parm.bytes);
    if (optimizer) {
        ByteWriter optm;
        io::write_optimizer(optm, m, *optimizer);
        add_section(file, kOptm, optm.bytes);
        ++count;
    }
    if (m.replay.n > 0) {
        ByteWriter rply;
        io::write_replay(rply, m.replay, m.num_classes);
        add_section(file, kRply, rply.bytes);
        ++count;
    }
    uint8_t *h = file.bytes.data();
    io::put_le(h + 16, file.bytes.size(), 8);
    io::put_le(h + 24, count, 4);
    io::put_le(h + kHeaderCrcOffset, crc_of(0, h, kHeaderCrcOffset), 4);
    return std::move(file.bytes);
}

void save_model_file(const std::string &path, const Model &m, const OptimizerState *optimizer,
                     const io::FileOps &ops) {
    const std::vector<uint8_t> bytes = encode_model_file(m, optimizer);
    io::write_file_atomically(path, bytes.data(), bytes.size(), ops);
}

LoadedModel parse_model_bytes(const uint8_t *data, size_t size, const std::string &name) {
    const ByteReader whole(data, size, name);
    check_magic(data, size, whole);
    const uint32_t version = version_of(data);
    if (version == 1) return io::parse_model_v1(data, size, name);
    if (version != kModelFormatVersion) unsupported_version(version, whole);
    return parse_v2(data, size, name);
}

LoadedModel load_model_file(const std::string &path) {
    const std::vector<uint8_t> data = io::read_file_bytes(path, io::kMaxModelFileBytes);
    return parse_model_bytes(data.data(), data.size(), path);
}

ModelFileLayout model_file_layout(const uint8_t *data, size_t size, const std::string &name) {
    const ByteReader whole(data, size, name);
    check_magic(data, size, whole);
    const uint32_t version = version_of(data);
    if (version == 1) return io::layout_v1(data, size, name);
    if (version != kModelFormatVersion) unsupported_version(version, whole);
    return layout_v2(data, size, name);
}

ModelFileLayout read_model_file_layout(const std::string &path) {
    const std::vector<uint8_t> data = io::read_file_bytes(path, io::kMaxModelFileBytes);
    return model_file_layout(data.data(), data.size(), path);
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
