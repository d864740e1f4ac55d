// The model file (docs/model-format.md): architecture, input normalisation,
// parameters and, optionally, the optimizer state (a checkpoint) and the
// replay set, in checksummed sections. Every length and count read from a
// file is checked against what remains before it is used; anything wrong is
// DANN_ERR_FORMAT with a message naming the file and the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/file_ops.hpp"
#include "network/model.hpp"
#include "train/trainer.hpp"

namespace dann {

constexpr uint32_t kModelFormatVersion = 2;

struct LoadedModel {
    std::unique_ptr<Model> model; // with its replay set, if the file has one
    uint32_t format_version = 0;  // of the file read: 1 or 2
    bool has_optimizer = false;
    OptimizerState optimizer;
};

// The file's bytes in the current format (version 2); `optimizer` may be null.
std::vector<uint8_t> encode_model_file(const Model &m, const OptimizerState *optimizer);

// Writes encode_model_file's bytes atomically (io::write_file_atomically).
void save_model_file(const std::string &path, const Model &m, const OptimizerState *optimizer,
                     const io::FileOps &ops = io::posix_file_ops());

// Reads a file of format version 1 or 2. `name` starts every error message.
LoadedModel parse_model_bytes(const uint8_t *data, size_t size, const std::string &name);
LoadedModel load_model_file(const std::string &path);

// One section of a file, for `dann info` and the tests. A version 1 file
// shows as one section, "payload".
struct ModelSection {
    std::string tag;     // "ARCH", ...; unprintable bytes as \xNN
    uint32_t flags = 0;  // bit 0: a reader that does not know the tag may skip it
    uint64_t offset = 0; // of the section's header (version 2) or the payload (version 1)
    uint64_t header_bytes = 0;
    uint64_t body_bytes = 0;
    uint32_t crc = 0;    // as stored
    bool crc_ok = false; // the stored CRC matches the bytes
};

struct ModelFileLayout {
    uint32_t version = 0;
    uint64_t file_bytes = 0;
    std::vector<ModelSection> sections;
};

// The sections, each with its checksum verified. Throws DANN_ERR_FORMAT when
// the structure itself is broken (magic, version, header checksum, sizes);
// a section whose body does not match its CRC is listed with crc_ok false.
ModelFileLayout model_file_layout(const uint8_t *data, size_t size, const std::string &name);
ModelFileLayout read_model_file_layout(const std::string &path);

// Replaces `dst`'s parameters and input normalisation with `src`'s; the two
// must have the same architecture (names and shapes of every parameter).
void copy_weights(const Model &src, Model &dst);

} // namespace dann
