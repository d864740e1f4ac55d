#!/usr/bin/python3
"""dann against PyTorch on the paper's networks, same machine, same run.

--arch mnist (the default) runs every figure below on the MNIST network;
--arch svhn and --arch gtsrb run the timing figures (step, predict1,
predict256) on those networks, with fewer iterations per process.

Variants:
  dann        bench/dann_timer (the public C API)
  dann_fast   the same with bf16 training steps (DANN_PRECISION_BF16) and int8
              predictions (dann_context_quantize), where the CPU runs them
              natively (AVX512-BF16 or AMX; VNNI or AMX)
  torch       PyTorch as installed: nn.Linear through the system's libblas.so.3
  torch_conv  PyTorch with every fully connected layer written as a 1x1
              convolution, so that it runs on oneDNN as the convolutions do

Figures (each variant in its own fresh process, the variants alternating,
--rounds times):
  step        one DANN training step: 64 source + 64 target images, SGD
              momentum 0.9, lr 0.01, lambda 0.1 fixed; ms per step
  predict1    class probabilities of one image; ms per call (median, p99)
  predict256  class probabilities of 256 images; images per second
  rss         peak RSS of a process that loads a saved model and takes N DANN
              steps (64 + 64); dann also through its adapter API (one step per
              round plus the guard)
  first       time from spawning a process to its first prediction (load the
              model file, predict one image)

Run with Debian's interpreter, which has torch: /usr/bin/python3 bench/side_by_side.py
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VARIANTS = ["dann", "torch", "torch_conv"]
FAST_FLAGS = []  # dann_timer flags of the dann_fast variant (set from its caps)
BATCH_SRC, BATCH_TGT, LAMBDA, LR = 64, 64, 0.1, 0.01


# --------------------------------------------------------------------------
# Worker side: PyTorch, in a process of its own.
# --------------------------------------------------------------------------

def torch_net(fc_as_conv, arch="mnist"):
    import torch
    from torch import nn

    class Flat(nn.Module):
        def forward(self, x):
            return x.flatten(1)

    class Grl(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lam):
            ctx.lam = lam
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -ctx.lam * g, None

    def fc(i, o):
        return nn.Conv2d(i, o, 1) if fc_as_conv else nn.Linear(i, o)

    # The presets of dann (PAPER.md): layers, feature width.
    if arch == "svhn":
        features = [nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
                    nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1),
                    nn.Conv2d(64, 128, 5, padding=2), nn.ReLU()]
        width = 8192
        label = [fc(width, 3072), nn.ReLU(), nn.Dropout(0.5), fc(3072, 2048), nn.ReLU(),
                 nn.Dropout(0.5), fc(2048, 10)]
        domain = [fc(width, 1024), nn.ReLU(), nn.Dropout(0.5), fc(1024, 1024), nn.ReLU(),
                  nn.Dropout(0.5), fc(1024, 1)]
    elif arch == "gtsrb":
        features = [nn.Conv2d(3, 96, 5), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(96, 144, 3), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(144, 256, 5), nn.ReLU(), nn.MaxPool2d(2)]
        width = 1024
        label = [fc(width, 512), nn.ReLU(), fc(512, 43)]
        domain = [fc(width, 1024), nn.ReLU(), fc(1024, 1024), nn.ReLU(), fc(1024, 1)]
    else:
        features = [nn.Conv2d(3, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 48, 5), nn.ReLU(), nn.MaxPool2d(2)]
        width = 768
        label = [fc(width, 100), nn.ReLU(), fc(100, 100), nn.ReLU(), fc(100, 10)]
        domain = [fc(width, 100), nn.ReLU(), fc(100, 1)]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*features)
            self.label_head = nn.Sequential(*label, Flat())
            self.domain_head = nn.Sequential(*domain, Flat())

        def feats(self, x):
            f = self.features(x).flatten(1)
            return f.view(f.shape[0], width, 1, 1) if fc_as_conv else f

        def predict(self, x):
            return torch.softmax(self.label_head(self.feats(x)), dim=1)

        def step_loss(self, xs, xt, ys, dom, lam):
            f = self.feats(torch.cat([xs, xt]))
            logits = self.label_head(f[:xs.shape[0]])
            d = self.domain_head(Grl.apply(f, lam)).view(-1)
            return (nn.functional.cross_entropy(logits, ys)
                    + nn.functional.binary_cross_entropy_with_logits(d, dom))

    return Net()


INPUT = {"mnist": (3, 28, 28, 10), "svhn": (3, 32, 32, 10), "gtsrb": (3, 40, 40, 43)}


def load_torch(path, fc_as_conv):
    import torch
    net = torch_net(fc_as_conv)
    state = torch.load(path)
    if fc_as_conv:
        state = {k: (v.view(*v.shape, 1, 1) if v.dim() == 2 else v) for k, v in state.items()}
    net.load_state_dict(state)
    return net


def step_inputs(torch, arch="mnist"):
    c, h, w, classes = INPUT[arch]
    g = torch.Generator().manual_seed(12)
    xs = torch.rand(BATCH_SRC, c, h, w, generator=g) - 0.5
    xt = torch.rand(BATCH_TGT, c, h, w, generator=g) - 0.3
    ys = torch.arange(BATCH_SRC) % classes
    dom = torch.cat([torch.zeros(BATCH_SRC), torch.ones(BATCH_TGT)])
    return xs, xt, ys, dom


def blas_in_maps():
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    return sorted(libs)


def worker_time(a):
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    net = torch_net(a.variant == "torch_conv", a.arch)
    c, h, w, _ = INPUT[a.arch]
    images = torch.rand(256, c, h, w) - 0.5
    out = {"threads": a.threads, "step_ms": [], "predict1_ms": [], "predict256_ms": []}
    net.eval()
    with torch.inference_mode():
        for key, n, iters in (("predict1_ms", 1, a.predict1_iters),
                              ("predict256_ms", 256, a.predict256_iters)):
            x = images[:n].contiguous()
            for i in range(a.warmup + iters):
                t0 = time.perf_counter()
                net.predict(x)
                if i >= a.warmup:
                    out[key].append((time.perf_counter() - t0) * 1e3)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    xs, xt, ys, dom = step_inputs(torch, a.arch)
    for i in range(a.warmup + a.step_iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        net.step_loss(xs, xt, ys, dom, LAMBDA).backward()
        opt.step()
        if i >= a.warmup:
            out["step_ms"].append((time.perf_counter() - t0) * 1e3)
    out["blas_loaded"] = blas_in_maps()
    out["torch_threads"] = torch.get_num_threads()
    print(json.dumps(out), flush=True)


def worker_save(a):
    import torch
    torch.manual_seed(7)
    torch.save(torch_net(False).state_dict(), a.model)
    print(json.dumps({"saved": a.model}), flush=True)


def worker_adapt(a):
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    net = load_torch(a.model, a.variant == "torch_conv")
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
    xs, xt, ys, dom = step_inputs(torch)
    for _ in range(a.steps):
        opt.zero_grad(set_to_none=True)
        net.step_loss(xs, xt, ys, dom, LAMBDA).backward()
        opt.step()
    print(json.dumps({"steps": a.steps, "seconds": time.perf_counter() - t0}), flush=True)


def worker_first_predict(a):
    import torch
    torch.set_num_threads(a.threads)
    net = load_torch(a.model, a.variant == "torch_conv")
    net.eval()
    with torch.inference_mode():
        p = net.predict(torch.rand(1, 3, 28, 28) - 0.5)
    print(json.dumps({"class": int(p.argmax())}), flush=True)


# --------------------------------------------------------------------------
# Parent side: no torch import here, so that it adds nothing to the machine.
# --------------------------------------------------------------------------

def env_for(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def worker_cmd(variant, mode, a, threads, extra=()):
    arch = ["--arch", a.arch] if mode == "time" else []
    if variant.startswith("dann"):
        flags = FAST_FLAGS if variant == "dann_fast" else []
        return [a.dann_timer, mode] + list(extra) + ["--threads", str(threads)] + flags + arch
    return [sys.executable, os.path.abspath(__file__), "--worker", mode, "--variant", variant,
            "--threads", str(threads)] + list(extra) + arch


PIN = None  # --pin: the CPU that 1-thread processes are bound to (taskset)


def pinned(cmd, threads):
    return ["taskset", "-c", PIN] + cmd if PIN is not None and threads == 1 else cmd


def run_json(cmd, threads):
    """Runs cmd; returns (its JSON line, its peak RSS in KiB, load before)."""
    cmd = pinned(cmd, threads)
    load = os.getloadavg()[0]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(threads))
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, err.decode()[-2000:]))
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss, load


def time_to_first(cmd, threads):
    cmd = pinned(cmd, threads)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(threads))
    t0 = time.perf_counter()
    line = p.stdout.readline()
    t1 = time.perf_counter()
    p.communicate()
    if p.returncode != 0 or not line:
        raise RuntimeError("%s failed" % " ".join(cmd))
    return (t1 - t0) * 1e3


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    model = sh("lscpu | sed -n 's/^Model name: *//p'")
    mhz = sh("awk -F: '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mhz": float(mhz) if mhz else None,
        "avx512": "avx512f" in sh("grep -m1 -o 'avx512f' /proc/cpuinfo"),
        "amx": "amx_tile" in sh("grep -m1 -o 'amx_tile' /proc/cpuinfo"),
        "kernel": platform.release(),
        "libblas_so_3": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"),
        "blas_alternative": sh("update-alternatives --display libblas.so.3-x86_64-linux-gnu "
                               "2>/dev/null | head -2").replace("\n", "; "),
        "blas_package": sh("dpkg -S \"$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)\" "
                           "2>/dev/null | cut -d: -f1"),
        "torch": sh("%s -c 'import torch; print(torch.__version__)'" % sys.executable),
    }


def fmt(v, unit=""):
    if v is None:
        return "-"
    if v >= 1000:
        return "%.0f%s" % (v, unit)
    if v >= 10:
        return "%.1f%s" % (v, unit)
    return "%.3f%s" % (v, unit)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=5, help="alternations of the variants (default 5)")
    ap.add_argument("--quick", action="store_true", help="2 rounds, few iterations: a smoke test")
    ap.add_argument("--adapt-steps", type=int, default=50, help="DANN steps of the RSS process")
    ap.add_argument("--dann-timer", default=None, help="path of dann_timer (default: build/"
                    "bench/dann_timer, then build-bench/bench/dann_timer)")
    ap.add_argument("--json", default="side_by_side.json", help="where to write the results")
    ap.add_argument("--skip", default="", help="comma-separated figures to skip: time,rss,first")
    ap.add_argument("--pin", default=None, metavar="CPU",
                    help="bind every 1-thread process (dann's and PyTorch's) to this CPU with "
                         "taskset, so that the scheduler's choice of core, on a machine whose "
                         "cores differ in speed, does not enter the figures")
    ap.add_argument("--arch", default="mnist", choices=sorted(INPUT),
                    help="the network (default mnist; svhn and gtsrb: timing figures only)")
    # Worker mode (internal).
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--step-iters", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--predict1-iters", type=int, default=300, help=argparse.SUPPRESS)
    ap.add_argument("--predict256-iters", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        a.threads = int(a.threads)
        {"time": worker_time, "save": worker_save, "adapt": worker_adapt,
         "first-predict": worker_first_predict}[a.worker](a)
        return

    if a.dann_timer is None:
        for c in ("build/bench/dann_timer", "build-bench/bench/dann_timer"):
            if os.path.exists(os.path.join(ROOT, c)):
                a.dann_timer = os.path.join(ROOT, c)
                break
    if not a.dann_timer or not os.path.exists(a.dann_timer):
        sys.exit("dann_timer not found: build it (cmake --build build --target dann_timer) "
                 "or pass --dann-timer")
    threads = [int(t) for t in a.threads.split(",") if t]
    skip = set(s for s in a.skip.split(",") if s)
    rounds = 2 if a.quick else a.rounds
    iters = (["--step-iters", "5", "--predict1-iters", "50", "--predict256-iters", "5"] if a.quick
             else ["--step-iters", "20", "--predict1-iters", "300", "--predict256-iters", "20"])
    if a.arch != "mnist":
        # 10-40x the MNIST network's work per image: fewer calls per process,
        # and the RSS and start-up figures stay the MNIST network's.
        skip |= {"rss", "first"}
        iters = (["--step-iters", "2", "--predict1-iters", "10", "--predict256-iters", "2",
                  "--warmup", "1"] if a.quick
                 else ["--step-iters", "6", "--predict1-iters", "60", "--predict256-iters", "4",
                       "--warmup", "2"])
    adapt_steps = 5 if a.quick else a.adapt_steps

    global VARIANTS, FAST_FLAGS, PIN
    PIN = a.pin
    caps, _, _ = run_json([a.dann_timer, "caps"], 1)
    FAST_FLAGS = (["--bf16"] if caps.get("bf16") else []) + (["--int8"] if caps.get("int8") else [])
    if FAST_FLAGS:
        VARIANTS = ["dann", "dann_fast", "torch", "torch_conv"]
    info = machine()
    info["dann_caps"] = caps
    info["load_start"] = os.getloadavg()
    print("machine: %s, %s cores, %s MHz; torch %s; libblas.so.3 -> %s (%s)" % (
        info["cpu"], info["cores"], info["mhz"], info["torch"], info["libblas_so_3"],
        info["blas_package"] or "?"), flush=True)
    print("load average at start: %.2f %.2f %.2f" % info["load_start"], flush=True)

    print("network: %s; 1-thread processes %s" % (
        a.arch, "bound to CPU %s" % PIN if PIN is not None else "not bound"), flush=True)
    results = {"machine": info, "arch": a.arch, "pin": PIN, "rounds": rounds, "threads": threads, "timing": {}, "rss_kib": {},
               "first_ms": {}, "loads": []}
    # Per-call samples per (figure, threads, variant): one list of medians per round,
    # and the pooled batch-1 samples for the p99.
    timing = {}
    if "time" not in skip:
        for r in range(rounds):
            for t in threads:
                order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
                for v in order:
                    out, _, load = run_json(worker_cmd(v, "time", a, t, iters), t)
                    results["loads"].append(load)
                    if "blas_loaded" in out:
                        info.setdefault("torch_blas_loaded", out["blas_loaded"])
                    d = timing.setdefault("%d/%s" % (t, v), {"step": [], "predict1": [],
                                                            "predict256": [], "predict1_all": []})
                    d["step"].append(statistics.median(out["step_ms"]))
                    d["predict1"].append(statistics.median(out["predict1_ms"]))
                    d["predict256"].append(statistics.median(out["predict256_ms"]))
                    d["predict1_all"].extend(out["predict1_ms"])
                    print("round %d threads %d %-10s step %7.2f ms  predict1 %6.3f ms  "
                          "predict256 %7.2f ms  (load %.2f)" % (
                              r + 1, t, v, d["step"][-1], d["predict1"][-1],
                              d["predict256"][-1], load), flush=True)
        for key, d in timing.items():
            results["timing"][key] = {
                "step_ms": statistics.median(d["step"]),
                "predict1_ms": statistics.median(d["predict1"]),
                "predict1_p99_ms": p99(d["predict1_all"]),
                "predict256_img_s": 256e3 / statistics.median(d["predict256"]),
                "rounds": {k: d[k] for k in ("step", "predict1", "predict256")},
            }

    tmp = tempfile.mkdtemp(prefix="dann_sbs_")
    dann_model = os.path.join(tmp, "mnist.dann")
    torch_model = os.path.join(tmp, "mnist.pt")
    if "rss" not in skip or "first" not in skip:
        run_json([a.dann_timer, "save", dann_model], 1)
        run_json([sys.executable, os.path.abspath(__file__), "--worker", "save", "--variant",
                  "torch", "--threads", "1", "--model", torch_model], 1)
    t_rss = min(threads)
    if "rss" not in skip:
        rss = {}
        for r in range(min(rounds, 3)):
            for v in ("dann", "dann_adapter", "torch", "torch_conv"):
                if v.startswith("dann"):
                    cmd = [a.dann_timer, "adapt", dann_model, str(adapt_steps), "--threads", str(t_rss)]
                    if v == "dann_adapter":
                        cmd.append("--adapter")
                else:
                    cmd = worker_cmd(v, "adapt", a, t_rss, ["--model", torch_model,
                                                            "--steps", str(adapt_steps)])
                _, kib, load = run_json(cmd, t_rss)
                results["loads"].append(load)
                rss.setdefault(v, []).append(kib)
                print("round %d rss %-12s %8.1f MiB (%d steps, load %.2f)" % (
                    r + 1, v, kib / 1024.0, adapt_steps, load), flush=True)
        results["rss_kib"] = {v: statistics.median(k) for v, k in rss.items()}
        results["rss_steps"] = adapt_steps
        results["rss_threads"] = t_rss
    if "first" not in skip:
        first = {}
        for r in range(rounds):
            for v in ("dann", "torch", "torch_conv"):
                if v == "dann":
                    cmd = [a.dann_timer, "first-predict", dann_model, "--threads", str(t_rss)]
                else:
                    cmd = worker_cmd(v, "first-predict", a, t_rss, ["--model", torch_model])
                ms = time_to_first(cmd, t_rss)
                first.setdefault(v, []).append(ms)
                print("round %d first prediction %-10s %8.1f ms" % (r + 1, v, ms), flush=True)
        results["first_ms"] = {v: statistics.median(x) for v, x in first.items()}
        results["first_threads"] = t_rss
    for f in (dann_model, torch_model):
        if os.path.exists(f):
            os.remove(f)
    os.rmdir(tmp)
    info["load_end"] = os.getloadavg()

    # The table: each figure, each variant, and dann against the better PyTorch.
    rows = []

    def row(name, t, vals, higher_better, unit):
        best_t = [vals.get("torch"), vals.get("torch_conv")]
        best_t = [x for x in best_t if x is not None]
        best = (max(best_t) if higher_better else min(best_t)) if best_t else None
        def advantage(d):
            ratio = d / best if (d is not None and best) else None
            if not ratio:
                return None, None
            return ratio, (ratio if higher_better else 1.0 / ratio)

        d = vals.get("dann")
        ratio, adv = advantage(d)
        dfast = vals.get("dann_fast")
        _, adv_fast = advantage(dfast)
        rows.append({"figure": name, "threads": t, "unit": unit, "dann": d,
                     "dann_fast": dfast, "torch": vals.get("torch"),
                     "torch_conv": vals.get("torch_conv"), "best_torch": best,
                     "dann_over_best_torch": ratio, "dann_advantage": adv,
                     "dann_fast_advantage": adv_fast})

    for t in threads:
        tm = {v: results["timing"].get("%d/%s" % (t, v)) for v in VARIANTS}
        if not any(tm.values()):
            continue
        pick = lambda k: {v: (x[k] if x else None) for v, x in tm.items()}
        row("train step 64+64", t, pick("step_ms"), False, "ms")
        row("predict batch 1, median", t, pick("predict1_ms"), False, "ms")
        row("predict batch 1, p99", t, pick("predict1_p99_ms"), False, "ms")
        row("predict batch 256", t, pick("predict256_img_s"), True, "img/s")
    if results["rss_kib"]:
        rk = results["rss_kib"]
        row("peak RSS, %d steps" % results["rss_steps"], results["rss_threads"],
            {v: rk[v] / 1024.0 for v in ("dann", "torch", "torch_conv")}, False, "MiB")
        row("peak RSS, %d adapter rounds" % results["rss_steps"], results["rss_threads"],
            {"dann": rk["dann_adapter"] / 1024.0, "torch": rk["torch"] / 1024.0,
             "torch_conv": rk["torch_conv"] / 1024.0}, False, "MiB")
    if results["first_ms"]:
        row("process start to 1st prediction", results["first_threads"], results["first_ms"], False, "ms")
    results["table"] = rows

    # Paired by round: each round's dann figure against the better PyTorch
    # figure of the same round (the variants of a round run back to back),
    # which cancels the drift of a shared machine between rounds.
    paired = []
    for t in threads:
        per = {v: timing.get("%d/%s" % (t, v)) for v in VARIANTS}
        if not per.get("dann") or not (per.get("torch") or per.get("torch_conv")):
            continue
        # All three are times per call, so the advantage is PyTorch's over dann's
        # (for batch 256 that is the ratio of throughputs).
        for fig, name in (("step", "train step 64+64"), ("predict1", "predict batch 1, median"),
                          ("predict256", "predict batch 256")):
            for v in ("dann", "dann_fast"):
                if not per.get(v):
                    continue
                adv = []
                for r in range(len(per[v][fig])):
                    ts = [per[k][fig][r] for k in ("torch", "torch_conv")
                          if per.get(k) and r < len(per[k][fig])]
                    if ts:
                        adv.append(min(ts) / per[v][fig][r])
                if adv:
                    paired.append({"figure": name, "threads": t, "variant": v,
                                   "median": statistics.median(adv), "min": min(adv),
                                   "max": max(adv), "rounds": adv})
    results["paired"] = paired
    loads = results["loads"]
    results["load_max_seen"] = max(loads) if loads else None

    print()
    fast = "dann %s" % "/".join(f.lstrip("-") for f in FAST_FLAGS) if FAST_FLAGS else "dann fast"
    print("| figure | thr | dann | %s | torch | torch_conv | dann / best torch | "
          "dann advantage | %s advantage |" % (fast, fast))
    print("|---|---|---|---|---|---|---|---|---|")
    for r_ in rows:
        u = " " + r_["unit"]
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            r_["figure"], r_["threads"], fmt(r_["dann"], u), fmt(r_["dann_fast"], u),
            fmt(r_["torch"], u), fmt(r_["torch_conv"], u),
            "-" if r_["dann_over_best_torch"] is None else "%.3f" % r_["dann_over_best_torch"],
            "-" if r_["dann_advantage"] is None else "%.2fx" % r_["dann_advantage"],
            "-" if r_["dann_fast_advantage"] is None else "%.2fx" % r_["dann_fast_advantage"]))
    print()
    print("dann advantage: how many times better dann is than the better PyTorch variant "
          "(> 1: dann wins). Load average at start %.2f, at end %.2f, highest seen before a "
          "measurement %.2f." % (info["load_start"][0], info["load_end"][0],
                                 results["load_max_seen"] or 0.0))
    if paired:
        print()
        print("Advantage paired by round (each round's dann time against the better PyTorch "
              "time of the same round): median [lowest, highest] over %d rounds" % rounds)
        print()
        print("| figure | thr | dann | %s |" % fast)
        print("|---|---|---|---|")
        keyed = {(p_["figure"], p_["threads"], p_["variant"]): p_ for p_ in paired}
        for (name, t) in dict.fromkeys((p_["figure"], p_["threads"]) for p_ in paired):
            cells = []
            for v in ("dann", "dann_fast"):
                p_ = keyed.get((name, t, v))
                cells.append("-" if not p_ else "%.2fx [%.2f, %.2f]" % (
                    p_["median"], p_["min"], p_["max"]))
            print("| %s | %d | %s | %s |" % (name, t, cells[0], cells[1]))
        print()
    print("PyTorch's BLAS: %s" % (info.get("torch_blas_loaded") or info["libblas_so_3"]))
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)
    print("results written to %s" % a.json)


if __name__ == "__main__":
    main()
