#!/usr/bin/python3
"""PyTorch interop for dann model files (docs/model-format.md, format version 2).

As a module (stdlib + torch + numpy):

    import dann_torch as dt
    arch = dt.preset("mnist")                     # or dt.make_arch(...), or a file's
    net = dt.DannNet(arch)                        # features / label_head / domain_head
    ...train it in PyTorch...
    dt.write_dann("m.dann", net, arch, input_scale=1/255, input_mean=[0.45, 0.45, 0.45])

    arch, net, norm, replay = dt.read_dann("m.dann")
    probs, domain_probs = dt.predict(net, norm, images_u8_nhwc)

As a command (run with Debian's /usr/bin/python3, which has torch):

    dann_torch.py export --arch mnist --state-dict IN.pt --out M.dann [--input-mean M0,M1,M2]
    dann_torch.py import --model M.dann --out OUT.pt   # also writes OUT.json (architecture)
    dann_torch.py predict --model M.dann --images F.idx [--labels L.idx] [--probs P.idx]

The PyTorch module mirrors dann's parameter API: a DannNet has three nn.Sequential
members, `features`, `label_head` and `domain_head`, whose indices are dann's layer
positions, so a state_dict's keys are dann's parameter names ("features.0.weight").
Layers: CONV2D -> nn.Conv2d, MAXPOOL2D -> nn.MaxPool2d, DENSE -> Dense (an nn.Linear
that flattens its input in C*H*W order, as dann does), RELU -> nn.ReLU, SIGMOID ->
nn.Sigmoid, DROPOUT -> nn.Dropout, FLATTEN -> nn.Flatten, BATCHNORM -> nn.BatchNorm2d
(image input) or nn.BatchNorm1d (flat input), or DomainBatchNorm when the model has
per-domain batch norm. forward(x) returns (class logits (N, K), domain logit (N,)),
the domain head reading the features flattened to (N, C*H*W) behind a gradient
reversal layer (identity forward; backward multiplies by -net.grl_lambda).

DomainBatchNorm (dann's domain_batchnorm = 1): one scale and shift, two sets of
running statistics, running_mean/running_var (source) and running_mean_target/
running_var_target (target). In training mode the batch must be source samples first:
forward(x, n_source=NS) normalises x[:NS] and x[NS:] each with its own batch statistics
and updates that domain's running statistics, as dann's training step does. In eval
mode every sample is normalised with one domain's running statistics: the target's by
default, as dann_predict does (dann_context_set_domain's default); net.set_domain(
"source") switches every such layer.
"""
import argparse
import collections
import errno
import gzip
import itertools
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = 2
MAGIC = b"DANNMODL"
HEADER_BYTES = 32
V1_HEADER_BYTES = 28
SECTION_HEADER_BYTES = 20
SECTION_OPTIONAL = 1
MAX_SECTIONS = 1024
MAX_LAYERS = 4096
MAX_NAME_BYTES = 4096
MAX_REPLAY_SAMPLES = 1 << 24
MAX_FILE_BYTES = 1 << 34
MAX_DIM = 1 << 16
MAX_UNITS = 1 << 20
MAX_ELEMENTS = 1 << 28

# dann_layer_kind values are the positions in this list.
KINDS = ["conv2d", "maxpool2d", "dense", "relu", "sigmoid", "dropout", "batchnorm", "flatten"]
INT_FIELDS = ["units", "kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w"]
FLOAT_FIELDS = ["rate", "eps", "momentum"]
STACKS = ["features", "label_head", "domain_head"]

# dann_input_format values used by the replay set.
INPUT_F32_NCHW = 0
INPUT_U8_HWC = 2
REPLAY_FORMATS = {INPUT_U8_HWC: "u8_hwc", INPUT_F32_NCHW: "f32_nchw"}

_LAYER = struct.Struct("<8i3f")  # kind, 7 int fields, 3 float fields: 44 bytes


class DannFormatError(ValueError):
    """A file that is not a valid dann model file; the message names the file,
    the section and the problem."""


def f32(x):
    """x rounded to binary32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


# ---------------------------------------------------------------------------
# Architectures: dicts that mirror dann_model_desc / dann_layer_desc
# ---------------------------------------------------------------------------
def layer(kind, units=0, kernel_h=0, kernel_w=0, stride_h=0, stride_w=0, pad_h=0, pad_w=0,
          rate=0.0, eps=0.0, momentum=0.0):
    """One layer, dann_layer_desc's fields, with dann's defaults filled in
    (square shorthand: kernel_w 0 copies kernel_h, and then stride_w / pad_w
    0 copy stride_h / pad_h; stride 0 is 1 for a convolution and the kernel
    for a pool; batch-norm eps 0 is 1e-5, momentum 0 is 0.1)."""
    if kind not in KINDS:
        raise ValueError("unknown layer kind %r (one of %s)" % (kind, ", ".join(KINDS)))
    d = dict(kind=kind, units=int(units), kernel_h=int(kernel_h), kernel_w=int(kernel_w),
             stride_h=int(stride_h), stride_w=int(stride_w), pad_h=int(pad_h), pad_w=int(pad_w),
             rate=f32(rate), eps=f32(eps), momentum=f32(momentum))
    return with_defaults(d)


def with_defaults(d):
    """dann's with_defaults (lib/network/model.cpp) on a layer dict."""
    d = dict(d)
    if d["kind"] in ("conv2d", "maxpool2d"):
        conv = d["kind"] == "conv2d"
        if d["kernel_w"] == 0:
            d["kernel_w"] = d["kernel_h"]
            if d["stride_w"] == 0:
                d["stride_w"] = d["stride_h"]
            if d["pad_w"] == 0:
                d["pad_w"] = d["pad_h"]
        if d["stride_h"] == 0:
            d["stride_h"] = 1 if conv else d["kernel_h"]
        if d["stride_w"] == 0:
            d["stride_w"] = 1 if conv else d["kernel_w"]
    elif d["kind"] == "batchnorm":
        if d["eps"] == 0.0:
            d["eps"] = f32(1e-5)
        if d["momentum"] == 0.0:
            d["momentum"] = f32(0.1)
    return d


def conv2d(units, kernel, stride=0, pad=0):
    return layer("conv2d", units=units, kernel_h=kernel, stride_h=stride, pad_h=pad)


def maxpool2d(kernel, stride=0, pad=0):
    return layer("maxpool2d", kernel_h=kernel, stride_h=stride, pad_h=pad)


def dense(units):
    return layer("dense", units=units)


def relu():
    return layer("relu")


def sigmoid():
    return layer("sigmoid")


def dropout(rate):
    return layer("dropout", rate=rate)


def batchnorm(eps=0.0, momentum=0.0):
    return layer("batchnorm", eps=eps, momentum=momentum)


def flatten():
    return layer("flatten")


def make_arch(input_shape, features, label_head, domain_head, domain_batchnorm=False):
    """An architecture: input (C, H, W), three layer lists, the per-domain
    batch-norm flag. Checked as dann_model_create checks it."""
    arch = dict(input=[int(v) for v in input_shape], domain_batchnorm=1 if domain_batchnorm else 0,
                features=[with_defaults(dict(l)) for l in features],
                label_head=[with_defaults(dict(l)) for l in label_head],
                domain_head=[with_defaults(dict(l)) for l in domain_head])
    analyse(arch)
    return arch


def preset(name):
    """The paper's networks exactly as lib/network/presets.cpp defines them."""
    if name == "mnist":
        return make_arch((3, 28, 28),
                         [conv2d(32, 5), relu(), maxpool2d(2, 2),
                          conv2d(48, 5), relu(), maxpool2d(2, 2)],
                         [dense(100), relu(), dense(100), relu(), dense(10)],
                         [dense(100), relu(), dense(1)])
    if name == "svhn":
        return make_arch((3, 32, 32),
                         [conv2d(64, 5, 1, 2), relu(), maxpool2d(3, 2, 1),
                          conv2d(64, 5, 1, 2), relu(), maxpool2d(3, 2, 1),
                          conv2d(128, 5, 1, 2), relu()],
                         [dense(3072), relu(), dropout(0.5), dense(2048), relu(), dropout(0.5),
                          dense(10)],
                         [dense(1024), relu(), dropout(0.5), dense(1024), relu(), dropout(0.5),
                          dense(1)])
    if name == "gtsrb":
        return make_arch((3, 40, 40),
                         [conv2d(96, 5), relu(), maxpool2d(2, 2),
                          conv2d(144, 3), relu(), maxpool2d(2, 2),
                          conv2d(256, 5), relu(), maxpool2d(2, 2)],
                         [dense(512), relu(), dense(43)],
                         [dense(1024), relu(), dense(1024), relu(), dense(1)])
    raise ValueError("unknown preset %r (mnist, svhn or gtsrb)" % name)


PRESETS = ("mnist", "svhn", "gtsrb")


def analyse(arch):
    """Checks an architecture as dann_model_create does and returns its shapes
    and parameters: dict(shapes={stack: [(in, out)]}, params=[(name, shape,
    trainable)] in dann's order, num_classes, feature_size). A shape is
    (c, h, w, flat). Raises ValueError naming the faulty layer."""
    c, h, w = (int(v) for v in arch["input"])
    if not (0 < c <= MAX_DIM and 0 < h <= MAX_DIM and 0 < w <= MAX_DIM):
        raise ValueError("input shape must be positive (channels x height x width), got %dx%dx%d"
                         % (c, h, w))
    if arch["domain_batchnorm"] not in (0, 1):
        raise ValueError("domain_batchnorm must be 0 or 1")
    dbn = arch["domain_batchnorm"] == 1
    shapes, params = {}, []
    shape = (c, h, w, False)
    feature = None
    for stack in STACKS:
        layers = arch[stack]
        if len(layers) > MAX_LAYERS:
            raise ValueError("%s: too many layers" % stack)
        if stack != "features":
            shape = feature
        out = []
        for i, d in enumerate(layers):
            name = "%s.%d" % (stack, i)
            if d.get("kind") not in KINDS:
                raise ValueError("layer %s: unknown layer kind %r" % (name, d.get("kind")))
            d = with_defaults(d)
            new = _infer(d, shape, name)
            out.append((shape, new))
            kind = d["kind"]
            if kind == "conv2d":
                params.append((name + ".weight", (d["units"], shape[0], d["kernel_h"], d["kernel_w"]),
                               True))
                params.append((name + ".bias", (d["units"],), True))
            elif kind == "dense":
                params.append((name + ".weight", (d["units"], shape[0] * shape[1] * shape[2]), True))
                params.append((name + ".bias", (d["units"],), True))
            elif kind == "batchnorm":
                names = ["weight", "bias", "running_mean", "running_var"]
                if dbn:
                    names += ["running_mean_target", "running_var_target"]
                for n in names:
                    params.append(("%s.%s" % (name, n), (shape[0],), n in ("weight", "bias")))
            shape = new
        shapes[stack] = out
        if stack == "features":
            feature = (shape[0] * shape[1] * shape[2], 1, 1, True)
    for stack, label in (("label_head", True), ("domain_head", False)):
        layers = arch[stack]
        if not layers or layers[-1]["kind"] != "dense":
            raise ValueError("%s must end with a DENSE layer (%s)" % (
                stack, "one unit per class" if label else "one unit: the target logit"))
        units = layers[-1]["units"]
        if label and units < 2:
            raise ValueError("layer %s.%d: the label head needs at least 2 classes, got %d"
                             % (stack, len(layers) - 1, units))
        if not label and units != 1:
            raise ValueError("layer %s.%d: the domain head must end with 1 unit, got %d"
                             % (stack, len(layers) - 1, units))
    return dict(shapes=shapes, params=params, num_classes=arch["label_head"][-1]["units"],
                feature_size=feature[0])


def _infer(d, shape, name):
    c, h, w, flat = shape
    kind = d["kind"]

    def bad(what):
        raise ValueError("layer %s: %s" % (name, what))

    if kind in ("conv2d", "maxpool2d"):
        conv = kind == "conv2d"
        if flat:
            bad("%s needs an image input (C x H x W), got a flat vector of %d features"
                % (kind.upper(), c))
        if not (0 < d["kernel_h"] <= MAX_DIM and 0 < d["kernel_w"] <= MAX_DIM):
            bad("kernel must be positive, got %dx%d" % (d["kernel_h"], d["kernel_w"]))
        if not (0 < d["stride_h"] <= MAX_DIM and 0 < d["stride_w"] <= MAX_DIM):
            bad("stride must be positive")
        if not (0 <= d["pad_h"] <= MAX_DIM and 0 <= d["pad_w"] <= MAX_DIM):
            bad("padding must be >= 0")
        if not conv and (2 * d["pad_h"] > d["kernel_h"] or 2 * d["pad_w"] > d["kernel_w"]):
            bad("MAXPOOL2D padding must be at most half the kernel")
        if conv and not (0 < d["units"] <= MAX_UNITS):
            bad("CONV2D needs 1 to %d output channels (units), got %d" % (MAX_UNITS, d["units"]))
        ph, pw = h + 2 * d["pad_h"], w + 2 * d["pad_w"]
        if ph < d["kernel_h"] or pw < d["kernel_w"]:
            bad("kernel %dx%d is larger than the padded input %dx%d" % (d["kernel_h"], d["kernel_w"],
                                                                        ph, pw))
        out = (d["units"] if conv else c, (ph - d["kernel_h"]) // d["stride_h"] + 1,
               (pw - d["kernel_w"]) // d["stride_w"] + 1, False)
    elif kind == "dense":
        if not (0 < d["units"] <= MAX_UNITS):
            bad("DENSE needs 1 to %d units, got %d" % (MAX_UNITS, d["units"]))
        out = (d["units"], 1, 1, True)
    elif kind == "dropout":
        if not (0.0 <= d["rate"] < 1.0):
            bad("DROPOUT rate must be in [0, 1), got %r" % d["rate"])
        out = shape
    elif kind == "batchnorm":
        if not (d["eps"] > 0.0 and np.isfinite(d["eps"])):
            bad("BATCHNORM eps must be positive")
        if not (0.0 < d["momentum"] <= 1.0):
            bad("BATCHNORM momentum must be in (0, 1]")
        out = shape
    elif kind == "flatten":
        out = (c * h * w, 1, 1, True)
    else:
        out = shape
    if out[0] * out[1] * out[2] > MAX_ELEMENTS:
        bad("output of %d values per sample is too large" % (out[0] * out[1] * out[2]))
    return out


def arch_summary(arch):
    """One line per layer, for messages and --help output."""
    info = analyse(arch)
    lines = ["input %dx%dx%d, %d classes, feature %d%s" % (
        tuple(arch["input"]) + (info["num_classes"], info["feature_size"],
                                ", per-domain batch norm" if arch["domain_batchnorm"] else ""))]
    for stack in STACKS:
        for i, d in enumerate(arch[stack]):
            k = d["kind"]
            if k == "conv2d":
                s = "conv2d %d %dx%d stride %dx%d pad %dx%d" % (
                    d["units"], d["kernel_h"], d["kernel_w"], d["stride_h"], d["stride_w"],
                    d["pad_h"], d["pad_w"])
            elif k == "maxpool2d":
                s = "maxpool2d %dx%d stride %dx%d pad %dx%d" % (
                    d["kernel_h"], d["kernel_w"], d["stride_h"], d["stride_w"], d["pad_h"], d["pad_w"])
            elif k == "dense":
                s = "dense %d" % d["units"]
            elif k == "dropout":
                s = "dropout %g" % d["rate"]
            elif k == "batchnorm":
                s = "batchnorm eps %g momentum %g" % (d["eps"], d["momentum"])
            else:
                s = k
            lines.append("  %s.%d %s" % (stack, i, s))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# PyTorch modules
# ---------------------------------------------------------------------------
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
    """nn.Linear that reads its input flattened in C*H*W order, as dann's DENSE
    does (so a DENSE right after a convolution needs no FLATTEN). Same
    state_dict keys as nn.Linear."""

    def forward(self, x):
        return super().forward(x.flatten(1))


class DomainBatchNorm(nn.Module):
    """dann's per-domain batch norm: one scale and shift, running statistics
    per domain (source: running_mean/var, target: running_mean_target/
    var_target). Training: `split` source samples first, each part normalised
    with its own batch statistics. Eval: `domain`'s running statistics,
    "target" by default (as dann_predict)."""

    def __init__(self, channels, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("running_mean_target", torch.zeros(channels))
        self.register_buffer("running_var_target", torch.ones(channels))
        self.split = None
        self.domain = "target"

    def forward(self, x):
        if self.training:
            if self.split is None:
                raise RuntimeError("DomainBatchNorm in training mode needs the number of source "
                                   "samples at the front of the batch: net(x, n_source=NS)")
            parts = []
            if self.split > 0:
                parts.append(F.batch_norm(x[:self.split], self.running_mean, self.running_var,
                                          self.weight, self.bias, True, self.momentum, self.eps))
            if self.split < x.shape[0]:
                parts.append(F.batch_norm(x[self.split:], self.running_mean_target,
                                          self.running_var_target, self.weight, self.bias, True,
                                          self.momentum, self.eps))
            return torch.cat(parts, 0)
        if self.domain == "target":
            mean, var = self.running_mean_target, self.running_var_target
        else:
            mean, var = self.running_mean, self.running_var
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self):
        return "%d, eps=%g, momentum=%g, domain=%s" % (self.weight.numel(), self.eps, self.momentum,
                                                      self.domain)


def _module(d, shape, dbn):
    c, h, w, flat = shape
    kind = d["kind"]
    if kind == "conv2d":
        return nn.Conv2d(c, d["units"], (d["kernel_h"], d["kernel_w"]),
                         stride=(d["stride_h"], d["stride_w"]), padding=(d["pad_h"], d["pad_w"]))
    if kind == "maxpool2d":
        return nn.MaxPool2d((d["kernel_h"], d["kernel_w"]), stride=(d["stride_h"], d["stride_w"]),
                            padding=(d["pad_h"], d["pad_w"]))
    if kind == "dense":
        return Dense(c * h * w, d["units"])
    if kind == "relu":
        return nn.ReLU()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "dropout":
        return nn.Dropout(d["rate"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "batchnorm":
        if dbn:
            return DomainBatchNorm(c, eps=d["eps"], momentum=d["momentum"])
        if flat:
            return nn.BatchNorm1d(c, eps=d["eps"], momentum=d["momentum"])
        return nn.BatchNorm2d(c, eps=d["eps"], momentum=d["momentum"])
    raise ValueError(kind)


class DannNet(nn.Module):
    """A dann network in PyTorch. forward(x, n_source=None) -> (class logits
    (N, K), domain logit (N,)); x is float32 NCHW, already normalised (see
    normalise_u8). n_source is needed only in training mode with per-domain
    batch norm: the first n_source samples are the source part."""

    def __init__(self, arch):
        super().__init__()
        info = analyse(arch)
        self.arch = arch
        self.num_classes = info["num_classes"]
        self.feature_size = info["feature_size"]
        self.param_specs = info["params"]
        self.grl_lambda = 1.0
        dbn = arch["domain_batchnorm"] == 1
        for stack in STACKS:
            mods = [_module(with_defaults(d), shape[0], dbn)
                    for d, shape in zip(arch[stack], info["shapes"][stack])]
            setattr(self, stack, nn.Sequential(*mods))

    def forward(self, x, n_source=None):
        if n_source is not None:
            for m in self.modules():
                if isinstance(m, DomainBatchNorm):
                    m.split = int(n_source)
        f = self.features(x).flatten(1)
        logits = self.label_head(f)
        dlogit = self.domain_head(GradReverse.apply(f, self.grl_lambda)).reshape(-1)
        return logits, dlogit

    def set_domain(self, domain):
        """Which running statistics per-domain batch norm uses in eval mode:
        "target" (default) or "source". No effect without per-domain BN."""
        if domain not in ("source", "target"):
            raise ValueError("domain must be 'source' or 'target', got %r" % domain)
        for m in self.modules():
            if isinstance(m, DomainBatchNorm):
                m.domain = domain

    def dann_tensors(self):
        """[(name, tensor, trainable)] in dann's parameter order: the
        parameters and batch-norm running statistics that a dann file holds
        (num_batches_tracked is not among them)."""
        named = dict(self.named_parameters())
        named.update(self.named_buffers())
        return [(name, named[name], trainable) for name, _, trainable in self.param_specs]

    def dann_state_dict(self):
        """An OrderedDict name -> tensor (detached copies) in dann's order."""
        return collections.OrderedDict((n, t.detach().clone()) for n, t, _ in self.dann_tensors())

    def load_dann_state_dict(self, state):
        """Copies dann's parameters from `state` (a state_dict). Keys must be
        exactly dann's names, shapes exactly dann's; num_batches_tracked keys
        are ignored. Raises ValueError listing what does not fit."""
        state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
        want = {name: shape for name, shape, _ in self.param_specs}
        missing = [n for n in want if n not in state]
        extra = [k for k in state if k not in want]
        problems = []
        if missing:
            problems.append("missing: " + ", ".join(missing))
        if extra:
            problems.append("not in the architecture: " + ", ".join(extra))
        for name, shape in want.items():
            if name in state and tuple(state[name].shape) != tuple(shape):
                problems.append("%s: shape %s, the architecture's is %s"
                                % (name, tuple(state[name].shape), tuple(shape)))
        if problems:
            raise ValueError("the state_dict does not fit the architecture; " + "; ".join(problems))
        with torch.no_grad():
            for name, t, _ in self.dann_tensors():
                t.copy_(torch.as_tensor(state[name], dtype=torch.float32).reshape(t.shape))


# ---------------------------------------------------------------------------
# Input normalisation and inference
# ---------------------------------------------------------------------------
def normalise_u8(images, norm, channels):
    """uint8 images (N, H, W, C) or (N, H, W) -> float32 NCHW tensor, as dann
    normalises uint8 input: pixel * scale - mean[c], in float32; a single
    channel is replicated to `channels`."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise ValueError("expected uint8 images, got %s" % a.dtype)
    if a.ndim == 3:
        a = a[..., None]
    if a.shape[3] == 1 and channels != 1:
        a = np.repeat(a, channels, axis=3)
    if a.shape[3] != channels:
        raise ValueError("images have %d channels, the model reads %d (or 1)" % (a.shape[3], channels))
    scale = np.float32(norm["scale"])
    mean = np.asarray(norm["mean"], dtype=np.float32)
    x = a.astype(np.float32) * scale - mean  # broadcast over the channel axis, in float32
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def predict(net, norm, x, domain="target", batch=256):
    """Class probabilities (N, K) and P(target) (N,) as numpy float32, like
    dann_predict: eval mode, softmax and sigmoid. x: uint8 (N, H, W[, C])
    images (normalised with `norm`) or a float32 NCHW array/tensor (used as
    given). `domain` picks per-domain batch-norm statistics."""
    was_training = net.training
    net.eval()
    net.set_domain(domain)
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        x = normalise_u8(x, norm, net.arch["input"][0])
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.shape[1] == 1 and net.arch["input"][0] != 1:
        x = x.expand(-1, net.arch["input"][0], -1, -1)
    probs, dprobs = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            logits, dlogit = net(x[i:i + batch])
            probs.append(torch.softmax(logits, 1))
            dprobs.append(torch.sigmoid(dlogit))
    net.train(was_training)
    return torch.cat(probs).numpy(), torch.cat(dprobs).numpy()


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _section(tag, flags, body):
    head = tag + struct.pack("<IQ", flags, len(body))
    # The CRC covers the tag, flags and length as well as the body.
    crc = zlib.crc32(body, zlib.crc32(head))
    return head + struct.pack("<I", crc) + body


def _encode_layers(layers):
    out = [struct.pack("<I", len(layers))]
    for d in map(with_defaults, layers):
        out.append(_LAYER.pack(KINDS.index(d["kind"]), *[int(d[k]) for k in INT_FIELDS],
                               *[float(d[k]) for k in FLOAT_FIELDS]))
    return b"".join(out)


def _label_bytes(num_classes):
    return 1 if num_classes <= 256 else 2 if num_classes <= 65536 else 4


def _check_replay(replay, arch, num_classes):
    """Returns (format code, channels, samples array in file order, labels)."""
    fmt = replay["format"]
    codes = {v: k for k, v in REPLAY_FORMATS.items()}
    if fmt not in codes:
        raise ValueError("replay format must be 'u8_hwc' or 'f32_nchw', got %r" % (fmt,))
    c, h, w = arch["input"]
    s = np.asarray(replay["samples"])
    labels = np.asarray(replay["labels"]).astype(np.int64).reshape(-1)
    n = labels.shape[0]
    if fmt == "u8_hwc":
        if s.dtype != np.uint8:
            raise ValueError("u8_hwc replay samples must be uint8")
        if s.ndim == 3:
            s = s[..., None]
        if s.ndim != 4 or s.shape[1:3] != (h, w) or s.shape[3] not in (1, c):
            raise ValueError("replay samples are %s (N, H, W, C), the model reads %dx%d with %d "
                             "channels (or 1)" % (s.shape, h, w, c))
        channels = s.shape[3]
    else:
        s = s.astype(np.float32)
        if s.ndim != 4 or s.shape[2:] != (h, w) or s.shape[1] not in (1, c):
            raise ValueError("replay samples are %s (N, C, H, W), the model reads %dx%dx%d (or 1 "
                             "channel)" % (s.shape, c, h, w))
        if not np.all(np.isfinite(s)):
            raise ValueError("replay samples hold NaN or Inf")
        channels = s.shape[1]
    if s.shape[0] != n:
        raise ValueError("%d replay samples, %d labels" % (s.shape[0], n))
    if not 0 < n <= MAX_REPLAY_SAMPLES:
        raise ValueError("a replay set holds 1 to %d samples, got %d" % (MAX_REPLAY_SAMPLES, n))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError("replay labels must be in [0, %d)" % num_classes)
    return codes[fmt], channels, s, labels


def encode_dann(net, arch, input_scale, input_mean, replay=None):
    """The bytes of a format-2 dann file (see write_dann)."""
    info = analyse(arch)
    c, h, w = (int(v) for v in arch["input"])
    mean = [f32(m) for m in input_mean]
    if len(mean) != c:
        raise ValueError("input mean has %d values, the model has %d channels" % (len(mean), c))
    if not all(np.isfinite([f32(input_scale)] + mean)):
        raise ValueError("the input normalisation holds NaN or Inf")

    arch_body = struct.pack("<4I", c, h, w, arch["domain_batchnorm"]) + b"".join(
        _encode_layers(arch[s]) for s in STACKS)
    norm_body = struct.pack("<fI", f32(input_scale), c) + struct.pack("<%df" % c, *mean)

    named = dict(net.named_parameters())
    named.update(net.named_buffers())
    parm = [struct.pack("<I", len(info["params"]))]
    for name, shape, _ in info["params"]:
        if name not in named:
            raise ValueError("the module has no tensor %s" % name)
        t = named[name].detach().to("cpu", torch.float32).contiguous()
        if tuple(t.shape) != tuple(shape):
            raise ValueError("%s: shape %s, the architecture's is %s" % (name, tuple(t.shape),
                                                                         tuple(shape)))
        v = t.numpy().astype("<f4")
        if not np.all(np.isfinite(v)):
            raise ValueError("%s holds NaN or Inf" % name)
        b = name.encode("utf-8")
        parm.append(struct.pack("<I", len(b)) + b + struct.pack("<I", len(shape)) +
                    struct.pack("<%dQ" % len(shape), *shape) + v.tobytes())

    sections = [_section(b"ARCH", 0, arch_body), _section(b"NORM", 0, norm_body),
                _section(b"PARM", 0, b"".join(parm))]
    if replay is not None:
        code, channels, s, labels = _check_replay(replay, arch, info["num_classes"])
        lb = _label_bytes(info["num_classes"])
        body = struct.pack("<4IQI", code, channels, h, w, labels.shape[0], lb)
        body += s.tobytes() if code == INPUT_U8_HWC else s.astype("<f4").tobytes()
        body += labels.astype({1: "<u1", 2: "<u2", 4: "<u4"}[lb]).tobytes()
        sections.append(_section(b"RPLY", SECTION_OPTIONAL, body))

    total = HEADER_BYTES + sum(len(s) for s in sections)
    head = MAGIC + struct.pack("<IIQI", FORMAT_VERSION, 0, total, len(sections))
    return head + struct.pack("<I", zlib.crc32(head)) + b"".join(sections)


_tmp_counter = itertools.count()


def write_file_atomically(path, data):
    """As dann_model_save: a temporary file beside `path` (O_EXCL), written
    whole, fsync'ed and renamed over `path`, then the folder fsync'ed. On a
    failure before the rename the temporary file is removed and `path` is
    untouched."""
    folder = os.path.dirname(os.path.abspath(path))
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tmp = "%s.tmp-%d-%d" % (path, os.getpid(), next(_tmp_counter))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise OSError(e.errno, "writing %s failed: %s; %s is unchanged"
                              % (tmp, e.strerror, path)) from e
            raise
        try:
            os.fsync(dir_fd)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise OSError(e.errno, "%s was written, but syncing its folder failed: %s"
                              % (path, e.strerror)) from e
    finally:
        os.close(dir_fd)


def write_dann(path, net, arch, input_scale, input_mean, replay=None):
    """Writes `net` (a DannNet, or any module with dann's parameter names) as
    a format-2 dann file: ARCH, NORM, PARM and, with `replay`, RPLY.
    input_scale, input_mean: uint8 input is normalised as pixel * scale -
    mean[c]. replay: dict(format="u8_hwc", samples=uint8 (N, H, W, C) or
    (N, H, W), labels=(N,)) or dict(format="f32_nchw", samples=float32
    (N, C, H, W), labels=...). No optimizer state is written."""
    write_file_atomically(path, encode_dann(net, arch, input_scale, input_mean, replay))


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
class _Reader:
    def __init__(self, data, context):
        self.data = data
        self.pos = 0
        self.context = context

    def bad(self, what):
        raise DannFormatError("%s: %s" % (self.context, what))

    def left(self):
        return len(self.data) - self.pos

    def take(self, n, what):
        if n > self.left():
            self.bad("truncated while reading %s (%d bytes needed, %d remain)" % (what, n, self.left()))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def need(self, count, size, what):
        if count > self.left() // size:
            self.bad("truncated: %s needs %d bytes, %d remain" % (what, count * size, self.left()))

    def u32(self, what):
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what):
        return struct.unpack("<Q", self.take(8, what))[0]

    def f32(self, what):
        return struct.unpack("<f", self.take(4, what))[0]

    def floats(self, n, what):
        self.need(n, 4, what)
        return np.frombuffer(self.take(4 * n, what), dtype="<f4").astype(np.float32)

    def end(self):
        if self.left():
            self.bad("%d unexpected bytes at the end" % self.left())


def _read_layers(r, stack):
    n = r.u32("layer count")
    if n > MAX_LAYERS:
        r.bad("%s: %d layers is too many" % (stack, n))
    r.need(n, _LAYER.size, "%s layers" % stack)
    out = []
    for _ in range(n):
        v = _LAYER.unpack(r.take(_LAYER.size, "layer"))
        if not 0 <= v[0] < len(KINDS):
            r.bad("%s: unknown layer kind %d" % (stack, v[0]))
        d = dict(kind=KINDS[v[0]])
        d.update(zip(INT_FIELDS, v[1:8]))
        d.update(zip(FLOAT_FIELDS, v[8:11]))
        out.append(d)
    return out


def _read_dbn_flag(r):
    dbn = r.u32("domain batch-norm flag")
    if dbn > 1:
        r.bad("domain batch-norm flag %d is not 0 or 1" % dbn)
    return dbn


def _arch_from(r, c, h, w, dbn, stacks, param_bytes):
    arch = dict(input=[c, h, w], domain_batchnorm=dbn, features=stacks[0], label_head=stacks[1],
                domain_head=stacks[2])
    try:
        info = analyse(arch)
    except ValueError as e:
        r.bad("the architecture is invalid: %s" % e)
    values = sum(int(np.prod(shape)) for _, shape, _ in info["params"])
    if values > param_bytes // 4:
        r.bad("the architecture has %d parameter values, more than the %d bytes of parameters in the "
              "file hold" % (values, param_bytes))
    return arch, info


def _read_params(r, net, info):
    count = r.u32("parameter count")
    if count != len(info["params"]):
        r.bad("holds %d parameters, the architecture has %d" % (count, len(info["params"])))
    tensors = {n: t for n, t, _ in net.dann_tensors()}
    for want, shape, _ in info["params"]:
        n = r.u32("parameter name")
        if n > MAX_NAME_BYTES:
            r.bad("parameter name of %d bytes is too long" % n)
        name = r.take(n, "parameter name").decode("utf-8", "replace")
        if name != want:
            r.bad("parameter '%s' where '%s' was expected" % (name, want))
        rank = r.u32("parameter rank")
        if rank != len(shape):
            r.bad("%s: rank %d does not match the architecture's %d" % (name, rank, len(shape)))
        got = tuple(r.u64("parameter shape") for _ in range(rank))
        if got != tuple(shape):
            r.bad("%s: shape does not match the architecture" % name)
        v = r.floats(int(np.prod(shape)), name)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            r.bad("%s[%d] holds NaN or Inf" % (name, bad[0]))
        with torch.no_grad():
            tensors[name].copy_(torch.from_numpy(v.reshape(shape)))


def _read_optimizer(r, info):
    """Checks the optimizer state's layout (a reader that only runs the model
    does not keep it)."""
    opt = r.u32("optimizer")
    if opt not in (0, 1):
        r.bad("unknown optimizer %d" % opt)
    r.u64("step count")
    for name, shape, trainable in info["params"]:
        r.u64("parameter step count")
        numel = int(np.prod(shape))
        for second in (False, True):
            n = r.u64("optimizer state size")
            want = 0 if not trainable else (numel if (not second or opt == 1) else 0)
            if n != want:
                r.bad("%s: optimizer state has %d values, expected %d" % (name, n, want))
            v = r.floats(n, name + " optimizer state")
            if not np.all(np.isfinite(v)):
                r.bad("%s: optimizer state holds NaN or Inf" % name)


def _read_replay(r, arch, num_classes):
    fmt = r.u32("replay format")
    if fmt not in REPLAY_FORMATS:
        r.bad("unknown replay sample format %d" % fmt)
    c, h, w = r.u32("replay channels"), r.u32("replay height"), r.u32("replay width")
    mc, mh, mw = arch["input"]
    if h != mh or w != mw or c not in (mc, 1):
        r.bad("replay samples are %dx%dx%d, the model reads %dx%dx%d (or 1 channel)"
              % (c, h, w, mc, mh, mw))
    n = r.u64("replay sample count")
    if n == 0:
        r.bad("the replay set holds no samples")
    if n > MAX_REPLAY_SAMPLES:
        r.bad("replay set of %d samples is too large" % n)
    lb = r.u32("replay label width")
    if lb != _label_bytes(num_classes):
        r.bad("replay labels of %d bytes; %d classes take %d" % (lb, num_classes,
                                                                 _label_bytes(num_classes)))
    sample = c * h * w * (1 if fmt == INPUT_U8_HWC else 4)
    r.need(n, sample + lb, "replay set (%d samples)" % n)
    raw = r.take(n * sample, "replay samples")
    if fmt == INPUT_U8_HWC:
        samples = np.frombuffer(raw, dtype=np.uint8).reshape(n, h, w, c).copy()
    else:
        samples = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(n, c, h, w)
        if not np.all(np.isfinite(samples)):
            r.bad("replay sample %d holds NaN or Inf"
                  % int(np.flatnonzero(~np.isfinite(samples.reshape(n, -1)).any(1))[0]))
    labels = np.frombuffer(r.take(n * lb, "replay labels"),
                           dtype={1: "<u1", 2: "<u2", 4: "<u4"}[lb]).astype(np.int64)
    if labels.max() >= num_classes:
        i = int(np.flatnonzero(labels >= num_classes)[0])
        r.bad("replay label %d of sample %d is out of range: the model has %d classes"
              % (labels[i], i, num_classes))
    return dict(format=REPLAY_FORMATS[fmt], samples=samples, labels=labels)


def _check_norm(r, scale, mean):
    if not np.isfinite(scale):
        r.bad("input scale is not finite")
    for i, m in enumerate(mean):
        if not np.isfinite(m):
            r.bad("input mean of channel %d is not finite" % i)


def _check_input_shape(r, c, h, w):
    if not (0 < c <= MAX_DIM and 0 < h <= MAX_DIM and 0 < w <= MAX_DIM):
        r.bad("input shape %dx%dx%d is out of range" % (c, h, w))


def _decode_v2(data, name):
    whole = _Reader(data, name)
    if len(data) < HEADER_BYTES:
        whole.bad("truncated: %d bytes, the header alone is %d" % (len(data), HEADER_BYTES))
    flags, file_bytes, count, crc = struct.unpack("<IQII", data[12:32])
    if zlib.crc32(data[:28]) != crc:
        whole.bad("header checksum mismatch: the file is corrupted")
    if flags != 0:
        whole.bad("unknown header flags %d" % flags)
    if file_bytes > len(data):
        whole.bad("truncated: the header says %d bytes, the file holds %d" % (file_bytes, len(data)))
    if file_bytes < len(data):
        whole.bad("the header says %d bytes, the file holds %d (padded, or two files joined)"
                  % (file_bytes, len(data)))
    if count > MAX_SECTIONS:
        whole.bad("%d sections is too many" % count)
    found = {}
    pos = HEADER_BYTES
    for i in range(count):
        if len(data) - pos < SECTION_HEADER_BYTES:
            whole.bad("the header counts %d sections, the file ends after %d" % (count, i))
        raw_tag = data[pos:pos + 4]
        tag = "".join(chr(b) if 0x20 <= b < 0x7f else "\\x%02x" % b for b in raw_tag)
        sflags, length, scrc = struct.unpack("<IQI", data[pos + 4:pos + 20])
        sr = _Reader(b"", "%s: section %s" % (name, tag))
        remain = len(data) - pos - SECTION_HEADER_BYTES
        if length > remain:
            sr.bad("a body of %d bytes runs past the end of the file (%d bytes remain)"
                   % (length, remain))
        body = data[pos + SECTION_HEADER_BYTES:pos + SECTION_HEADER_BYTES + length]
        if zlib.crc32(body, zlib.crc32(data[pos:pos + 16])) != scrc:
            sr.bad("checksum mismatch: the file is corrupted")
        if sflags & ~SECTION_OPTIONAL:
            sr.bad("unknown section flags %d" % sflags)
        pos += SECTION_HEADER_BYTES + length
        if tag not in ("ARCH", "NORM", "PARM", "OPTM", "RPLY"):
            if sflags & SECTION_OPTIONAL:
                continue
            sr.bad("unknown section, not marked optional (written by a newer dann?)")
        if tag in found:
            sr.bad("duplicate section")
        found[tag] = body
    if pos != len(data):
        whole.bad("%d bytes after the last of the %d sections" % (len(data) - pos, count))
    for tag in ("ARCH", "NORM", "PARM"):
        if tag not in found:
            whole.bad("missing required section %s" % tag)

    def body(tag):
        return _Reader(found[tag], "%s: section %s" % (name, tag))

    r = body("ARCH")
    c, h, w = r.u32("input channels"), r.u32("input height"), r.u32("input width")
    _check_input_shape(r, c, h, w)
    dbn = _read_dbn_flag(r)
    stacks = [_read_layers(r, s) for s in STACKS]
    r.end()
    arch, info = _arch_from(r, c, h, w, dbn, stacks, len(found["PARM"]))
    net = DannNet(arch)

    r = body("NORM")
    scale = r.f32("input scale")
    channels = r.u32("mean channels")
    if channels != c:
        r.bad("holds the mean of %d channels, the model has %d" % (channels, c))
    mean = [float(v) for v in r.floats(channels, "input mean")]
    r.end()
    _check_norm(r, scale, mean)

    r = body("PARM")
    _read_params(r, net, info)
    r.end()
    if "OPTM" in found:
        r = body("OPTM")
        _read_optimizer(r, info)
        r.end()
    replay = None
    if "RPLY" in found:
        r = body("RPLY")
        replay = _read_replay(r, arch, info["num_classes"])
        r.end()
    return arch, net, dict(scale=scale, mean=mean), replay


def _decode_v1(data, name):
    whole = _Reader(data, name)
    if len(data) < V1_HEADER_BYTES:
        whole.bad("truncated: %d bytes, a version 1 header alone is %d" % (len(data), V1_HEADER_BYTES))
    flags, payload, crc = struct.unpack("<IQI", data[12:28])
    if flags & ~1:
        whole.bad("unknown flags %d" % flags)
    held = len(data) - V1_HEADER_BYTES
    if payload > held:
        whole.bad("truncated: the payload should be %d bytes, the file holds %d" % (payload, held))
    if payload < held:
        whole.bad("the payload should be %d bytes, the file holds %d (padded, or two files joined)"
                  % (payload, held))
    if zlib.crc32(data[V1_HEADER_BYTES:]) != crc:
        whole.bad("checksum mismatch: the file is corrupted")
    r = _Reader(data[V1_HEADER_BYTES:], name)
    c, h, w = r.u32("input channels"), r.u32("input height"), r.u32("input width")
    dbn = _read_dbn_flag(r)
    if not 0 < c <= MAX_DIM:
        r.bad("input channels %d out of range" % c)
    scale = r.f32("input scale")
    mean = [float(v) for v in r.floats(c, "input mean")]
    stacks = [_read_layers(r, s) for s in STACKS]
    _check_input_shape(r, c, h, w)
    arch, info = _arch_from(r, c, h, w, dbn, stacks, r.left())
    _check_norm(r, scale, mean)
    net = DannNet(arch)
    _read_params(r, net, info)
    if flags & 1:
        _read_optimizer(r, info)
    if r.left():
        r.bad("%d unexpected bytes after the contents" % r.left())
    return arch, net, dict(scale=scale, mean=mean), None


def decode_dann(data, name="<bytes>"):
    """read_dann on bytes in memory; `name` stands for the file in messages."""
    whole = _Reader(data, name)
    if len(data) < len(MAGIC):
        if data and MAGIC.startswith(data):
            whole.bad("truncated: %d bytes, too short for a model file" % len(data))
        whole.bad("truncated: the file is empty" if not data else "not a dann model file (bad magic)")
    if data[:8] != MAGIC:
        whole.bad("not a dann model file (bad magic)")
    if len(data) < 12:
        whole.bad("truncated: %d bytes, too short for a model file" % len(data))
    version = struct.unpack("<I", data[8:12])[0]
    if version == 1:
        return _decode_v1(data, name)
    if version != FORMAT_VERSION:
        whole.bad("format version %d is not supported (this script reads 1 and %d)"
                  % (version, FORMAT_VERSION))
    return _decode_v2(data, name)


def read_dann(path):
    """Reads a dann model file (format 2, or 1) and returns (arch, net, norm,
    replay): the architecture dict, a DannNet in eval mode holding the file's
    parameters, dict(scale=, mean=[...]), and the replay set (dict(format=,
    samples=, labels=)) or None. Optimizer state (checkpoints) is checked and
    skipped. Raises DannFormatError naming the file, the section and the
    problem, OSError if the file cannot be read."""
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise DannFormatError("%s: %d bytes is larger than a model file may be" % (path, size))
    with open(path, "rb") as fh:
        data = fh.read()
    arch, net, norm, replay = decode_dann(data, path)
    net.eval()
    return arch, net, norm, replay


# ---------------------------------------------------------------------------
# IDX files (the --images / --labels / --probs of the command line)
# ---------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x0D: np.dtype(">f4")}


def read_idx(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise ValueError("%s: not an IDX file of uint8 or float32 with 1 to 4 dimensions" % path)
    nd = data[3]
    if len(data) < 4 + 4 * nd:
        raise ValueError("%s: truncated header" % path)
    dims = struct.unpack(">%dI" % nd, data[4:4 + 4 * nd])
    dt = _IDX_TYPES[data[2]]
    want = int(np.prod(dims)) * dt.itemsize
    if len(data) - 4 - 4 * nd != want:
        raise ValueError("%s: expected %d bytes of data, file has %d" % (path, want,
                                                                       len(data) - 4 - 4 * nd))
    a = np.frombuffer(data, dtype=dt, offset=4 + 4 * nd).reshape(dims)
    return a.astype(np.uint8 if data[2] == 0x08 else np.float32)


def write_idx(path, array):
    a = np.asarray(array)
    code = 0x08 if a.dtype == np.uint8 else 0x0D
    a = a.astype(_IDX_TYPES[code])
    data = b"\0\0" + bytes([code, a.ndim]) + struct.pack(">%dI" % a.ndim, *a.shape) + a.tobytes()
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_file_atomically(path, data)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _json_path(out):
    root, ext = os.path.splitext(out)
    return (root if ext else out) + ".json"


def _floats(text):
    return [float(v) for v in text.replace(",", " ").split()]


def _load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return obj["state_dict"]
    if isinstance(obj, dict):
        return obj
    raise ValueError("%s holds a %s, not a state_dict" % (path, type(obj).__name__))


def cmd_export(args):
    norm = dict(scale=float(np.float32(1.0) / np.float32(255.0)), mean=None)
    replay = None
    if args.arch in PRESETS:
        arch = preset(args.arch)
    else:
        with open(args.arch) as fh:
            doc = json.load(fh)
        arch = make_arch(doc["input"], doc["features"], doc["label_head"], doc["domain_head"],
                         doc.get("domain_batchnorm", 0))
        if "input_scale" in doc:
            norm["scale"] = doc["input_scale"]
        if "input_mean" in doc:
            norm["mean"] = doc["input_mean"]
    if args.domain_batchnorm:
        arch = dict(arch, domain_batchnorm=1)
    c = arch["input"][0]
    if args.input_scale is not None:
        norm["scale"] = args.input_scale
    if args.input_mean is not None:
        norm["mean"] = _floats(args.input_mean)
        if len(norm["mean"]) == 1:
            norm["mean"] = norm["mean"] * c
    if norm["mean"] is None:
        norm["mean"] = [0.0] * c
    if args.replay:
        z = np.load(args.replay)
        replay = dict(format=str(z["format"]), samples=z["samples"], labels=z["labels"])
    net = DannNet(arch)
    net.load_dann_state_dict(_load_state_dict(args.state_dict))
    write_dann(args.out, net, arch, norm["scale"], norm["mean"], replay)
    info = analyse(arch)
    print("wrote %s: %d parameters (%d values), input scale %.9g, mean %s%s" % (
        args.out, len(info["params"]), sum(int(np.prod(s)) for _, s, _ in info["params"]),
        norm["scale"], ", ".join("%.6g" % m for m in norm["mean"]),
        ", replay set of %d" % len(replay["labels"]) if replay else ""))
    return 0


def cmd_import(args):
    arch, net, norm, replay = read_dann(args.model)
    info = analyse(arch)
    torch.save(net.dann_state_dict(), args.out)
    doc = dict(arch)
    doc.update(input_scale=norm["scale"], input_mean=norm["mean"], num_classes=info["num_classes"],
               feature_size=info["feature_size"],
               replay=None if replay is None else dict(format=replay["format"],
                                                       n=int(len(replay["labels"]))))
    jpath = _json_path(args.out)
    with open(jpath, "w") as fh:
        fh.write(arch_json(doc))
    print("wrote %s (state_dict, %d tensors) and %s (architecture)" % (args.out, len(info["params"]),
                                                                    jpath))
    if replay is not None:
        if args.replay:
            np.savez(args.replay, format=np.array(replay["format"]), samples=replay["samples"],
                     labels=replay["labels"])
            print("wrote %s (replay set, %d samples)" % (args.replay, len(replay["labels"])))
        else:
            print("the file holds a replay set of %d samples; --replay R.npz saves it"
                  % len(replay["labels"]))
    print(arch_summary(arch))
    return 0


def cmd_predict(args):
    arch, net, norm, _ = read_dann(args.model)
    x = read_idx(args.images)
    c, h, w = arch["input"]
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        if x.shape[1:3] != (h, w) or (x.ndim == 4 and x.shape[3] not in (1, c)):
            raise ValueError("%s: images %s, the model reads %dx%d with %d channels (or 1)"
                             % (args.images, x.shape, h, w, c))
    elif x.dtype == np.float32 and x.ndim == 2:
        if x.shape[1] != c or h != 1 or w != 1:
            raise ValueError("%s: %d features per sample, the model reads %dx%dx%d"
                             % (args.images, x.shape[1], c, h, w))
        x = x.reshape(-1, c, 1, 1)
    else:
        raise ValueError("%s: expected uint8 images (N, H, W) or (N, H, W, C), or float32 "
                         "features (N, F); the file holds %s %s" % (args.images, x.dtype, x.shape))
    if args.limit:
        x = x[:args.limit]
    probs, dprobs = predict(net, norm, x, domain=args.domain)
    labels = read_idx(args.labels)[:len(probs)] if args.labels else None
    pred = probs.argmax(1)
    if args.probs:
        write_idx(args.probs, probs)
    if args.domain_probs:
        write_idx(args.domain_probs, dprobs)
    if not args.quiet:
        print("index class p(class) p(target)" + (" label" if labels is not None else ""))
        for i in range(len(probs)):
            print("%d %d %.6f %.6f%s" % (i, pred[i], probs[i, pred[i]], dprobs[i],
                                        " %d" % labels[i] if labels is not None else ""))
    if labels is not None:
        print("accuracy %.4f over %d samples" % ((pred == labels).mean(), len(pred)))
    print("mean p(target) %.4f" % dprobs.mean())
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="dann_torch.py", description="Convert between PyTorch state_dicts and dann model files "
        "(format 2), and run a dann file in PyTorch.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="PyTorch state_dict -> dann file",
                       description="Write a dann model file from a PyTorch state_dict whose keys are "
                       "dann's parameter names (features.0.weight, ...; num_batches_tracked ignored).")
    p.add_argument("--arch", required=True, help="mnist, svhn, gtsrb, or an architecture JSON as "
                   "written by 'import' (its input_scale/input_mean are used unless given here)")
    p.add_argument("--state-dict", required=True, metavar="IN.pt",
                   help="torch.save'd state_dict (or a module, or a dict with 'state_dict')")
    p.add_argument("--out", required=True, metavar="M.dann")
    p.add_argument("--input-scale", type=float, default=None,
                   help="uint8 input is pixel * scale - mean[c] (default 1/255)")
    p.add_argument("--input-mean", default=None, metavar="M0,M1,M2",
                   help="per-channel mean, or one value for every channel (default 0)")
    p.add_argument("--domain-batchnorm", action="store_true",
                   help="the net's batch norm keeps per-domain statistics (the state_dict then "
                   "needs running_mean_target / running_var_target too)")
    p.add_argument("--replay", metavar="R.npz", help="a replay set as written by 'import --replay'")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="dann file -> PyTorch state_dict + architecture JSON",
                       description="Read a dann model file (format 2 or 1); write its parameters as "
                       "a state_dict (torch.save) and its architecture and input normalisation as "
                       "JSON beside it (OUT.json). Load with: net = DannNet(arch_from_json(...)); "
                       "net.load_dann_state_dict(torch.load(OUT.pt)).")
    p.add_argument("--model", required=True, metavar="M.dann")
    p.add_argument("--out", required=True, metavar="OUT.pt")
    p.add_argument("--replay", metavar="R.npz", help="also save the file's replay set")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("predict", help="run a dann file in PyTorch",
                       description="Class and domain probabilities of IDX samples (uint8 images "
                       "(N, H, W[, C]) or float32 features (N, F)), as dann_predict computes them.")
    p.add_argument("--model", required=True, metavar="M.dann")
    p.add_argument("--images", required=True, metavar="F.idx", help="IDX file, optionally gzipped")
    p.add_argument("--labels", metavar="L.idx", help="uint8 labels: print the accuracy")
    p.add_argument("--domain", choices=("target", "source"), default="target",
                   help="batch-norm statistics with per-domain batch norm (default target)")
    p.add_argument("--limit", type=int, default=0, help="first N samples only")
    p.add_argument("--probs", metavar="P.idx", help="write class probabilities (float32 N x K)")
    p.add_argument("--domain-probs", metavar="D.idx", help="write P(target) (float32 N)")
    p.add_argument("--quiet", action="store_true", help="no per-sample lines")
    p.set_defaults(func=cmd_predict)

    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (DannFormatError, ValueError, OSError) as e:
        print("dann_torch.py %s: %s" % (args.command, e), file=sys.stderr)
        return 1


def arch_json(doc):
    """JSON text of an architecture dict (plus any extra keys), one layer per line."""
    out = []
    for key, value in doc.items():
        if key in STACKS:
            rows = ",\n".join("  " + json.dumps(d) for d in value)
            out.append(' "%s": [\n%s\n ]' % (key, rows) if value else ' "%s": []' % key)
        else:
            out.append(" %s: %s" % (json.dumps(key), json.dumps(value)))
    return "{\n" + ",\n".join(out) + "\n}\n"


def arch_from_json(path):
    """The architecture of an 'import' JSON (extra keys ignored)."""
    with open(path) as fh:
        doc = json.load(fh)
    return make_arch(doc["input"], doc["features"], doc["label_head"], doc["domain_head"],
                     doc.get("domain_batchnorm", 0))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    sys.exit(main())
