"""ResNet18 images/s and peak RSS: graft (benchmarks/bench_resnet) against the
same loop in PyTorch, with the same thread count, in one run.

    python3 benchmarks/compare_resnet.py [--bench build/benchmarks/bench_resnet]
                                         [--threads N] [--min-time S]
                                         [--image-size S] [--batch-size B]

Each measurement runs in its own child process, so its peak RSS (from
wait4's rusage) is its own. PyTorch gets torch.set_num_threads(N) and runs
without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, so its BLAS picks its own kernels.
"""
import argparse
import json
import os
import subprocess
import sys
import time



def run_child(cmd, env):
    """Runs cmd, returns (stdout, peak RSS in MiB) of that child alone."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return out, usage.ru_maxrss / 1024.0


def graft_run(bench, name, threads, min_time, batch, size):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GRAFT_BENCH_THREADS=str(threads),
               GRAFT_BENCH_BATCH=str(batch), GRAFT_BENCH_SIZE=str(size))
    out, rss = run_child([bench, f"--benchmark_filter=^{name}(/|$)", "--benchmark_format=json",
                          f"--benchmark_min_time={min_time}"], env)
    result = json.loads(out)["benchmarks"][0]
    return result["items_per_second"], rss


def torch_worker(mode, threads, min_time, batch, size):
    import torch
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    params = list(model.parameters())

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

    if mode == "train":
        model.train()
        step = train_step
    else:
        model.eval()
        step = infer
    step()  # warm-up (allocator, BLAS packing buffers)
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 2:
            break
    print(json.dumps({"items_per_second": n * batch / elapsed}))


def torch_run(mode, threads, min_time, batch, size):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out, rss = run_child([sys.executable, os.path.abspath(__file__), "--torch-worker", mode,
                          "--threads", str(threads), "--min-time", str(min_time),
                          "--batch-size", str(batch), "--image-size", str(size)], env)
    return json.loads(out.strip().splitlines()[-1])["items_per_second"], rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/benchmarks/bench_resnet")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--min-time", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--torch-worker", choices=["train", "infer"])
    args = ap.parse_args()
    if args.torch_worker:
        torch_worker(args.torch_worker, args.threads, args.min_time, args.batch_size,
                     args.image_size)
        return
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} not found: build it with ninja -C build benchmarks/bench_resnet")
    print(f"ResNet18, batch {args.batch_size}, {args.image_size}x{args.image_size}, float32, {args.threads} threads")
    print(f"{'':26}{'graft img/s':>12}{'torch img/s':>12}{'ratio':>8}{'graft RSS':>11}{'torch RSS':>11}")
    for label, name, mode in [("train step (fwd+bwd+SGD)", "BM_ResNet18TrainStep", "train"),
                              ("inference (eval, no_grad)", "BM_ResNet18Inference", "infer")]:
        g, g_rss = graft_run(args.bench, name, args.threads, args.min_time, args.batch_size,
                             args.image_size)
        t, t_rss = torch_run(mode, args.threads, args.min_time, args.batch_size,
                             args.image_size)
        print(f"{label:26}{g:12.2f}{t:12.2f}{g / t:8.2f}{g_rss:9.0f}Mi{t_rss:9.0f}Mi")


if __name__ == "__main__":
    main()
