#!/usr/bin/python3
"""Writes the PyTorch interop fixtures tests/fixtures/interop/*.

PyTorch -> dann: three networks are built and trained in PyTorch with
tools/torch/dann_torch.py (a few DANN steps, SGD with momentum, on synthetic
class-patterned images, so that the weights and batch-norm running statistics
are far from their initial values), exported with dann_torch.write_dann, and
run in eval mode on fixed uint8 inputs:
  torch_mnist.dann  DANN_PRESET_MNIST's architecture (3x28x28, 10 classes)
  torch_bn.dann     a small conv net with BatchNorm2d and BatchNorm1d, a padded
                    3x3/2 max-pool, a rectangular strided convolution, FLATTEN,
                    dropout and a sigmoid
  torch_dbn.dann    the same architecture with per-domain batch norm
                    (DomainBatchNorm), trained with source and target parts
dann -> PyTorch: the golden files tests/golden/v2_conv_dbn.dann (per-domain
batch norm, a grayscale uint8 replay set) and v2_mlp_replay_adam.dann (float
features, a float replay set, Adam state) are read with dann_torch.read_dann
and run in PyTorch on fixed inputs and on their own replay samples.

For every model, NAME.txt holds the inputs and PyTorch's class probabilities
and P(target) (sigmoid of the domain logit); tests/test_torch_interop.cpp loads
the model with dann_model_load, runs dann_predict and compares.

Usage: /usr/bin/python3 tests/torch/make_interop_fixtures.py [--out DIR]
Deterministic for a given torch / numpy build (single-threaded PyTorch).
"""
import argparse
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "torch"))
import dann_torch as dt  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "golden")


# ---------------------------------------------------------------------------
# Synthetic data: class k is a bright block in cell k of a grid; the source
# domain is gray on a dark background, the target domain coloured on a random
# colour background (an MNIST-M-like shift).
# ---------------------------------------------------------------------------
def synth(rng, labels, h, w, target, channels=3):
    n = len(labels)
    cells = int(np.ceil(np.sqrt(labels.max() + 1)))
    ch, cw = h // cells, w // cells
    img = np.empty((n, h, w, channels), np.uint8)
    for i, k in enumerate(labels):
        if target:
            bg = rng.integers(0, 256, size=channels)
            noise = rng.integers(0, 40, size=(h, w, channels))
            x = np.clip(bg + noise, 0, 255)
        else:
            x = np.repeat(rng.integers(0, 60, size=(h, w, 1)), channels, axis=2)
        r, c = divmod(int(k), cells)
        block = rng.integers(190, 256, size=(ch, cw, 1))
        if target:
            x[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = np.abs(
                255 - x[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] - block // 4)
        else:
            x[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = block
        img[i] = x
    return img


def train(net, arch, rng, steps, ns, nt, lr, lam, seed):
    """DANN steps in PyTorch (PAPER.md's step: label loss on the source part,
    one BCE mean over all samples, GRL with lambda). Returns the input norm."""
    c, h, w = arch["input"]
    k = net.num_classes
    pool_labels = rng.integers(0, k, size=256)
    src = synth(rng, pool_labels, h, w, False, c)
    tgt = synth(rng, rng.integers(0, k, size=256), h, w, True, c)
    mean = np.concatenate([src, tgt]).reshape(-1, c).astype(np.float64).mean(0) / 255.0
    norm = dict(scale=float(np.float32(1.0) / np.float32(255.0)),
                mean=[dt.f32(m) for m in mean])
    torch.manual_seed(seed)
    opt = torch.optim.SGD([p for p in net.parameters()], lr=lr, momentum=0.9)
    net.train()
    net.grl_lambda = lam
    dom = torch.cat([torch.zeros(ns), torch.ones(nt)])
    for _ in range(steps):
        i = rng.integers(0, 256, size=ns)
        j = rng.integers(0, 256, size=nt)
        x = torch.cat([dt.normalise_u8(src[i], norm, c), dt.normalise_u8(tgt[j], norm, c)])
        logits, dlogit = net(x, n_source=ns)
        loss = F.cross_entropy(logits[:ns], torch.from_numpy(pool_labels[i])) + \
            F.binary_cross_entropy_with_logits(dlogit, dom)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return norm


# ---------------------------------------------------------------------------
# Fixture text
# ---------------------------------------------------------------------------
HEADER = """\
# dann PyTorch interop fixture, written by tests/torch/make_interop_fixtures.py (torch {torch}).
# Do not edit: regenerate (see tools/torch/README.md).
#
# Format: one record per line, whitespace-separated; '#' lines are comments.
#   model PATH            the model file, relative to tests/fixtures
#   model_bytes N | model_crc32 HEX   of that file (a stale fixture shows)
#   direction torch_to_dann | dann_to_torch
#   classes K | domain_batchnorm 0|1
#   case NAME FORMAT N C H W    FORMAT u8_hwc (N images H x W x C, bytes as hex)
#                               or f32_nchw (N samples C x H x W, floats)
#   x I DATA                    sample I of the case
#   labels L0 ..                (case "replay") the replay set's labels
#   probs DOMAIN I P0 .. PK-1   PyTorch's class probabilities for sample I
#   domain_prob DOMAIN I P      PyTorch's P(target) = sigmoid(domain logit)
#   DOMAIN: the running statistics per-domain batch norm used (target is
#   dann_predict's default); models without it store target only.
#   The model normalises uint8 input itself (its NORM section); C = 1 images
#   are replicated to the model's channels.
"""


def fmt(v):
    return "%.9g" % v


def write_fixture(path, model_rel, model_path, direction, arch, cases):
    data = open(model_path, "rb").read()
    info = dt.analyse(arch)
    lines = [HEADER.format(torch=torch.__version__).rstrip("\n"), "",
             "model %s" % model_rel,
             "model_bytes %d" % len(data),
             "model_crc32 %08x" % zlib.crc32(data),
             "direction %s" % direction,
             "classes %d" % info["num_classes"],
             "domain_batchnorm %d" % arch["domain_batchnorm"]]
    for case in cases:
        x = case["x"]
        if case["format"] == "u8_hwc":
            n, h, w, c = x.shape
            lines.append("case %s u8_hwc %d %d %d %d" % (case["name"], n, c, h, w))
            for i in range(n):
                lines.append("x %d %s" % (i, x[i].tobytes().hex()))
        else:
            n, c, h, w = x.shape
            lines.append("case %s f32_nchw %d %d %d %d" % (case["name"], n, c, h, w))
            for i in range(n):
                lines.append("x %d %s" % (i, " ".join(fmt(v) for v in x[i].reshape(-1))))
        if "labels" in case:
            lines.append("labels %s" % " ".join(str(int(v)) for v in case["labels"]))
        for domain, (probs, dprobs) in case["out"].items():
            for i in range(n):
                lines.append("probs %s %d %s" % (domain, i, " ".join(fmt(v) for v in probs[i])))
            for i in range(n):
                lines.append("domain_prob %s %d %s" % (domain, i, fmt(dprobs[i])))
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def run_cases(net, norm, arch, inputs):
    """inputs: [(name, format, array[, labels])] -> cases with PyTorch's outputs."""
    domains = ["target", "source"] if arch["domain_batchnorm"] else ["target"]
    cases = []
    for item in inputs:
        name, form, x = item[:3]
        case = dict(name=name, format=form, x=x, out={})
        if len(item) > 3:
            case["labels"] = item[3]
        for d in domains:
            case["out"][d] = dt.predict(net, norm, x, domain=d)
        cases.append(case)
    return cases


def check_round_trip(path, net, arch, norm, replay=None):
    """read_dann gives back what was written, and re-encodes byte for byte."""
    arch2, net2, norm2, replay2 = dt.read_dann(path)
    assert arch2 == {k: arch[k] for k in arch2}, (arch2, arch)
    assert norm2["scale"] == dt.f32(norm["scale"]) and norm2["mean"] == [dt.f32(m) for m in norm["mean"]]
    for (n1, t1, _), (n2, t2, _) in zip(net.dann_tensors(), net2.dann_tensors()):
        assert n1 == n2 and torch.equal(t1, t2), n1
    assert dt.encode_dann(net2, arch2, norm2["scale"], norm2["mean"], replay2) == open(path, "rb").read()
    assert (replay is None) == (replay2 is None)


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------
def small_arch(domain_bn):
    return dt.make_arch(
        (3, 12, 12),
        [dt.conv2d(8, 3, 1, 1), dt.batchnorm(), dt.relu(), dt.maxpool2d(3, 2, 1),
         dt.layer("conv2d", units=8, kernel_h=3, kernel_w=2, stride_h=1, stride_w=2, pad_h=1,
                  pad_w=0),
         dt.batchnorm(), dt.relu(), dt.flatten()],
        [dt.dense(16), dt.batchnorm(), dt.relu(), dt.dropout(0.25), dt.dense(5)],
        [dt.dense(8), dt.sigmoid(), dt.dense(1)],
        domain_batchnorm=domain_bn)


TORCH_NETS = [
    # name, architecture, seed, steps, ns, nt, lr, lambda
    ("torch_mnist", lambda: dt.preset("mnist"), 101, 100, 32, 32, 0.01, 0.1),
    ("torch_bn", lambda: small_arch(False), 202, 40, 16, 16, 0.05, 0.3),
    ("torch_dbn", lambda: small_arch(True), 303, 40, 12, 20, 0.05, 0.3),
]


def torch_to_dann(out_dir):
    written = []
    for name, make, seed, steps, ns, nt, lr, lam in TORCH_NETS:
        arch = make()
        torch.manual_seed(seed)
        net = dt.DannNet(arch)
        rng = np.random.default_rng(seed)
        init = net.dann_state_dict()
        norm = train(net, arch, rng, steps, ns, nt, lr, lam, seed)
        moved = max((t - init[n]).abs().max().item() for n, t, _ in net.dann_tensors())
        path = os.path.join(out_dir, name + ".dann")
        dt.write_dann(path, net, arch, norm["scale"], norm["mean"])
        check_round_trip(path, net, arch, norm)

        c, h, w = arch["input"]
        k = net.num_classes
        labels = np.arange(8) % k
        x = np.concatenate([synth(rng, labels[:4], h, w, False, c),
                            synth(rng, labels[4:], h, w, True, c)])
        # Between the domains, so that P(target) is not saturated; then plain noise.
        x[6] = ((x[1].astype(np.int32) * 3 + x[6]) // 4).astype(np.uint8)
        x[7] = rng.integers(0, 256, size=x[7].shape)
        gray = synth(rng, np.arange(3) % k, h, w, False, 1)
        cases = run_cases(net, norm, arch, [("images", "u8_hwc", x), ("gray", "u8_hwc", gray)])
        txt = os.path.join(out_dir, name + ".txt")
        write_fixture(txt, "interop/%s.dann" % name, path, "torch_to_dann", arch, cases)
        probs, dprobs = cases[0]["out"]["target"]
        print("%-12s trained %d steps (largest change from init %.3f)\n  max prob per image %s\n"
              "  P(target) %s" % (name, steps, moved, " ".join("%.3f" % p for p in probs.max(1)),
                                  " ".join("%.3f" % p for p in dprobs)))
        written += [path, txt]
    return written


def dann_to_torch(out_dir):
    written = []
    rng = np.random.default_rng(404)
    for name, golden in (("golden_conv_dbn", "v2_conv_dbn.dann"),
                         ("golden_mlp", "v2_mlp_replay_adam.dann")):
        path = os.path.join(GOLDEN, golden)
        arch, net, norm, replay = dt.read_dann(path)
        data = open(path, "rb").read()
        if golden == "v2_conv_dbn.dann":
            # No optimizer state: write_dann must reproduce dann's bytes.
            assert dt.encode_dann(net, arch, norm["scale"], norm["mean"], replay) == data
        c, h, w = arch["input"]
        if h == 1 and w == 1:
            x = rng.uniform(-2.0, 2.0, size=(8, c, 1, 1)).astype(np.float32)
            x = np.array([[[[dt.f32(v)]] for v in s.reshape(-1)] for s in x], np.float32)
            inputs = [("samples", "f32_nchw", x)]
        else:
            inputs = [("images", "u8_hwc", rng.integers(0, 256, size=(8, h, w, c)).astype(np.uint8))]
        form = "u8_hwc" if replay["format"] == "u8_hwc" else "f32_nchw"
        inputs.append(("replay", form, replay["samples"], replay["labels"]))
        cases = run_cases(net, norm, arch, inputs)
        txt = os.path.join(out_dir, name + ".txt")
        write_fixture(txt, "../golden/" + golden, path, "dann_to_torch", arch, cases)
        print("%-16s read %s (%d bytes), %d replay samples" % (name, golden, len(data),
                                                               len(replay["labels"])))
        written.append(txt)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "interop"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    written = torch_to_dann(args.out) + dann_to_torch(args.out)
    total = 0
    for p in written:
        size = os.path.getsize(p)
        total += size
        print("%-50s %8d bytes" % (os.path.relpath(p, ROOT), size))
    print("total %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
