// Per-layer benchmarks of the paper's MNIST network (PAPER.md), run through the
// library's own layer objects (lib/layers), so each figure is the code path a
// training step or a prediction takes. A layer is planned behind the layers that
// precede it in the network, so that its input arrives in the layout the
// network gives it; only the layer itself is timed.
//
// Shapes: training, features and domain head at batch 128 (64 source + 64
// target), label head at batch 64 (source rows only); inference at batch 256.
// Passes: fwd (the layer's forward, with any input reorder it records),
// bwd_data / bwd_weights (the oneDNN primitive alone), bwd (the layer's whole
// backward: both primitives plus the reorders of its inputs and of the weight
// gradient into the plain PyTorch layout).
//
// FLOP/s: convolution and fully connected layers count a multiply-add as 2
// FLOPs (bias ignored); pooling counts one comparison per window element,
// ReLU / GRL one operation per element, the losses 4 per logit. For the
// memory-bound layers the B/s counter (bytes read + written, logical sizes) is
// the figure to look at.
//
//   ./build/bench/dann_bench_layers --benchmark_filter='conv2.*threads:1'
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "core/dnn.hpp"
#include "layers/factory.hpp"
#include "layers/grl.hpp"
#include "layers/loss.hpp"
#include "network/model.hpp"
#include "network/plan.hpp"
#include "bench_main.hpp"
#include "net_cost.hpp"

namespace {

using dann::dnn::dims;

enum class Pass { fwd, bwd, bwd_data, bwd_weights };

const char *pass_name(Pass p) {
    switch (p) {
    case Pass::fwd: return "fwd";
    case Pass::bwd: return "bwd";
    case Pass::bwd_data: return "bwd_data";
    case Pass::bwd_weights: return "bwd_weights";
    }
    return "?";
}

struct Rng {
    uint32_t s;
    float next() {
        s = s * 1664525u + 1013904223u;
        return static_cast<float>(s >> 8) / 16777216.0f;
    }
};

// One stack of a network: its input (C, H, W) or (F) and its layers.
struct Stack {
    dims in;
    std::vector<dann_layer_desc> layers;
};

enum class Part { features, label, domain };

// A part of one of the paper's networks (dann_preset), as the library builds
// it: the features end in an explicit flatten (which the model applies
// implicitly), the heads take the flattened feature vector.
Stack stack_of(int preset, Part part) {
    const dann_model_desc m = dann::preset_desc(preset);
    if (part == Part::features) {
        Stack s{{m.in_channels, m.in_height, m.in_width}, {m.features, m.features + m.n_features}};
        s.layers.push_back(dann_layer_flatten());
        return s;
    }
    dann_bench::Shape x{m.in_channels, m.in_height, m.in_width, false};
    for (size_t i = 0; i < m.n_features; ++i) x = dann_bench::next_shape(x, m.features[i]);
    if (part == Part::label) return {{x.elems()}, {m.label_head, m.label_head + m.n_label_head}};
    return {{x.elems()}, {m.domain_head, m.domain_head + m.n_domain_head}};
}

dann::dnn::md plain_of(const dims &d) { return dann::dnn::plain(d); }

struct Fixture {
    dann::dnn::Device dev;
    dann::dnn::Arena arena{dev};
    std::deque<dann::dnn::Call> calls;
    dann::Buffer scratch_storage;
    dnnl::memory scratch;
    dann::dnn::PlanCtx pc;
    std::deque<std::vector<float>> storage; // parameters and gradients, PyTorch layout
    std::vector<std::unique_ptr<dann::Layer>> chain;
    Rng rng{7};

    explicit Fixture(bool training, bool bf16 = false) : pc(dev, arena, calls, training) {
        pc.bf16 = bf16 && training;
    }

    // A memory of `desc` holding values in [-0.5, 0.5), reordered from a plain
    // buffer (blocked layouts may be padded: never filled by a raw loop).
    dnnl::memory filled(const dann::dnn::md &desc) {
        dnnl::memory plain = arena.make(plain_of(desc.dims()));
        float *p = dann::dnn::data_f32(plain);
        for (size_t i = 0; i < dann::dnn::physical_floats(plain.get_desc()); ++i) p[i] = rng.next() - 0.5f;
        if (plain.get_desc() == desc) return plain;
        dnnl::memory m = arena.make(desc);
        dnnl::reorder(plain, m).execute(dev.strm, plain, m);
        dev.strm.wait();
        return m;
    }

    float *param(size_t n, float bound) {
        storage.emplace_back(n);
        for (float &v : storage.back()) v = (2.0f * rng.next() - 1.0f) * bound;
        return storage.back().data();
    }

    // Plans layers [0, upto] of `s` on an input of batch n; returns the last.
    dann::Layer &plan(const Stack &s, size_t upto, int64_t n) {
        dims d{n};
        d.insert(d.end(), s.in.begin(), s.in.end());
        input_ = filled(plain_of(d));
        const dnnl::memory *prev = &input_;
        for (size_t i = 0; i <= upto; ++i) {
            const dann_layer_desc desc = dann::with_defaults(s.layers[i]);
            dann::ParamBinding b;
            if (desc.kind == DANN_LAYER_CONV2D || desc.kind == DANN_LAYER_DENSE) {
                const auto pd = prev->get_desc().dims();
                int64_t fan_in = 1;
                for (size_t k = 1; k < pd.size(); ++k) fan_in *= pd[k];
                if (desc.kind == DANN_LAYER_CONV2D) fan_in = pd[1] * desc.kernel_h * desc.kernel_w;
                const size_t wn = static_cast<size_t>(fan_in) * static_cast<size_t>(desc.units);
                const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
                b.weight = param(wn, bound);
                b.bias = param(static_cast<size_t>(desc.units), bound);
                if (pc.training) {
                    b.grad_weight = param(wn, 0.0f);
                    b.grad_bias = param(static_cast<size_t>(desc.units), 0.0f);
                }
            }
            chain.push_back(dann::make_layer(desc, b, dann::BatchSplit{}, i + 1));
            chain.back()->plan_forward(pc, *prev);
            prev = &chain.back()->dst();
        }
        return *chain.back();
    }

    void finalize() {
        dann::dnn::finalize_scratchpad(arena, calls, scratch_storage, scratch);
        dann::RunState rs;
        for (auto &l : chain) {
            l->prepare_weights(dev);
            l->forward(dev, rs);
        }
        dann::dnn::wait(dev);
    }

    dnnl::memory input_;
};

dnnl_prop_kind_t prop_kind(const dann::dnn::Call &c) {
    dnnl_prop_kind_t pk = dnnl_prop_kind_undef;
    dnnl_primitive_desc_query(c.prim.get_primitive_desc(), dnnl_query_prop_kind, 0, &pk);
    return pk;
}

std::string impl_of(const dann::dnn::Call &c) {
    const char *s = nullptr;
    dnnl_primitive_desc_query(c.prim.get_primitive_desc(), dnnl_query_impl_info_str, 0, &s);
    return s ? s : "";
}

bool is_compute(const dann::dnn::Call &c) {
    if (!c.prim) return false; // dann's own conversion (Call::cvt_count)
    const auto k = c.prim.get_kind();
    return k == dnnl::primitive::kind::convolution || k == dnnl::primitive::kind::inner_product;
}

// A stack's input as a shape: (C, H, W), or F features.
dann_bench::Shape shape_of(const dims &d) {
    return d.size() == 1 ? dann_bench::Shape{d[0], 1, 1, true} : dann_bench::Shape{d[0], d[1], d[2], false};
}

struct Cost {
    double flops = 0, bytes = 0;
};

// Work of one pass of layer `i` of `s` at batch n (the logical sizes);
// `bwd_data`: whether its backward computes an input gradient.
Cost cost(const Stack &s, size_t i, int64_t n, Pass pass, bool bwd_data) {
    dann_bench::Shape x = shape_of(s.in);
    for (size_t k = 0; k < i; ++k) x = dann_bench::next_shape(x, s.layers[k]);
    const dann_layer_desc l = dann::with_defaults(s.layers[i]);
    const dann_bench::Shape out = dann_bench::next_shape(x, l);
    const double in_elems = static_cast<double>(x.elems()), out_elems = static_cast<double>(out.elems());
    const double nn = static_cast<double>(n), f = 4.0;
    Cost c;
    if (l.kind == DANN_LAYER_CONV2D || l.kind == DANN_LAYER_DENSE) {
        const double w = dann_bench::layer_weights(x, l) - l.units; // the bias left out
        const double one = 2.0 * nn * dann_bench::layer_macs(x, l);
        c.flops = pass == Pass::bwd && bwd_data ? 2 * one : one;
        c.bytes = f * (pass == Pass::bwd ? 2 : 1) * (nn * (in_elems + out_elems) + w);
    } else if (l.kind == DANN_LAYER_MAXPOOL2D) {
        c.flops = nn * out_elems * l.kernel_h * l.kernel_w;
        c.bytes = f * nn * (in_elems + out_elems);
    } else if (l.kind == DANN_LAYER_RELU || l.kind == DANN_LAYER_DROPOUT ||
               l.kind == DANN_LAYER_SIGMOID) {
        c.flops = nn * in_elems;
        c.bytes = f * nn * in_elems * (pass == Pass::fwd ? 2 : 3);
    } else { // flatten: a layout change
        c.bytes = f * nn * in_elems * 2;
    }
    return c;
}

void set_counters(benchmark::State &state, const Cost &c) {
    if (c.flops > 0)
        state.counters["FLOP/s"] = benchmark::Counter(c.flops, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["B/s"] = benchmark::Counter(c.bytes, benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1024);
}

// need_diff_src: false only for the network's first layer.
void run_layer(benchmark::State &state, const Stack &s, size_t index, int64_t n, bool training,
               Pass pass, bool need_diff_src, bool bf16 = false) {
    const int threads = static_cast<int>(state.range(0));
    dann::ThreadScope scope(threads); // plans too: oneDNN sizes its kernels by the thread count
    if (bf16 && !dann::dnn::bf16_native()) {
        state.SkipWithError("bf16 is not supported on this CPU");
        return;
    }
    try {
        Fixture fx(training, bf16);
        dann::Layer &l = fx.plan(s, index, n);
        const dann::dnn::Call *call = nullptr;
        if (training) {
            const size_t before = fx.calls.size();
            dnnl::memory diff_dst = fx.filled(l.dst().get_desc());
            l.plan_backward(fx.pc, diff_dst, need_diff_src);
            for (size_t i = before; i < fx.calls.size(); ++i) {
                const auto &c = fx.calls[i];
                if (!is_compute(c)) continue;
                const dnnl_prop_kind_t pk = prop_kind(c);
                if ((pass == Pass::bwd_data && pk == dnnl_backward_data) ||
                    (pass == Pass::bwd_weights && pk == dnnl_backward_weights))
                    call = &c;
            }
            if ((pass == Pass::bwd_data || pass == Pass::bwd_weights) && !call) {
                state.SkipWithError("the layer records no such primitive");
                return;
            }
        }
        fx.finalize();
        dann::RunState rs;
        if (call) state.SetLabel(impl_of(*call));
        auto once = [&] {
            switch (pass) {
            case Pass::fwd: l.forward(fx.dev, rs); break;
            case Pass::bwd: l.backward(fx.dev, rs); break;
            default: dann::dnn::run(fx.dev, call); break;
            }
            dann::dnn::wait(fx.dev);
        };
        once();
        for (auto _ : state) once();
        set_counters(state, cost(s, index, n, pass, need_diff_src));
    } catch (const std::exception &e) {
        state.SkipWithError(e.what());
    }
}

// The gradient reversal at the features: -lambda * the domain head's gradient
// (128 rows) joined with the label head's (the 64 source rows).
void run_grl(benchmark::State &state) {
    const int threads = static_cast<int>(state.range(0));
    dann::ThreadScope scope(threads);
    try {
        Fixture fx(true);
        dnnl::memory diff = fx.filled(plain_of({128, 768}));
        dnnl::memory label = fx.filled(plain_of({64, 768}));
        dann::GradientReversal grl;
        grl.plan(fx.pc, diff, &label);
        fx.finalize();
        grl.backward(fx.dev, 0.5f);
        dann::dnn::wait(fx.dev);
        for (auto _ : state) {
            grl.backward(fx.dev, 0.5f);
            dann::dnn::wait(fx.dev);
        }
        set_counters(state, {128.0 * 768 + 64.0 * 768, 4.0 * (128 * 768 * 2 + 64 * 768)});
    } catch (const std::exception &e) {
        state.SkipWithError(e.what());
    }
}

// Softmax cross-entropy (64 x 10) and logistic loss (128 x 1): forward with the
// gradient, as a training step runs them.
void run_losses(benchmark::State &state, bool softmax) {
    const int threads = static_cast<int>(state.range(0));
    dann::ThreadScope scope(threads);
    try {
        Fixture fx(true);
        const int64_t n = softmax ? 64 : 128, k = softmax ? 10 : 1;
        dnnl::memory logits = fx.filled(plain_of({n, k}));
        std::vector<int32_t> labels(static_cast<size_t>(n));
        for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 10);
        dann::SoftmaxCrossEntropy ce;
        dann::LogisticLoss bce;
        if (softmax) {
            ce.plan(fx.pc, logits);
        } else {
            bce.plan(fx.pc, logits);
            for (int64_t i = 0; i < n; ++i) bce.targets()[i] = i < n / 2 ? 0.0f : 1.0f;
        }
        fx.finalize();
        for (auto _ : state) {
            const float loss = softmax ? ce.forward(fx.dev, labels.data()) : bce.forward(fx.dev);
            benchmark::DoNotOptimize(loss);
        }
        const double e = static_cast<double>(n * k);
        set_counters(state, {4.0 * e, 4.0 * 2 * e});
    } catch (const std::exception &e) {
        state.SkipWithError(e.what());
    }
}

struct Case {
    std::string name;
    int preset;
    Part part;
    size_t index;
    bool affine;
};

// Every layer of the three networks, named by kind, position and shape (the
// MNIST network's without a prefix, the others' prefixed "svhn_" and
// "gtsrb_"); a layer whose name repeats an earlier one (same kind and shape)
// is benchmarked once.
std::vector<Case> all_cases() {
    struct P {
        int preset;
        const char *prefix;
    };
    std::vector<Case> cases;
    auto seen = [&](const std::string &n) {
        for (const Case &c : cases)
            if (c.name == n) return true;
        return false;
    };
    for (const P p : {P{DANN_PRESET_MNIST, ""}, P{DANN_PRESET_SVHN, "svhn_"}, P{DANN_PRESET_GTSRB, "gtsrb_"}}) {
        for (Part part : {Part::features, Part::label, Part::domain}) {
            const Stack s = stack_of(p.preset, part);
            dann_bench::Shape x = shape_of(s.in);
            int convs = 0, pools = 0;
            const std::string head = part == Part::label ? "label_" : "domain_";
            for (size_t i = 0; i < s.layers.size(); ++i) {
                const dann_layer_desc d = dann::with_defaults(s.layers[i]);
                const dann_bench::Shape out = dann_bench::next_shape(x, d);
                const std::string chw = std::to_string(x.c) + "x" + std::to_string(x.h) + "x" + std::to_string(x.w);
                std::string n;
                switch (d.kind) {
                case DANN_LAYER_CONV2D:
                    n = "conv" + std::to_string(++convs) + "_" + std::to_string(d.kernel_h) + "x" +
                        std::to_string(d.kernel_w) + "_" + std::to_string(x.c) + "to" + std::to_string(d.units) +
                        "_" + std::to_string(x.h) + "x" + std::to_string(x.w);
                    break;
                case DANN_LAYER_MAXPOOL2D:
                    n = "maxpool" + std::to_string(++pools) + "_" + std::to_string(d.kernel_h) + "x" +
                        std::to_string(d.kernel_w);
                    if (d.stride_h != d.kernel_h || d.stride_w != d.kernel_w) n += "s" + std::to_string(d.stride_h);
                    if (d.pad_h || d.pad_w) n += "p" + std::to_string(d.pad_h);
                    n += "_" + chw;
                    break;
                case DANN_LAYER_FLATTEN: n = "flatten_" + chw; break;
                case DANN_LAYER_DENSE:
                    n = head + "dense_" + std::to_string(x.elems()) + "to" + std::to_string(d.units);
                    break;
                case DANN_LAYER_RELU:
                    n = part == Part::features ? "relu" + std::to_string(convs) + "_" + chw
                                               : head + "relu_" + std::to_string(x.elems());
                    break;
                case DANN_LAYER_DROPOUT: n = head + "dropout_" + std::to_string(x.elems()); break;
                default: n = "layer" + std::to_string(i); break;
                }
                n = p.prefix + n;
                if (!seen(n))
                    cases.push_back({n, p.preset, part, i,
                                     d.kind == DANN_LAYER_CONV2D || d.kind == DANN_LAYER_DENSE});
                x = out;
            }
        }
    }
    return cases;
}

void register_all() {
    for (const Case &c : all_cases()) {
        const bool label = c.part == Part::label;
        const bool first = c.part == Part::features && c.index == 0;
        const int64_t train_n = label ? 64 : 128;
        std::vector<Pass> passes{Pass::fwd, Pass::bwd};
        if (c.affine) {
            passes = {Pass::fwd, Pass::bwd_weights, Pass::bwd};
            // The first convolution computes no input gradient.
            if (!first) passes.insert(passes.begin() + 1, Pass::bwd_data);
        }
        for (Pass p : passes) {
            const std::string name = c.name + "/train_" + pass_name(p) +
                                     "/batch:" + std::to_string(train_n);
            benchmark::RegisterBenchmark(name.c_str(), [c, p, train_n, first](benchmark::State &st) {
                run_layer(st, stack_of(c.preset, c.part), c.index, train_n, true, p, !first);
            })->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
        // bf16 training plans (DANN_PRECISION_BF16): the forward pass and the
        // whole backward pass (a unit-stride convolution's backward products
        // run as forward convolutions, so there is no lone backward primitive
        // to time).
        if (c.affine)
            for (Pass p : {Pass::fwd, Pass::bwd}) {
                const std::string name = c.name + "/train_" + pass_name(p) +
                                         "_bf16/batch:" + std::to_string(train_n);
                benchmark::RegisterBenchmark(name.c_str(), [c, p, train_n, first](benchmark::State &st) {
                    run_layer(st, stack_of(c.preset, c.part), c.index, train_n, true, p, !first, true);
                })->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
            }
        const std::string name = c.name + "/infer_fwd/batch:256";
        benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State &st) {
            run_layer(st, stack_of(c.preset, c.part), c.index, 256, false, Pass::fwd, false);
        })->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark("grl_768/train_bwd/batch:128", run_grl)
        ->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("softmax_xent_10/train_fwd_bwd/batch:64",
                                 [](benchmark::State &st) { run_losses(st, true); })
        ->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("logistic_1/train_fwd_bwd/batch:128",
                                 [](benchmark::State &st) { run_losses(st, false); })
        ->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

} // namespace

int main(int argc, char **argv) { return dann_bench::run(argc, argv, register_all); }
