// The thin layer between dann and oneDNN 2.x. Every oneDNN call of dann lives in
// lib/core and lib/layers; the network, trainer and C API see only these types.
//
// A plan is built once per batch shape: primitives are created, every buffer is
// sized from its memory descriptor and allocated, and each execution is recorded
// as a Call with a prebuilt C argument array. Running a plan then only executes
// Calls: no allocation by dann, and none by oneDNN's C++ argument maps either.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/buffer.hpp"

namespace dann::dnn {

using dims = dnnl::memory::dims;
using md = dnnl::memory::desc;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;
constexpr auto bf16 = dnnl::memory::data_type::bf16;
constexpr auto u8 = dnnl::memory::data_type::u8;
constexpr auto s8 = dnnl::memory::data_type::s8;
using dt = dnnl::memory::data_type;

// Whether oneDNN runs bf16 convolutions and inner products natively on this
// CPU (AVX512-BF16 or AMX, as limited by ONEDNN_MAX_CPU_ISA).
bool bf16_native();

// Whether bf16 training plans also take their weight gradients from bf16
// operands (source and output gradient; the gradient itself is f32). True
// where oneDNN's best kernels are AVX512-BF16 without AMX: there VDPBF16PS
// does twice the multiply-adds of an fp32 FMA per instruction, and oneDNN
// 2.6's bf16 backward-weights kernels run at about 2x the f32 ones (AMD
// Zen 4, `dann_bench_layers` *_train_bwd_bf16). With AMX those kernels were
// slower than f32, so AMX CPUs keep f32 weight gradients.
bool bf16_weight_gradients();

// Whether oneDNN runs int8 convolutions and inner products on int8 dot
// product instructions here (AVX512-VNNI, AVX-VNNI or AMX, as limited by
// ONEDNN_MAX_CPU_ISA): their int32 sums are then exact. Older x86 kernels
// add u8 x s8 pairs in saturating 16-bit lanes, so dann does not quantize
// there.
bool int8_native();

// The engine and in-order stream that one execution context uses.
struct Device {
    dnnl::engine eng{dnnl::engine::kind::cpu, 0};
    dnnl::stream strm{eng};
};

// One recorded primitive execution.
struct Call {
    dnnl::primitive prim;
    std::vector<dnnl_exec_arg_t> args;
    bool wants_scratchpad = false;
    // A memory-bound primitive (reorder, pooling, element-wise, softmax,
    // binary) on little data runs on the calling thread alone: waking a
    // team costs more than the work (at batch 1 on a 2-core AMX Xeon, the
    // second max pooling took 4.5 us on two threads and 1.1 us on one; the
    // first, 92 KB, was still faster on two).
    bool serial = false;
    // dann's own f32 -> bf16 conversion (convert::f32_to_bf16) instead of a
    // primitive (prim is then empty): cvt_count values from cvt_from into
    // cvt_to, both in the same layout.
    dnnl_memory_t cvt_from = nullptr, cvt_to = nullptr;
    size_t cvt_count = 0;
};

// Calls of at most this many bytes of operands are `serial` (Call).
constexpr size_t kSerialBytes = 64 * 1024;

// Memory and buffers of one plan. Addresses are stable for the plan's life.
class Arena {
public:
    explicit Arena(Device &dev) : dev_(dev) {}
    Device &device() { return dev_; }
    // A new zeroed buffer of md.get_size() bytes wrapped as memory.
    dnnl::memory make(const md &desc);
    // A memory object over existing storage (owned elsewhere).
    dnnl::memory view(const md &desc, void *handle);
    float *alloc_f32(size_t count);
    // Bytes of every buffer made so far.
    size_t bytes() const {
        size_t total = 0;
        for (const Buffer &b : buffers_) total += b.bytes();
        return total;
    }

private:
    Device &dev_;
    std::deque<Buffer> buffers_;
};

// Everything a layer needs while it is being planned.
struct PlanCtx {
    Device &dev;
    Arena &arena;
    std::deque<Call> &calls;
    dnnl::primitive_attr attr; // scratchpad_mode::user
    bool training;
    // Forward in training mode only to collect batch-norm statistics: no
    // backward, and dropout passes its input through.
    bool statistics_only = false;
    // The input of the layer being planned is a buffer of the plan that no
    // one reads after this layer's forward, except through this layer: an
    // elementwise layer may then write its output over it.
    bool src_reusable = false;
    // Inference plans: a ReLU follows the layer being planned, which may
    // apply it as a post-op of its own primitive (Layer::fused_relu()).
    bool fuse_relu = false;
    // Training plans: convolutions and dense layers take their products in
    // bf16 (inputs, weights and output gradients rounded to bf16), accumulate
    // and write in f32; the model's weights and gradients stay f32.
    bool bf16 = false;
    // Training plans, while a layer's backward pass is planned: the layout in
    // which the layer before it would like its output gradient (that
    // layer's Layer::preferred_diff_dst(); zero when it has no preference).
    // A layer that can write its input gradient in any layout uses it.
    md diff_src_hint;
    // Inference plans: convolutions and dense layers that carry a calibrated
    // range (ParamBinding::range) compute in int8.
    bool int8 = false;
    // Int8 inference plans: the source of the layer being planned holds u8
    // or s8 values q standing for q / src_scale (0: the source is f32).
    float src_scale = 0.0f;
    // Int8 inference plans: what reads the output of the layer being planned
    // takes int8 (max pooling, then a convolution, a dense layer or the
    // flattening of the features), so a fused ReLU may write u8.
    bool int8_dst = false;
    // bf16 training plans: the output of the convolution being planned is
    // read only by a max pooling that takes bf16 (non-overlapping windows)
    // and passes it on to a convolution that reads bf16, so the
    // convolution may write bf16 (its own backward reads no output).
    bool bf16_dst = false;

    PlanCtx(Device &d, Arena &a, std::deque<Call> &c, bool train);
    // Records a call; `with_scratchpad` calls get the plan's scratchpad at finalize.
    Call *record(const dnnl::primitive &prim,
                 std::initializer_list<std::pair<int, const dnnl::memory *>> args,
                 const dnnl::primitive_desc_base *pd);
};

// A memory in the layout a primitive wants: the input itself when layouts
// agree, otherwise a copy refreshed by a reorder.
struct Reformat {
    dnnl::memory mem;
    Call *call = nullptr;
    dnnl::memory source; // keeps the reorder's input alive
};
// With scale != 1 every value is multiplied by `scale` on the way, and a
// change of data type rounds to nearest (ties to even) and saturates: this
// quantizes f32 to u8/s8 (scale = the int8 scale) and dequantizes back
// (scale = its inverse).
Reformat reformat(PlanCtx &pc, const dnnl::memory &from, const md &want, float scale = 1.0f);
// A reorder from `from` into the existing memory `to` (both kept alive by
// their owners), scaled as reformat() does. One that only turns f32 into
// bf16 in the same unpadded layout runs dann's own conversion where it is
// available and oneDNN's bf16 kernels run natively (the same bits as
// oneDNN's reorder; core/convert.hpp).
Call *reorder_into(PlanCtx &pc, const dnnl::memory &from, const dnnl::memory &to,
                   float scale = 1.0f);

// Sizes the scratchpad (largest need over all calls), allocates it, and hands
// it to every call that asked for one.
void finalize_scratchpad(Arena &arena, std::deque<Call> &calls, Buffer &storage,
                         dnnl::memory &scratch);

// Executes one call; throws dann::Error(DANN_ERR_BACKEND) on failure.
void run(Device &dev, const Call *call);
inline void run_if(Device &dev, const Call *call) {
    if (call) run(dev, call);
}
void wait(Device &dev);

// How many backend calls (oneDNN through run() and wait(), the BLAS through
// gemm::sgemm()) the calling thread is inside (0 or 1). The allocation test
// tells the backends' allocations from dann's own by it: a plan's steady
// state must allocate nothing outside them.
int backend_depth() noexcept;

// Marks the calling thread as inside a backend call for the scope's life.
class InBackend {
public:
    InBackend() noexcept;
    ~InBackend();
    InBackend(const InBackend &) = delete;
    InBackend &operator=(const InBackend &) = delete;
};

// Plain descriptors: nchw for 4-D, nc for 2-D, x for 1-D.
md plain(const dims &d);
// The same layout with dimension 0 (the batch, outermost) set to n; throws if
// the layout does not keep the batch outermost.
md with_batch(const md &desc, int64_t n);
// Byte offset of sample `n` in a layout whose batch is outermost.
size_t batch_offset_bytes(const md &desc, int64_t n);
// Number of floats the memory physically holds (padding included).
inline size_t physical_floats(const md &desc) { return desc.get_size() / sizeof(float); }
inline float *data_f32(const dnnl::memory &m) { return static_cast<float *>(m.get_data_handle()); }
// Number of values of its data type the memory physically holds.
inline size_t physical_elements(const md &desc) {
    return desc.get_size() / dnnl::memory::data_type_size(desc.data_type());
}
// The same dimensions and layout (strides in elements) with data type t.
md with_type(const md &desc, dt t);

std::string impl_name(const dnnl::primitive_desc_base &pd);

} // namespace dann::dnn
