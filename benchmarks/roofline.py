"""Roofline of a ResNet training step on the CPU: each layer's measured time
(graft bench --profile) against the time its arithmetic and its memory traffic
need at the machine's measured peaks.

    python3 benchmarks/roofline.py [--graft build/graft]
        [--bench-core build/benchmarks/bench_core] [--arch resnet18]
        [--batch-size 32] [--image-size 224] [--steps 3] [--per-layer]
        [--json out.json]

Peaks, measured first in the same run on all cores (graft's default threads):
- arithmetic: graft's float32 matmul at 2048x2048 (bench_core BM_GraftMatmul,
  the same Eigen GEMM the convolutions call);
- memory: graft's add of two 128 MiB tensors (bench_core BM_GraftAddLarge).

Cost model per layer and image (float32, so 4 bytes an element):
- Conv2d: 2*C*k*k FLOPs per output element forward, less the taps that read
  only padding (they matter on small images); backward twice that
  (input and weight gradients), once for the stem conv (the images need no
  gradient). Convolutions that run Winograd (kernels/cpu/conv.cpp's rule,
  mirrored in winograd() below) need fewer multiplies: their bound uses
  FLOPs / 2.25 for F(2x2,3x3) and FLOPs / 4 for F(4x4,3x3) (forward and input
  gradient; the weight gradient runs F(2x2,3x3)). Bytes: input + output +
  weight, twice that backward.
- BatchNorm2d (training): forward reads x twice (statistics, normalise) and
  writes y: 3 passes; backward reads gy and x for the reductions, again to
  apply, and writes gx: 5 passes.
- ReLU: 2 passes forward, 3 backward, per call (a bottleneck block calls its
  ReLU module twice; the profile charges both to the module). The ReLU after
  a block's residual add is not a module call (nn/models/resnet.cpp): its
  backward is in "outside layers", its forward in no row.
- MaxPool2d / AdaptiveAvgPool2d: the input and output once each way.
- Linear: 2*in*out FLOPs forward, twice that backward.
A layer's bound is max(FLOPs / peak FLOP/s, bytes / peak bytes/s): what it
would take with no overhead and no fusion. The model's shapes are checked
against `graft inspect --graph`, so a topology mistake here stops the script.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

BLOCKS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}


def winograd(conv, batch, threads):
    """The Winograd tile graft's CPU convolution runs this conv's forward and
    input gradient with: 0 (im2col + GEMM), 2 or 4 (kernels/cpu/conv.cpp:
    winograd_tile; GRAFT_CONV_CPU picks the algorithm)."""
    algo = os.environ.get("GRAFT_CONV_CPU", "auto")
    fits = conv["k"] == 3 and conv["stride"] == 1
    if algo == "gemm" or not fits:
        return 0
    if algo in ("winograd", "winograd4"):
        return 2 if algo == "winograd" else 4
    return 2 if min(conv["h_in"], conv["h"]) >= 14 and batch >= threads else 0


def resnet_layers(arch, size, num_classes=1000):
    """torchvision's ResNet as a list of leaf layers with their shapes (per
    image): convs with C, O, k, stride and sizes; the rest with element counts."""
    if arch not in BLOCKS:
        sys.exit(f"roofline: no model of '{arch}' (have {', '.join(BLOCKS)})")
    kind, counts = BLOCKS[arch]
    layers = []

    def conv(name, c, o, k, stride, h_in):
        h = (h_in + 2 * (k // 2) - k) // stride + 1
        layers.append({"name": name, "type": "Conv2d", "c": c, "o": o, "k": k, "stride": stride,
                       "h_in": h_in, "h": h, "shape": (o, h, h)})
        return h

    def elementwise(name, typ, shape, shape_in=None):
        layers.append({"name": name, "type": typ, "shape": shape, "shape_in": shape_in or shape})

    h = conv("conv1", 3, 64, 7, 2, size)
    elementwise("bn1", "BatchNorm2d", (64, h, h))
    elementwise("relu", "ReLU", (64, h, h))
    h_pool = (h + 2 - 3) // 2 + 1
    elementwise("maxpool", "MaxPool2d", (64, h_pool, h_pool), shape_in=(64, h, h))
    h, c = h_pool, 64
    expansion = 1 if kind == "basic" else 4
    for stage, count in enumerate(counts):
        width = 64 << stage
        for b in range(count):
            p = f"layer{stage + 1}.{b}"
            stride = 2 if stage > 0 and b == 0 else 1
            h_in, c_in = h, c
            if kind == "basic":
                h = conv(f"{p}.conv1", c_in, width, 3, stride, h_in)
                elementwise(f"{p}.bn1", "BatchNorm2d", (width, h, h))
                elementwise(f"{p}.relu", "ReLU", (width, h, h))
                conv(f"{p}.conv2", width, width, 3, 1, h)
                elementwise(f"{p}.bn2", "BatchNorm2d", (width, h, h))
            else:
                conv(f"{p}.conv1", c_in, width, 1, 1, h_in)
                elementwise(f"{p}.bn1", "BatchNorm2d", (width, h_in, h_in))
                h = conv(f"{p}.conv2", width, width, 3, stride, h_in)
                elementwise(f"{p}.bn2", "BatchNorm2d", (width, h, h))
                conv(f"{p}.conv3", width, width * 4, 1, 1, h)
                elementwise(f"{p}.bn3", "BatchNorm2d", (width * 4, h, h))
                # the module runs after bn1 (h_in) and after bn2 (h)
                elementwise(f"{p}.relu", "ReLU", (width, h_in, h_in))
                layers[-1]["extra_elems"] = width * h * h
            c = width * expansion
            if stride != 1 or c_in != c:
                conv(f"{p}.downsample.0", c_in, c, 1, stride, h_in)
                elementwise(f"{p}.downsample.1", "BatchNorm2d", (c, h, h))
    elementwise("avgpool", "AdaptiveAvgPool2d", (c, 1, 1), shape_in=(c, h, h))
    layers.append({"name": "fc", "type": "Linear", "in": c, "out": num_classes,
                   "shape": (num_classes,)})
    return layers


def prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def live_taps(conv):
    """(output position, kernel tap) pairs along one axis whose input is not
    padding: the multiplies a convolution needs (a 3x3 conv on a 1x1 image
    needs one tap of nine)."""
    k, s, h_in = conv["k"], conv["stride"], conv["h_in"]
    pad = k // 2
    return sum(1 for o in range(conv["h"]) for i in range(k) if 0 <= o * s - pad + i < h_in)


def costs(layer, batch, threads):
    """(fwd FLOPs, bwd FLOPs, fwd bytes, bwd bytes, Winograd tile) for the batch."""
    t = layer["type"]
    if t == "Conv2d":
        out = layer["o"] * layer["h"] ** 2
        inp = layer["c"] * layer["h_in"] ** 2
        flops = 2.0 * layer["o"] * layer["c"] * live_taps(layer) ** 2 * batch
        weight = layer["o"] * layer["c"] * layer["k"] ** 2
        fwd_bytes = 4.0 * ((inp + out) * batch + weight)
        bwd = 1 if layer["name"] == "conv1" else 2
        return flops, bwd * flops, fwd_bytes, 2 * fwd_bytes, winograd(layer, batch, threads)
    if t == "Linear":
        flops = 2.0 * layer["in"] * layer["out"] * batch
        fwd_bytes = 4.0 * ((layer["in"] + layer["out"]) * batch + layer["in"] * layer["out"])
        return flops, 2 * flops, fwd_bytes, 2 * fwd_bytes, 0
    n = prod(layer["shape"]) * batch
    n_in = prod(layer["shape_in"]) * batch
    if t == "BatchNorm2d":
        return 0.0, 0.0, 4.0 * 3 * n, 4.0 * 5 * n, 0
    if t == "ReLU":
        n += layer.get("extra_elems", 0) * batch
        return 0.0, 0.0, 4.0 * 2 * n, 4.0 * 3 * n, 0
    # pooling: input and output once each way
    return 0.0, 0.0, 4.0 * (n + n_in), 4.0 * (n + n_in), 0


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"roofline: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def measure_peaks(bench_core):
    out = run([bench_core, "--benchmark_filter=BM_GraftMatmul/|BM_GraftAddLarge",
               "--benchmark_format=json", "--benchmark_min_time=1"])
    flops = bw = None
    for b in json.loads(out)["benchmarks"]:
        if b["name"].startswith("BM_GraftMatmul/"):
            flops = b["GFLOP/s"] * 1e9
        elif b["name"].startswith("BM_GraftAddLarge"):
            bw = b["bytes_per_second"]
    if not flops or not bw:
        sys.exit("roofline: bench_core reported no BM_GraftMatmul or BM_GraftAddLarge")
    return flops, bw


def check_shapes(graft, arch, size, layers):
    """Every modelled layer's output shape must match graft's own model."""
    out = run([graft, "inspect", "--graph", "--arch", arch, "--image-size", str(size)])
    shapes = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+(\S+)\s+1x(\S+)\s", line)
        if m:
            shapes[m.group(1)] = tuple(int(v) for v in m.group(3).split("x"))
    for layer in layers:
        got = shapes.get(layer["name"])
        if got != tuple(layer["shape"]):
            sys.exit(f"roofline: model of {layer['name']} has shape {layer['shape']}, "
                     f"graft's {got}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graft", default="build/graft")
    ap.add_argument("--bench-core", default="build/benchmarks/bench_core")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--per-layer", action="store_true", help="a row per layer, not per stage")
    ap.add_argument("--json", help="write the rows and peaks here")
    a = ap.parse_args()
    threads = os.cpu_count()

    layers = resnet_layers(a.arch, a.image_size)
    check_shapes(a.graft, a.arch, a.image_size, layers)
    peak_flops, peak_bw = measure_peaks(a.bench_core)
    with tempfile.TemporaryDirectory() as tmp:
        prof_json = os.path.join(tmp, "profile.json")
        run([a.graft, "bench", "--what", "train", "--arch", a.arch, "--batch-size",
             str(a.batch_size), "--image-size", str(a.image_size), "--steps", str(a.steps),
             "--repeat", "1", "--threads", str(threads), "--profile", "--json", prof_json])
        with open(prof_json) as f:
            bench = json.load(f)
    measured = {l["layer"]: l for l in bench["profile"]["layers"]}
    unmodelled = set(measured) - {l["name"] for l in layers} - {"(outside layers)"}
    if unmodelled:
        sys.exit(f"roofline: profiled layers with no model: {', '.join(sorted(unmodelled))}")

    rows = []
    for layer in layers:
        ff, bf, fb, bb, wino = costs(layer, a.batch_size, threads)
        p = measured.get(layer["name"])
        if p is None:
            sys.exit(f"roofline: the profile has no layer {layer['name']}")
        # Useful FLOPs over the multiplies Winograd saves: forward and input
        # gradient by the tile's factor, the weight gradient by F(2x2)'s.
        div = {0: 1.0, 2: 2.25, 4: 4.0}[wino]
        bwd_work = bf / div if wino == 0 else bf / 2 / div + bf / 2 / 2.25
        bound = (max(ff / div / peak_flops, fb / peak_bw) +
                 max(bwd_work / peak_flops, bb / peak_bw)) * 1e3
        ms = p["forward_ms"] + p["backward_ms"]
        rows.append({"layer": layer["name"], "type": layer["type"], "ms": ms,
                     "bound_ms": bound, "gflop": (ff + bf) / 1e9, "gbytes": (fb + bb) / 1e9,
                     "winograd": wino > 0,
                     "limit": "flops" if (ff / div + bwd_work) / peak_flops > (fb + bb) / peak_bw
                     else "bytes"})
    outside = measured.get("(outside layers)", {}).get("backward_ms") or 0.0

    def stage(name):
        m = re.match(r"(layer\d)", name)
        return m.group(1) if m else ("head" if name in ("avgpool", "fc") else "stem")

    groups = {}
    for r in rows:
        key = r["layer"] if a.per_layer else (stage(r["layer"]), r["type"])
        g = groups.setdefault(key, {"ms": 0, "bound_ms": 0, "gflop": 0, "gbytes": 0, "wino": 0,
                                    "n": 0, "type": r["type"]})
        for k in ("ms", "bound_ms", "gflop", "gbytes"):
            g[k] += r[k]
        g["wino"] += r["winograd"]
        g["n"] += 1

    print(f"{a.arch} {a.image_size}x{a.image_size} batch {a.batch_size}, training step, "
          f"{threads} threads; load average {os.getloadavg()[0]:.2f}")
    print(f"peaks: GEMM {peak_flops / 1e9:.0f} GFLOP/s (2048^2 matmul), memory "
          f"{peak_bw / 1e9:.1f} GB/s (graft add, 128 MiB operands)")
    print(f"GRAFT_CONV_CPU={os.environ.get('GRAFT_CONV_CPU', 'auto')}\n")
    print(f"{'layers':<28} {'n':>3} {'wino':>4} {'GFLOP':>7} {'GB':>6} {'ms':>8} "
          f"{'bound ms':>9} {'x bound':>8} {'GFLOP/s':>8}")
    for key, g in groups.items():
        label = key if isinstance(key, str) else f"{key[0]} {key[1]}"
        rate = f"{g['gflop'] * 1e3 / g['ms']:.0f}" if g["gflop"] > 0.05 else ""
        print(f"{label:<28} {g['n']:>3} {g['wino']:>4} {g['gflop']:>7.1f} {g['gbytes']:>6.2f} "
              f"{g['ms']:>8.1f} {g['bound_ms']:>9.1f} {g['ms'] / g['bound_ms']:>8.2f} {rate:>8}")

    def total(pred):
        sel = [r for r in rows if pred(r)]
        return (sum(r["ms"] for r in sel), sum(r["bound_ms"] for r in sel),
                sum(r["gflop"] for r in sel))

    print()
    for label, pred in (("convolutions (GEMM)", lambda r: r["type"] == "Conv2d" and
                         not r["winograd"]),
                        ("convolutions (Winograd)", lambda r: r["winograd"]),
                        ("BN, ReLU, pooling", lambda r: r["type"] not in ("Conv2d", "Linear")),
                        ("all layers", lambda r: True)):
        ms, bound, gflop = total(pred)
        if ms == 0:
            continue
        line = f"{label:<24} {ms:8.1f} ms, bound {bound:7.1f} ms ({ms / bound:.2f}x)"
        if gflop > 0:
            rate = gflop * 1e12 / ms  # GFLOP per ms -> FLOP/s
            line += (f"; {gflop:6.1f} GFLOP direct, {rate / 1e9:4.0f} GFLOP/s direct-equivalent"
                     f" = {rate / peak_flops:.0%} of the GEMM peak")
        print(line)
    step_ms = bench["train"]["ms_per_step"]["median"]
    print(f"outside layers (residual adds, loss, backward bookkeeping): {outside:.1f} ms")
    print(f"unprofiled step: {step_ms:.1f} ms = {a.batch_size * 1e3 / step_ms:.1f} img/s; "
          f"the layers' bound alone allows {a.batch_size * 1e3 / total(lambda r: True)[1]:.1f} "
          f"img/s (optimizer step not counted)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"peak_flops": peak_flops, "peak_bytes_per_s": peak_bw, "rows": rows,
                       "outside_ms": outside, "step_ms": step_ms, "threads": threads,
                       "conv_cpu": os.environ.get("GRAFT_CONV_CPU", "auto"),
                       "load_average": os.getloadavg()[0]}, f, indent=1)


if __name__ == "__main__":
    main()
