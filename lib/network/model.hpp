// A model: the validated architecture and its parameters, held in PyTorch's
// names, shapes and layouts. Contexts and trainers plan and run it; the model
// itself holds no execution state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "dann.h"
#include "layers/layer.hpp"

namespace dann {

enum class Stack { features = 0, label = 1, domain = 2 };

struct Shape {
    int64_t c = 0, h = 1, w = 1;
    bool flat = false; // (N, c) rather than (N, c, h, w)
    int64_t size() const { return c * h * w; }
};

struct LayerSpec {
    dann_layer_desc desc; // defaults filled in
    std::string name;     // "features.3"
    Stack stack = Stack::features;
    int index = 0;
    Shape in, out;
    int first_param = -1; // into Model::params
};

struct Param {
    std::string name;
    std::vector<int64_t> shape;
    size_t numel = 0;
    bool trainable = true;
    Stack stack = Stack::features;
    Buffer data;
};

// The optional labelled source replay set a model carries (dann.h): samples in
// their own compact format (U8_HWC or F32_NCHW), contiguous, and their labels.
struct ReplaySet {
    dann_input_format format = DANN_INPUT_U8_HWC;
    int channels = 0, height = 0, width = 0;
    size_t n = 0;
    std::vector<uint8_t> data;   // n * sample_bytes()
    std::vector<int32_t> labels; // n
    size_t sample_bytes() const {
        return size_t(channels) * size_t(height) * size_t(width) *
               (format == DANN_INPUT_U8_HWC ? 1 : sizeof(float));
    }
    // A view of samples [first, first + count).
    dann_batch batch(size_t first, size_t count) const {
        dann_batch b{};
        b.format = format;
        b.data = data.data() + first * sample_bytes();
        b.n = count;
        b.height = height;
        b.width = width;
        b.channels = channels;
        return b;
    }
};

class Model {
public:
    static std::unique_ptr<Model> create(const dann_model_desc &desc, uint64_t seed);
    // A deep copy (architecture, parameters, input normalisation, threads,
    // replay set).
    std::unique_ptr<Model> clone() const;
    // Copies `src`'s parameter values into this model (same architecture,
    // checked by the caller); allocates nothing. Bumps the version.
    void copy_params_from(const Model &src);

    int in_c = 0, in_h = 0, in_w = 0;
    int num_classes = 0;
    int64_t feature_size = 0;
    bool domain_bn = false;
    std::vector<LayerSpec> features, label_head, domain_head;
    std::vector<Param> params;

    float input_scale = 1.0f / 255.0f;
    std::vector<float> input_mean; // per channel

    ReplaySet replay; // empty unless set (dann_model_set_replay, a model file)

    int threads = 0;        // 0: OpenMP's current setting
    uint64_t version = 1;   // changes whenever a weight changes

    const std::vector<LayerSpec> &stack(Stack s) const;
    size_t trainable_scalars() const;
    // Where the layer's parameters live; grads[i] is parameter i's gradient
    // (nullptr entries, or grads == nullptr, for inference).
    ParamBinding binding(const LayerSpec &spec, float *const *grads) const;
};

// The description with the documented defaults filled in (dann.h).
dann_layer_desc with_defaults(const dann_layer_desc &layer);

// A description over caller-owned layer arrays, without batch-norm options.
dann_model_desc describe(int c, int h, int w, const dann_layer_desc *features, size_t n_features,
                         const dann_layer_desc *label, size_t n_label,
                         const dann_layer_desc *domain, size_t n_domain);

// The paper's networks as descriptions (arrays with static storage).
dann_model_desc preset_desc(int preset);

} // namespace dann
