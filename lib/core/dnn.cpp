#include "core/dnn.hpp"

#include <omp.h>

#include <algorithm>

#include "core/convert.hpp"
#include "core/error.hpp"

namespace dann::dnn {

dnnl::memory Arena::make(const md &desc) {
    buffers_.emplace_back(desc.get_size());
    return dnnl::memory(desc, dev_.eng, buffers_.back().data());
}

dnnl::memory Arena::view(const md &desc, void *handle) {
    return dnnl::memory(desc, dev_.eng, handle);
}

float *Arena::alloc_f32(size_t count) {
    buffers_.emplace_back(count * sizeof(float));
    return buffers_.back().f32();
}

PlanCtx::PlanCtx(Device &d, Arena &a, std::deque<Call> &c, bool train)
    : dev(d), arena(a), calls(c), training(train) {
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
}

Call *PlanCtx::record(const dnnl::primitive &prim,
                      std::initializer_list<std::pair<int, const dnnl::memory *>> args,
                      const dnnl::primitive_desc_base *pd) {
    Call call;
    call.prim = prim;
    for (const auto &a : args) call.args.push_back({a.first, a.second->get()});
    call.wants_scratchpad = pd && pd->scratchpad_desc().get_size() > 0;
    const auto kind = prim.get_kind();
    using pk = dnnl::primitive::kind;
    if (kind == pk::reorder || kind == pk::pooling || kind == pk::pooling_v2 ||
        kind == pk::eltwise || kind == pk::softmax || kind == pk::softmax_v2 ||
        kind == pk::binary || kind == pk::sum) {
        size_t bytes = 0;
        for (const auto &a : args) bytes += a.second->get_desc().get_size();
        call.serial = bytes <= kSerialBytes;
    }
    calls.push_back(std::move(call));
    return &calls.back();
}

bool bf16_native() {
    const auto isa = dnnl::get_effective_cpu_isa();
    using c = dnnl::cpu_isa;
    return isa == c::avx512_core_bf16 || isa == c::avx512_core_amx;
}

bool bf16_weight_gradients() { return dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_bf16; }

bool int8_native() {
    const auto isa = dnnl::get_effective_cpu_isa();
    using c = dnnl::cpu_isa;
    return isa == c::avx512_core_vnni || isa == c::avx512_core_bf16 ||
           isa == c::avx512_core_amx || isa == c::avx2_vnni;
}

Reformat reformat(PlanCtx &pc, const dnnl::memory &from, const md &want, float scale) {
    Reformat r;
    if (from.get_desc() == want && scale == 1.0f) {
        r.mem = from;
        return r;
    }
    r.mem = pc.arena.make(want);
    r.source = from;
    r.call = reorder_into(pc, r.source, r.mem, scale);
    return r;
}

namespace {

// The layout has no padding (a blocked layout whose blocks the dimensions
// fill).
bool unpadded(const md &desc) {
    const dnnl_memory_desc_t &d = desc.data;
    for (int i = 0; i < d.ndims; ++i)
        if (d.padded_dims[i] != d.dims[i] || d.padded_offsets[i] != 0) return false;
    return d.format_kind == dnnl_blocked && d.offset0 == 0;
}

} // namespace

Call *reorder_into(PlanCtx &pc, const dnnl::memory &from, const dnnl::memory &to, float scale) {
    const md &src = from.get_desc();
    if (scale == 1.0f && src.data_type() == f32 && to.get_desc() == with_type(src, bf16) &&
        unpadded(src) && convert::f32_to_bf16_available() && bf16_native()) {
        Call call;
        call.cvt_from = from.get();
        call.cvt_to = to.get();
        call.cvt_count = physical_elements(src);
        call.serial = src.get_size() + to.get_desc().get_size() <= kSerialBytes;
        pc.calls.push_back(std::move(call));
        return &pc.calls.back();
    }
    // A primitive_attr copy shares its handle: build a new one.
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(pc.attr.get_scratchpad_mode());
    if (scale != 1.0f) attr.set_output_scales(0, {scale});
    dnnl::reorder::primitive_desc rpd(pc.dev.eng, from.get_desc(), pc.dev.eng, to.get_desc(),
                                      attr);
    return pc.record(dnnl::reorder(rpd), {{DNNL_ARG_FROM, &from}, {DNNL_ARG_TO, &to}}, &rpd);
}

void finalize_scratchpad(Arena &arena, std::deque<Call> &calls, Buffer &storage,
                         dnnl::memory &scratch) {
    size_t bytes = 0;
    for (const auto &c : calls) {
        if (!c.wants_scratchpad) continue;
        auto pd_c = c.prim.get_primitive_desc();
        const dnnl_memory_desc_t *smd =
            dnnl_primitive_desc_query_md(pd_c, dnnl_query_scratchpad_md, 0);
        if (smd) bytes = std::max(bytes, dnnl_memory_desc_get_size(smd));
    }
    if (bytes == 0) return;
    storage.resize(bytes);
    scratch = arena.view(md({static_cast<int64_t>(bytes)}, dnnl::memory::data_type::u8, tag::x),
                         storage.data());
    for (auto &c : calls)
        if (c.wants_scratchpad) c.args.push_back({DNNL_ARG_SCRATCHPAD, scratch.get()});
}

namespace {

thread_local int t_backend_depth = 0;

} // namespace

InBackend::InBackend() noexcept { ++t_backend_depth; }
InBackend::~InBackend() { --t_backend_depth; }

int backend_depth() noexcept { return t_backend_depth; }

void run(Device &dev, const Call *call) {
    if (call->cvt_count > 0) {
        wait(dev); // the source may be written by the stream
        void *from = nullptr, *to = nullptr;
        if (dnnl_memory_get_data_handle(call->cvt_from, &from) != dnnl_success ||
            dnnl_memory_get_data_handle(call->cvt_to, &to) != dnnl_success)
            fail(DANN_ERR_BACKEND, "oneDNN memory without a data handle");
        convert::f32_to_bf16(static_cast<const float *>(from), static_cast<uint16_t *>(to), call->cvt_count,
                             call->serial);
        return;
    }
    dnnl_status_t st;
    {
        InBackend in;
        // oneDNN reads the team size from omp_get_max_threads() when a
        // primitive executes; a serial call sets it to 1 for its duration.
        const int team = call->serial ? omp_get_max_threads() : 1;
        if (team > 1) omp_set_num_threads(1);
        st = dnnl_primitive_execute(call->prim.get(), dev.strm.get(),
                                    static_cast<int>(call->args.size()), call->args.data());
        if (team > 1) omp_set_num_threads(team);
    }
    if (st != dnnl_success)
        fail(DANN_ERR_BACKEND, "oneDNN primitive execution failed (status " +
                                   std::to_string(static_cast<int>(st)) + ")");
}

void wait(Device &dev) {
    dnnl_status_t st;
    {
        InBackend in;
        st = dnnl_stream_wait(dev.strm.get());
    }
    if (st != dnnl_success)
        fail(DANN_ERR_BACKEND, "oneDNN stream wait failed (status " +
                                   std::to_string(static_cast<int>(st)) + ")");
}

md with_type(const md &desc, dt t) {
    md out = desc;
    out.data.data_type = dnnl::memory::convert_to_c(t);
    return out;
}

md plain(const dims &d) {
    switch (d.size()) {
    case 1: return md(d, f32, tag::x);
    case 2: return md(d, f32, tag::nc);
    case 4: return md(d, f32, tag::nchw);
    default: fail(DANN_ERR_INTERNAL, "plain(): unsupported rank " + std::to_string(d.size()));
    }
}

static void check_batch_outermost(const dnnl_memory_desc_t &c) {
    if (c.format_kind != dnnl_blocked)
        fail(DANN_ERR_INTERNAL, "with_batch(): layout is not a blocked/plain layout");
    const auto &strides = c.format_desc.blocking.strides;
    for (int i = 1; i < c.ndims; ++i)
        if (strides[i] > strides[0])
            fail(DANN_ERR_INTERNAL, "with_batch(): batch is not the outermost dimension");
    for (int i = 0; i < c.format_desc.blocking.inner_nblks; ++i)
        if (c.format_desc.blocking.inner_idxs[i] == 0)
            fail(DANN_ERR_INTERNAL, "with_batch(): layout blocks the batch dimension");
}

md with_batch(const md &desc, int64_t n) {
    dnnl_memory_desc_t c = desc.data;
    check_batch_outermost(c);
    c.dims[0] = n;
    c.padded_dims[0] = n;
    c.offset0 = 0;
    return md(c);
}

size_t batch_offset_bytes(const md &desc, int64_t n) {
    const dnnl_memory_desc_t &c = desc.data;
    check_batch_outermost(c);
    return static_cast<size_t>(n * c.format_desc.blocking.strides[0]) * sizeof(float);
}

std::string impl_name(const dnnl::primitive_desc_base &pd) { return pd.impl_info_str(); }

} // namespace dann::dnn
