// Owning handles for the C API's objects in the tests (dann.h only).
#pragma once

#include <memory>

#include "dann.h"

namespace dann_test {

struct ModelDeleter {
    void operator()(dann_model *m) const { dann_model_destroy(m); }
};
struct ContextDeleter {
    void operator()(dann_context *c) const { dann_context_destroy(c); }
};
struct TrainerDeleter {
    void operator()(dann_trainer *t) const { dann_trainer_destroy(t); }
};
struct AdapterDeleter {
    void operator()(dann_adapter *a) const { dann_adapter_destroy(a); }
};
using Model = std::unique_ptr<dann_model, ModelDeleter>;
using Context = std::unique_ptr<dann_context, ContextDeleter>;
using Trainer = std::unique_ptr<dann_trainer, TrainerDeleter>;
using Adapter = std::unique_ptr<dann_adapter, AdapterDeleter>;

} // namespace dann_test
