#include "inference.hpp"

#include <algorithm>
#include <stdexcept>

#include "io.hpp"
#include "progress.hpp"

namespace dann::tool {

namespace {

// Below this many samples a progress line would only flicker.
constexpr size_t kProgressThreshold = 20000;

} // namespace

ModelPtr load_model(const std::string &path) {
    dann_model *model = nullptr;
    const dann_status status = dann_model_load(path.c_str(), &model);
    if (status != DANN_OK) throw_dann(status, "cannot load model " + path);
    return ModelPtr(model, dann_model_destroy);
}

dann_model_info model_info(const dann_model *model) {
    dann_model_info info{};
    check_dann(dann_model_get_info(model, &info), "cannot query the model");
    return info;
}

Predictions predict_all(const dann_model *model, const Dataset &data, const PredictOptions &options,
                        const std::string &what) {
    const dann_model_info info = model_info(model);
    check_input(info, data, what);
    Predictions p;
    p.n = data.n;
    p.classes = info.num_classes;
    p.probs.resize(data.n * static_cast<size_t>(info.num_classes));
    if (options.domain_probs) p.domain_probs.resize(data.n);

    dann_context *raw = nullptr;
    check_dann(dann_context_create(model, &raw), "cannot create an inference context");
    std::unique_ptr<dann_context, void (*)(dann_context *)> ctx(raw, dann_context_destroy);
    check_dann(dann_context_set_domain(ctx.get(), options.domain), "cannot select the domain");
    if (options.int8_calibration) {
        const Dataset &calibration = *options.int8_calibration;
        check_input(info, calibration, "calibration samples");
        const dann_batch all = batch_view(calibration, 0, calibration.n);
        check_dann(dann_context_quantize(ctx.get(), &all), "cannot quantize to int8");
    }

    const size_t classes = static_cast<size_t>(info.num_classes);
    Progress progress(options.label, static_cast<int64_t>(data.n), "samples",
                      options.progress && data.n >= kProgressThreshold);
    for (size_t first = 0; first < data.n; first += options.batch) {
        const size_t count = std::min(options.batch, data.n - first);
        const dann_batch batch = batch_view(data, first, count);
        const dann_status status =
            dann_predict(ctx.get(), &batch, p.probs.data() + first * classes, count * classes,
                         options.domain_probs ? p.domain_probs.data() + first : nullptr,
                         options.domain_probs ? count : 0);
        if (status != DANN_OK)
            throw_dann(status, what + ": samples " + std::to_string(first) + " to " +
                                   std::to_string(first + count - 1));
        progress.update(static_cast<int64_t>(first + count));
    }
    progress.finish();

    p.argmax.resize(data.n);
    for (size_t i = 0; i < data.n; ++i) {
        const float *row = p.probs.data() + i * classes;
        size_t best = 0;
        for (size_t c = 1; c < classes; ++c)
            if (row[c] > row[best]) best = c;
        p.argmax[i] = static_cast<int32_t>(best);
    }
    if (classes <= 256) p.labels.assign(p.argmax.begin(), p.argmax.end());
    return p;
}

} // namespace dann::tool
