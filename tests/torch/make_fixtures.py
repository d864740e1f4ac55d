#!/usr/bin/python3
"""Writes the PyTorch parity fixtures tests/fixtures/torch_*.txt.

For each network below, PyTorch (float32, CPU) runs three consecutive DANN
training steps from initial weights and inputs that both this script and
tests/test_torch_parity.cpp derive from a SplitMix64 generator, so the
fixtures store only seeds, losses, accuracies and the resulting arrays.

The step is the one of shared/PAPER.md, "Exact definitions":
  f = features(cat(xs, xt)), flattened to (N, C*H*W)
  label loss  = mean cross-entropy of label_head(f[:ns]) against the labels
  domain loss = BCE-with-logits, ONE mean over all ns + nt samples of
                domain_head(GRL(f, lambda)), targets 0 (source) / 1 (target)
  (label + domain).backward(); torch.optim.SGD(momentum=0.9), lr set per step.

Usage: /usr/bin/python3 tests/torch/make_fixtures.py [--out DIR] [--check64]
  --check64 also reruns every network in float64 and prints, per network, how
  far the float32 results are from the float64 ones (the noise floor that the
  C++ test's tolerances must sit above). Nothing is written with --check64.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------
# The shared deterministic generator (the C++ test implements the same).
# ---------------------------------------------------------------------------
class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self):
        """u in [0, 1) with 24 random bits: exact in float32 and float64."""
        return (self.next_u64() >> 40) * (2.0 ** -24)


def fill_affine(seed, count, a, b):
    """value_k = float32(a + b * (2u_k - 1)), computed in double precision."""
    g = SplitMix64(seed)
    return [a + b * (2.0 * g.uniform() - 1.0) for _ in range(count)]


def fill_inputs(seed, count):
    """value_k = u_k - 0.5 (exact in float32)."""
    g = SplitMix64(seed)
    return [g.uniform() - 0.5 for _ in range(count)]


# ---------------------------------------------------------------------------
# Networks. A layer is a tuple:
#   ("conv2d", out_channels, kernel, stride, pad)
#   ("maxpool2d", kernel, stride, pad)
#   ("dense", units)
#   ("relu",), ("sigmoid",), ("flatten",), ("batchnorm",)
# ---------------------------------------------------------------------------
TINY_FEATURES = [
    ("conv2d", 4, 3, 1, 1), ("relu",), ("maxpool2d", 2, 2, 0),
    ("conv2d", 6, 3, 2, 1), ("relu",), ("flatten",),
]
TINY_FEATURES_BN = [
    ("conv2d", 4, 3, 1, 1), ("batchnorm",), ("relu",), ("maxpool2d", 2, 2, 0),
    ("conv2d", 6, 3, 2, 1), ("batchnorm",), ("relu",), ("flatten",),
]
TINY_LABEL = [("dense", 12), ("relu",), ("dense", 5)]
TINY_DOMAIN = [("dense", 8), ("relu",), ("dense", 1)]

STEPS = [(0.25, 0.05), (0.6, 0.02), (1.0, 0.01)]  # (lambda, lr) per step

NETWORKS = [
    dict(name="tiny_conv", builder="desc", input=(3, 10, 10), classes=5,
         features=TINY_FEATURES, label_head=TINY_LABEL, domain_head=TINY_DOMAIN,
         domain_batchnorm=0, ns=4, nt=2, param_seed=1101, input_seed=2101,
         full=True),
    dict(name="tiny_conv_bn", builder="desc", input=(3, 10, 10), classes=5,
         features=TINY_FEATURES_BN, label_head=TINY_LABEL, domain_head=TINY_DOMAIN,
         domain_batchnorm=0, ns=4, nt=2, param_seed=1202, input_seed=2202,
         full=True),
    dict(name="tiny_conv_domain_bn", builder="desc", input=(3, 10, 10), classes=5,
         features=TINY_FEATURES_BN, label_head=TINY_LABEL, domain_head=TINY_DOMAIN,
         domain_batchnorm=1, ns=3, nt=5, param_seed=1303, input_seed=2303,
         full=True),
    # dann_model_create_mlp(2, 15, 2, seed)
    dict(name="mlp", builder="mlp", input=(2, 1, 1), classes=2,
         features=[("dense", 15), ("sigmoid",)], label_head=[("dense", 2)],
         domain_head=[("dense", 1)], domain_batchnorm=0, ns=5, nt=3,
         param_seed=1404, input_seed=2404, full=True),
    # dann_model_create_preset(DANN_PRESET_MNIST, seed)
    dict(name="mnist", builder="preset_mnist", input=(3, 28, 28), classes=10,
         features=[("conv2d", 32, 5, 1, 0), ("relu",), ("maxpool2d", 2, 2, 0),
                   ("conv2d", 48, 5, 1, 0), ("relu",), ("maxpool2d", 2, 2, 0)],
         label_head=[("dense", 100), ("relu",), ("dense", 100), ("relu",), ("dense", 10)],
         domain_head=[("dense", 100), ("relu",), ("dense", 1)],
         domain_batchnorm=0, ns=4, nt=4, param_seed=1505, input_seed=2505,
         full=False),
]

SAMPLE_COUNT = 64   # elements kept per array when a network is stored sampled
INIT_SAMPLE = 8     # elements of each initial array kept to check the generator

# Batch-norm initial values: random around PyTorch's defaults, so that
# a layer that ignores a set value cannot pass. value = a + b * (2u - 1).
BN_INIT = {
    "weight": (1.0, 0.2),
    "bias": (0.0, 0.2),
    "running_mean": (0.0, 0.1),
    "running_var": (1.0, 0.3),
    "running_mean_target": (0.0, 0.1),
    "running_var_target": (1.0, 0.3),
}

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


class GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -lambda."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.neg() * ctx.lam, None


class Dense(nn.Linear):
    """nn.Linear that reads its input flattened in C*H*W order (as dann does)."""

    def forward(self, x):
        return super().forward(x.flatten(1))


class DomainBatchNorm(nn.Module):
    """Batch norm whose source part [0, split) and target part [split, N) are
    each normalised with their own batch statistics, with separate running
    statistics (source: running_mean/var, target: running_*_target)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("running_mean_target", torch.zeros(channels))
        self.register_buffer("running_var_target", torch.ones(channels))
        self.split = None

    def forward(self, x):
        assert self.training and self.split is not None
        xs, xt = x[: self.split], x[self.split:]
        ys = F.batch_norm(xs, self.running_mean, self.running_var, self.weight, self.bias,
                          True, BN_MOMENTUM, BN_EPS)
        yt = F.batch_norm(xt, self.running_mean_target, self.running_var_target,
                          self.weight, self.bias, True, BN_MOMENTUM, BN_EPS)
        return torch.cat([ys, yt], 0)


def out_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def build_sequential(layers, shape, domain_bn):
    """shape: (C, H, W) of the input. Returns (nn.Sequential, output shape)."""
    mods = []
    c, h, w = shape
    for layer in layers:
        kind = layer[0]
        if kind == "conv2d":
            _, oc, k, s, p = layer
            mods.append(nn.Conv2d(c, oc, k, stride=s, padding=p))
            c, h, w = oc, out_size(h, k, s, p), out_size(w, k, s, p)
        elif kind == "maxpool2d":
            _, k, s, p = layer
            mods.append(nn.MaxPool2d(k, stride=s, padding=p))
            h, w = out_size(h, k, s, p), out_size(w, k, s, p)
        elif kind == "dense":
            mods.append(Dense(c * h * w, layer[1]))
            c, h, w = layer[1], 1, 1
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "sigmoid":
            mods.append(nn.Sigmoid())
        elif kind == "flatten":
            mods.append(nn.Flatten())
            c, h, w = c * h * w, 1, 1
        elif kind == "batchnorm":
            if domain_bn:
                mods.append(DomainBatchNorm(c))
            elif h == 1 and w == 1:
                mods.append(nn.BatchNorm1d(c, eps=BN_EPS, momentum=BN_MOMENTUM))
            else:
                mods.append(nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM))
        else:
            raise ValueError(kind)
    return nn.Sequential(*mods), (c, h, w)


class DannNet(nn.Module):
    def __init__(self, net):
        super().__init__()
        dbn = bool(net["domain_batchnorm"])
        self.features, fshape = build_sequential(net["features"], net["input"], dbn)
        flat = (fshape[0] * fshape[1] * fshape[2], 1, 1)
        self.label_head, lshape = build_sequential(net["label_head"], flat, dbn)
        self.domain_head, dshape = build_sequential(net["domain_head"], flat, dbn)
        assert lshape == (net["classes"], 1, 1), lshape
        assert dshape == (1, 1, 1), dshape
        self.feature_size = flat[0]

    def set_split(self, ns):
        for m in self.modules():
            if isinstance(m, DomainBatchNorm):
                m.split = ns


def fan_in(module):
    w = module.weight
    return w[0].numel()


def param_table(model):
    """[(name, tensor, trainable, (a, b))] in PyTorch state order (dann's order)."""
    table = []
    for seq_name in ("features", "label_head", "domain_head"):
        seq = getattr(model, seq_name)
        for idx, mod in enumerate(seq):
            prefix = "%s.%d." % (seq_name, idx)
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                bound = 1.0 / math.sqrt(fan_in(mod))
                table.append((prefix + "weight", mod.weight, True, (0.0, bound)))
                table.append((prefix + "bias", mod.bias, True, (0.0, bound)))
            elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, DomainBatchNorm)):
                names = ["weight", "bias", "running_mean", "running_var"]
                if isinstance(mod, DomainBatchNorm):
                    names += ["running_mean_target", "running_var_target"]
                for n in names:
                    table.append((prefix + n, getattr(mod, n), n in ("weight", "bias"), BN_INIT[n]))
    # Cross-check against PyTorch's own state order (num_batches_tracked aside).
    state = [k for k in model.state_dict().keys() if not k.endswith("num_batches_tracked")]
    assert state == [t[0] for t in table], (state, [t[0] for t in table])
    return table


def sample_indices(numel, count):
    """Evenly spaced, first and last included; all indices if numel <= count."""
    if numel <= count:
        return list(range(numel))
    return [(k * (numel - 1)) // (count - 1) for k in range(count)]


def run_network(net, dtype):
    """Initialises the network, runs the three steps; returns a record dict."""
    model = DannNet(net)
    model.train()
    model.set_split(net["ns"])
    table = param_table(model)
    init = []
    with torch.no_grad():
        for i, (name, t, trainable, (a, b)) in enumerate(table):
            vals = fill_affine(net["param_seed"] + 1000 * i, t.numel(), a, b)
            v32 = torch.tensor(vals, dtype=torch.float64).to(torch.float32)
            t.copy_(v32.reshape(t.shape))
            init.append(v32.clone())
    model.to(dtype)
    table = param_table(model)  # .to() may replace tensors

    c, h, w = net["input"]
    ns, nt = net["ns"], net["nt"]
    xs = torch.tensor(fill_inputs(net["input_seed"], ns * c * h * w),
                      dtype=torch.float32).reshape(ns, c, h, w).to(dtype)
    xt = torch.tensor(fill_inputs(net["input_seed"] + 1, nt * c * h * w),
                      dtype=torch.float32).reshape(nt, c, h, w).to(dtype)
    labels = torch.tensor([(i * 7 + 3) % net["classes"] for i in range(ns)], dtype=torch.int64)
    dom_targets = torch.cat([torch.zeros(ns), torch.ones(nt)]).to(dtype)

    trainable = [t for (_, t, tr, _) in table if tr]
    opt = torch.optim.SGD(trainable, lr=STEPS[0][1], momentum=0.9, dampening=0,
                          weight_decay=0, nesterov=False)
    steps = []
    for (lam, lr) in STEPS:
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        f = model.features(torch.cat([xs, xt], 0)).flatten(1)
        assert f.shape[1] == model.feature_size
        logits = model.label_head(f[:ns])
        dlogit = model.domain_head(GradReverse.apply(f, lam)).reshape(-1)
        label_loss = F.cross_entropy(logits, labels)
        domain_loss = F.binary_cross_entropy_with_logits(dlogit, dom_targets)
        with torch.no_grad():
            right = torch.cat([dlogit[:ns] < 0, dlogit[ns:] > 0])
            acc = right.to(torch.float64).mean().item()
        (label_loss + domain_loss).backward()
        grads = {name: t.grad.detach().reshape(-1).clone() for (name, t, tr, _) in table if tr}
        opt.step()
        values = {name: t.detach().reshape(-1).clone() for (name, t, _, _) in table}
        steps.append(dict(lam=lam, lr=lr, label_loss=label_loss.item(),
                          domain_loss=domain_loss.item(), accuracy=acc,
                          grads=grads, values=values))
    return dict(table=table, init=init, xs=xs, xt=xt, labels=labels, steps=steps,
                feature_size=model.feature_size)


def fmt(v):
    return "%.9g" % v


def layer_line(head, idx, layer):
    kind = layer[0]
    args = " ".join(str(a) for a in layer[1:])
    return ("layer %s %d %s %s" % (head, idx, kind, args)).rstrip()


def write_fixture(net, rec, path):
    lines = []
    lines += [
        "# dann PyTorch parity fixture, written by tests/torch/make_fixtures.py (torch %s)."
        % torch.__version__,
        "# Do not edit: regenerate (see tests/torch/README.md).",
        "#",
        "# Format: one record per line, whitespace-separated; '#' lines are comments.",
        "#   network NAME | builder desc|mlp|preset_mnist | input C H W | classes K",
        "#   feature_size D | domain_batchnorm 0|1 | ns NS | nt NT | steps S",
        "#   layer HEAD INDEX KIND ARGS  (HEAD features|label_head|domain_head;",
        "#       conv2d OUT KERNEL STRIDE PAD | maxpool2d KERNEL STRIDE PAD | dense UNITS |",
        "#       relu | sigmoid | flatten | batchnorm; batchnorm eps 1e-5, momentum 0.1)",
        "#   mlp INPUT_DIM HIDDEN CLASSES  (builder mlp: dann_model_create_mlp arguments)",
        "#   param_seed_base S | input_seed S",
        "#   param I NAME TRAINABLE NUMEL NDIM D0 .. A B",
        "#       parameter I of dann's parameter list (PyTorch state order); its initial",
        "#       values are float32(A + B * (2u - 1)) for u drawn from SplitMix64 seeded",
        "#       with param_seed_base + 1000 * I, in row-major order (A, B: exact doubles)",
        "#   SplitMix64: state += 0x9E3779B97F4A7C15; z = state; z = (z ^ (z >> 30)) *",
        "#       0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^ (z >> 31);",
        "#       u = (z >> 40) * 2^-24",
        "#   inputs: source NS x C x H x W floats (NCHW) = u - 0.5 from seed input_seed,",
        "#       target NT x C x H x W from seed input_seed + 1;",
        "#       source label i = (7 i + 3) % classes",
        "#   input_sum source|target SUM   (float64 sum of the inputs, to check them)",
        "#   step K LAMBDA LR               (K = 1..steps; SGD momentum 0.9, PyTorch form)",
        "#   label_loss K V | domain_loss K V | domain_accuracy K V",
        "#   grad K NAME COUNT V..          gradient of step K (trainable parameters only)",
        "#   value K NAME COUNT V..         parameter / buffer after step K (K = 0: initial)",
        "#   grad_sample / value_sample K NAME COUNT (INDEX V)..  selected flat indices only",
        "#   grad_norm / value_norm K NAME V   L2 norm of the whole array (float64 sum)",
        "#   Full networks store grad/value; sampled ones store *_sample (at most %d"
        % SAMPLE_COUNT,
        "#   evenly spaced elements, first and last included). Every array has a *_norm line;",
        "#   step 0 stores value_sample of %d elements for every network." % INIT_SAMPLE,
        "",
        "network %s" % net["name"],
        "builder %s" % net["builder"],
        "input %d %d %d" % net["input"],
        "classes %d" % net["classes"],
        "feature_size %d" % rec["feature_size"],
        "domain_batchnorm %d" % net["domain_batchnorm"],
    ]
    if net["builder"] == "mlp":
        lines.append("mlp %d %d %d" % (net["input"][0], net["features"][0][1], net["classes"]))
    for head in ("features", "label_head", "domain_head"):
        for i, layer in enumerate(net[head]):
            lines.append(layer_line(head, i, layer))
    lines += [
        "ns %d" % net["ns"],
        "nt %d" % net["nt"],
        "param_seed_base %d" % net["param_seed"],
        "input_seed %d" % net["input_seed"],
        "input_sum source %s" % repr(rec["xs"].double().sum().item()),
        "input_sum target %s" % repr(rec["xt"].double().sum().item()),
        "steps %d" % len(rec["steps"]),
    ]
    for i, (name, t, trainable, (a, b)) in enumerate(rec["table"]):
        lines.append("param %d %s %d %d %d %s %s %s" % (
            i, name, int(trainable), t.numel(), t.dim(), " ".join(str(d) for d in t.shape),
            repr(float(a)), repr(float(b))))

    def norm(v):
        return math.sqrt(float((v.double() ** 2).sum().item()))

    def arr_lines(kind, k, name, v, full, count):
        out = ["%s_norm %d %s %s" % (kind, k, name, fmt(norm(v)))]
        if full:
            out.append("%s %d %s %d %s" % (kind, k, name, v.numel(),
                                           " ".join(fmt(x) for x in v.tolist())))
        else:
            idx = sample_indices(v.numel(), count)
            vl = v.tolist()
            out.append("%s_sample %d %s %d %s" % (
                kind, k, name, len(idx), " ".join("%d %s" % (j, fmt(vl[j])) for j in idx)))
        return out

    for (name, _, _, _), v in zip(rec["table"], rec["init"]):
        lines += arr_lines("value", 0, name, v, False, INIT_SAMPLE)
    for k, st in enumerate(rec["steps"], start=1):
        lines.append("step %d %s %s" % (k, repr(st["lam"]), repr(st["lr"])))
        lines.append("label_loss %d %s" % (k, fmt(st["label_loss"])))
        lines.append("domain_loss %d %s" % (k, fmt(st["domain_loss"])))
        lines.append("domain_accuracy %d %s" % (k, fmt(st["accuracy"])))
        for (name, _, trainable, _) in rec["table"]:
            if trainable:
                lines += arr_lines("grad", k, name, st["grads"][name], net["full"], SAMPLE_COUNT)
        for (name, _, _, _) in rec["table"]:
            lines += arr_lines("value", k, name, st["values"][name], net["full"], SAMPLE_COUNT)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def check64(net):
    """Prints how far float32 PyTorch is from float64 PyTorch for this network."""
    r32 = run_network(net, torch.float32)
    r64 = run_network(net, torch.float64)
    print("%s:" % net["name"])
    for k, (a, b) in enumerate(zip(r32["steps"], r64["steps"]), start=1):
        print("  step %d  label_loss rel %.2e  domain_loss rel %.2e  acc %s/%s" % (
            k, abs(a["label_loss"] - b["label_loss"]) / abs(b["label_loss"]),
            abs(a["domain_loss"] - b["domain_loss"]) / abs(b["domain_loss"]),
            a["accuracy"], b["accuracy"]))
        gworst = (0.0, "")
        for name, g in a["grads"].items():
            g64 = b["grads"][name]
            scale = g64.abs().max().item()
            err = (g.double() - g64).abs().max().item() / max(scale, 1e-30)
            gworst = max(gworst, (err, name))
        vworst = (0.0, "")
        for name, v in a["values"].items():
            v64 = b["values"][name]
            err = (v.double() - v64).abs().max().item()
            vworst = max(vworst, (err, name))
        print("    grad max |err|/max|g| %.2e (%s)   value max |err| %.2e (%s)" % (
            gworst + vworst))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures"))
    ap.add_argument("--check64", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.check64:
        for net in NETWORKS:
            check64(net)
        return 0
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for net in NETWORKS:
        rec = run_network(net, torch.float32)
        path = os.path.join(args.out, "torch_%s.txt" % net["name"])
        write_fixture(net, rec, path)
        size = os.path.getsize(path)
        total += size
        print("%-40s %8d bytes  losses %s" % (
            os.path.relpath(path), size,
            " ".join("%.5f/%.5f/%.3f" % (s["label_loss"], s["domain_loss"], s["accuracy"])
                     for s in rec["steps"])))
    print("total %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
