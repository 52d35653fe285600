"""ResNet images/s and peak RSS: graft (benchmarks/bench_resnet) against the
same loops in PyTorch, with the same thread count, in one command.

    python3 benchmarks/compare_resnet.py [--bench build/benchmarks/bench_resnet]
        [--threads N] [--min-time S] [--repeats R] [--cases all|CASE,...]
        [--json out.json] [--torch-env KEY=VALUE ...]

Cases (issue 15's targets): r18-224-train, r18-224-infer, r18-224-feat
(frozen backbone, BN frozen, only fc learns), r18-32-train (batch 128),
r50-224-train (batch 16). Every measurement runs in its own child process, so
its peak RSS (wait4's rusage) is its own; graft and torch alternate R times
per case (graft, torch, graft, torch, ...) so that a change of machine load
hits both sides alike, and the ratio printed is the median of the R paired
ratios with their min and max. The header records the CPU, its vector flags,
graft's build flags, the load average before and after, and the footer which
CPU GEMM graft ran (baseline or avx512: GRAFT_CPU_ISA chooses): a ratio taken on a
loaded machine is not a measurement. PyTorch gets torch.set_num_threads(N)
and runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, so its BLAS picks its
own kernels.

--torch-env sets variables for the PyTorch children only. graft keeps freed
large blocks for reuse (core/cpu_alloc.cpp); PyTorch's CPU allocator returns
them to glibc, which unmaps them, so every step faults its activations in
again. Where page faults are expensive (some VMs: ~7 us each) that alone can
halve PyTorch's rate. To compare compute with compute, give PyTorch a caching
allocator as well, e.g.
    --torch-env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
    --torch-env MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true
(Debian's libjemalloc2) and report both.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CASES = {
    # name: (arch, batch, size, mode)
    "r18-224-train": ("resnet18", 32, 224, "train"),
    "r18-224-infer": ("resnet18", 32, 224, "infer"),
    "r18-224-feat": ("resnet18", 32, 224, "feat"),
    "r18-32-train": ("resnet18", 128, 32, "train"),
    "r50-224-train": ("resnet50", 16, 224, "train"),
}
GRAFT_BENCH = {"train": "BM_TrainStep", "infer": "BM_Inference", "feat": "BM_FeatureExtractStep"}
GRAFT_CONTEXT = {}  # filled from bench_resnet's JSON context by graft_run


def run_child(cmd, env):
    """Runs cmd, returns (stdout, peak RSS in MiB) of that child alone."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{cmd[0]} failed with exit code {code}")
    return out, usage.ru_maxrss / 1024.0


def graft_run(bench, case, threads, min_time):
    arch, batch, size, mode = CASES[case]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GRAFT_BENCH_THREADS=str(threads),
               GRAFT_BENCH_ARCH=arch, GRAFT_BENCH_BATCH=str(batch), GRAFT_BENCH_SIZE=str(size))
    out, rss = run_child([bench, f"--benchmark_filter=^{GRAFT_BENCH[mode]}(/|$)",
                          "--benchmark_format=json", f"--benchmark_min_time={min_time}"], env)
    result = json.loads(out)
    GRAFT_CONTEXT["cpu_gemm"] = result["context"].get("graft_cpu_gemm", "?")
    return result["benchmarks"][0]["items_per_second"], rss


def torch_worker(case, threads, min_time):
    import torch
    import torchvision

    arch, batch, size, mode = CASES[case]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)()
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    if mode == "feat":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc."))
    params = [p for p in model.parameters() if p.requires_grad]

    def train_step():
        for p in params:
            p.grad = None
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=1e-3)
        loss.item()

    def infer():
        with torch.no_grad():
            model(x)

    model.train(mode == "train")
    step = infer if mode == "infer" else train_step
    step()  # warm-up (allocator, BLAS packing buffers)
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 2:
            break
    print(json.dumps({"items_per_second": n * batch / elapsed}))


def torch_run(case, threads, min_time, extra_env):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **extra_env)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out, rss = run_child([sys.executable, os.path.abspath(__file__), "--torch-worker", case,
                          "--threads", str(threads), "--min-time", str(min_time)], env)
    return json.loads(out.strip().splitlines()[-1])["items_per_second"], rss


def machine(bench):
    info = {"python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in lines if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in lines if l.startswith("flags"))
        info["vector"] = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags)
    except (OSError, StopIteration):
        pass
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(bench))), "CMakeCache.txt")
    if os.path.exists(cache):
        keep = ("CMAKE_BUILD_TYPE:", "GRAFT_MARCH:", "GRAFT_CPU_DISPATCH:", "GRAFT_CUDA:",
                "CMAKE_CXX_COMPILER:")
        with open(cache) as f:
            info["build"] = "; ".join(l.strip() for l in f if l.startswith(keep))
    import torch
    info["torch"] = torch.__version__
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/benchmarks/bench_resnet")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--min-time", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="all")
    ap.add_argument("--json")
    ap.add_argument("--torch-env", action="append", default=[], metavar="KEY=VALUE",
                    help="an environment variable for the PyTorch runs only (repeatable)")
    ap.add_argument("--torch-worker", choices=sorted(CASES))
    args = ap.parse_args()
    torch_env = {}
    for kv in args.torch_env:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            sys.exit(f"--torch-env takes KEY=VALUE, got '{kv}'")
        torch_env[key] = value
    if args.torch_worker:
        torch_worker(args.torch_worker, args.threads, args.min_time)
        return
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} not found: build it with ninja -C build benchmarks/bench_resnet")
    cases = sorted(CASES) if args.cases == "all" else args.cases.split(",")
    for c in cases:
        if c not in CASES:
            sys.exit(f"unknown case '{c}' (known: {', '.join(sorted(CASES))})")
    info = machine(args.bench)
    info["torch_env"] = " ".join(args.torch_env) or "(none)"
    info["load_before"] = os.getloadavg()
    for k, v in info.items():
        print(f"# {k}: {v}")
    print(f"# {args.threads} threads, {args.repeats} alternating runs per side, "
          f"min time {args.min_time} s per run")
    print(f"{'case':15}{'graft img/s':>12}{'torch img/s':>12}{'ratio':>7}{'min':>7}{'max':>7}"
          f"{'graft RSS':>11}{'torch RSS':>11}")
    results = []
    for c in cases:
        g, t, g_rss, t_rss = [], [], [], []
        for _ in range(args.repeats):
            ips, rss = graft_run(args.bench, c, args.threads, args.min_time)
            g.append(ips)
            g_rss.append(rss)
            ips, rss = torch_run(c, args.threads, args.min_time, torch_env)
            t.append(ips)
            t_rss.append(rss)
        ratios = [a / b for a, b in zip(g, t)]
        r = {"case": c, "graft": g, "torch": t, "ratio_median": statistics.median(ratios),
             "ratio_min": min(ratios), "ratio_max": max(ratios),
             "graft_rss_mib": max(g_rss), "torch_rss_mib": max(t_rss)}
        results.append(r)
        print(f"{c:15}{statistics.median(g):12.2f}{statistics.median(t):12.2f}"
              f"{r['ratio_median']:7.2f}{r['ratio_min']:7.2f}{r['ratio_max']:7.2f}"
              f"{r['graft_rss_mib']:9.0f}Mi{r['torch_rss_mib']:9.0f}Mi", flush=True)
    info["load_after"] = os.getloadavg()
    info["graft_cpu_gemm"] = GRAFT_CONTEXT.get("cpu_gemm", "?")
    print(f"# load_after: {info['load_after']}")
    print(f"# graft_cpu_gemm: {info['graft_cpu_gemm']} (GRAFT_CPU_ISA={os.environ.get('GRAFT_CPU_ISA', 'auto')})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
