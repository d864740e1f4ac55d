// What the C API's files share: the opaque handles behind dann.h's types, and
// the boundary helpers that turn every exception into a status and a
// per-thread message. Only lib/c_api includes this.
#pragma once

#include <memory>
#include <new>
#include <string>

#include "core/error.hpp"
#include "network/context.hpp"
#include "network/model.hpp"
#include "train/trainer.hpp"

struct dann_model {
    std::unique_ptr<dann::Model> impl;
};
struct dann_context {
    std::unique_ptr<dann::Context> impl;
};
struct dann_trainer {
    std::unique_ptr<dann::Trainer> impl;
};

namespace dann::capi {

using dann::fail;

template <class F>
inline dann_status guard(F &&f) noexcept {
    try {
        dann::set_last_error("");
        f();
        return DANN_OK;
    } catch (const dann::Error &e) {
        dann::set_last_error(e.what());
        return e.status();
    } catch (const dnnl::error &e) {
        dann::set_last_error(std::string("oneDNN: ") + e.what());
        return e.status == dnnl_out_of_memory ? DANN_ERR_OUT_OF_MEMORY : DANN_ERR_BACKEND;
    } catch (const std::bad_alloc &) {
        dann::set_last_error("out of memory");
        return DANN_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        dann::set_last_error(std::string("internal error: ") + e.what());
        return DANN_ERR_INTERNAL;
    } catch (...) {
        dann::set_last_error("internal error: unknown exception");
        return DANN_ERR_INTERNAL;
    }
}

template <class T>
inline void need(const T *p, const char *name) {
    if (!p) fail(DANN_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

template <class T>
inline void reset_out(T **out) {
    if (out) *out = nullptr;
}

} // namespace dann::capi
