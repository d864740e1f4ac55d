// Constructors of the concrete layers, one per file; make_layer() dispatches.
#pragma once

#include "layers/layer.hpp"

namespace dann {

std::unique_ptr<Layer> make_conv2d(const dann_layer_desc &desc, const ParamBinding &params);
std::unique_ptr<Layer> make_dense(const dann_layer_desc &desc, const ParamBinding &params);
std::unique_ptr<Layer> make_maxpool2d(const dann_layer_desc &desc);
std::unique_ptr<Layer> make_eltwise(const dann_layer_desc &desc);
std::unique_ptr<Layer> make_dropout(const dann_layer_desc &desc, uint64_t layer_id);
std::unique_ptr<Layer> make_batchnorm(const dann_layer_desc &desc, const ParamBinding &params,
                                      const BatchSplit &split);
std::unique_ptr<Layer> make_flatten();

} // namespace dann
