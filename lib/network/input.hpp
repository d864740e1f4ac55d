// Caller batches (float NCHW / NHWC, uint8 HWC, grayscale for colour networks)
// into the plan's plain NCHW input buffer.
#pragma once

#include "dann.h"
#include "network/model.hpp"

namespace dann {

// Throws DANN_ERR_INVALID_ARGUMENT / DANN_ERR_SHAPE naming `what` ("source batch").
void check_batch(const Model &m, const dann_batch *batch, const char *what);

// Writes batch.n samples at dst (plain NCHW for the model's C x H x W). Throws
// DANN_ERR_NUMERIC, naming the sample, if a float input holds NaN or Inf.
void load_batch(const Model &m, const dann_batch &batch, float *dst, const char *what);

} // namespace dann
