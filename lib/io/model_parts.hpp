// The encodings that both versions of the model file share (layer lists,
// parameters, optimizer state), and the checked construction of a model from
// the architecture a file describes. Only lib/io includes this.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/byte_io.hpp"
#include "io/model_file.hpp"

namespace dann::io {

// Files larger than this are refused before they are read whole.
constexpr uint64_t kMaxModelFileBytes = uint64_t(1) << 34;

void write_layers(ByteWriter &w, const std::vector<LayerSpec> &layers);
std::vector<dann_layer_desc> read_layers(ByteReader &r, const char *stack);

// The parameter values (floats) that the architecture defines; UINT64_MAX if
// it is too large to count. For an architecture that Model::create rejects,
// at most what Model::create allocates before it fails.
uint64_t architecture_values(const dann_model_desc &desc);

// Model::create for a description read from a file: refuses, before any
// allocation, an architecture with more parameter values than
// `param_bytes_available` bytes could hold, and turns Model::create's errors
// into DANN_ERR_FORMAT naming the file.
std::unique_ptr<Model> create_checked(const dann_model_desc &desc, uint64_t param_bytes_available,
                                      const ByteReader &r);

// Names, ranks, shapes and values; the names and shapes must be the model's,
// the values finite.
void write_params(ByteWriter &w, const Model &m);
void read_params(ByteReader &r, Model &m);

void write_optimizer(ByteWriter &w, const Model &m, const OptimizerState &s);
void read_optimizer(ByteReader &r, const Model &m, OptimizerState &s);

// The input normalisation's values must be finite.
void check_norm(const ByteReader &r, float scale, const std::vector<float> &mean);

// Format version 1 (model_file_v1.cpp): `data` starts with the magic and
// version 1.
LoadedModel parse_model_v1(const uint8_t *data, size_t size, const std::string &name);
ModelFileLayout layout_v1(const uint8_t *data, size_t size, const std::string &name);

} // namespace dann::io
