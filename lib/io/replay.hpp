// The replay set a model carries (dann.h, "Source replay set"): built from a
// caller's batch by dann_model_set_replay's rules, and the RPLY section of the
// model file.
#pragma once

#include <cstdint>

#include "io/byte_io.hpp"
#include "network/model.hpp"

namespace dann::io {

// Samples per replay set, at most.
constexpr size_t kMaxReplaySamples = size_t(1) << 24;

// A copy of `samples` (U8_HWC or F32_NCHW; channels 1 or the model's; the
// model's height and width) and their labels (in [0, num_classes)). Throws
// DANN_ERR_INVALID_ARGUMENT, DANN_ERR_SHAPE or, for NaN/Inf, DANN_ERR_NUMERIC.
ReplaySet make_replay_set(const Model &m, const dann_batch &samples, const int32_t *labels);

// Bytes per stored label in a file: 1, 2 or 4, the fewest that hold
// num_classes - 1.
uint32_t replay_label_bytes(int num_classes);

// The RPLY section's body (docs/model-format.md). read_replay checks
// everything against the model and the section's length before it allocates.
void write_replay(ByteWriter &w, const ReplaySet &replay, int num_classes);
ReplaySet read_replay(ByteReader &r, const Model &m);

} // namespace dann::io
