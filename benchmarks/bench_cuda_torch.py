"""PyTorch counterparts of benchmarks/bench_cuda.cpp, run by gpu_suite.sh on
the same GPU so the numbers are comparable. Prints one line per benchmark:
name, milliseconds per iteration (median of 5 timed runs after warm-up)."""
import statistics
import time

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")


def bench(name, fn, iters=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / iters * 1e3)
    print(f"torch {name:40s} {statistics.median(times):10.4f} ms")


def main():
    print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
          torch.backends.cudnn.version(), torch.cuda.get_device_name())
    for n in (1 << 20, 1 << 24):
        a, b = torch.randn(n, device=dev), torch.randn(n, device=dev)
        bench(f"add/{n}", lambda: a + b)
    a = torch.randn(4096, 4096, device=dev).t()
    b = torch.randn(4096, 4096, device=dev)
    bench("add_transposed/4096", lambda: a + b)
    for r, c in ((4096, 4096), (16, 1 << 20), (1 << 20, 16)):
        x = torch.randn(r, c, device=dev)
        bench(f"sum_rows/{r}/{c}", lambda: x.sum(1))
    x = torch.randn(1 << 24, device=dev)
    bench(f"sum_all/{1 << 24}", lambda: x.sum())
    xs = torch.randn(32, 1000, 196, device=dev, requires_grad=True)

    def softmax_mid():
        y = torch.softmax(xs, 1)
        (y * y).sum().backward()
    bench("softmax_middle_dim fwd+bwd", softmax_mid)
    for n in (1024, 4096):
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        bench(f"matmul/{n}", lambda: a @ b)
    for c, hw in ((64, 56), (128, 28), (256, 14), (512, 7)):
        x = torch.randn(32, c, hw, hw, device=dev, requires_grad=True)
        w = torch.randn(c, c, 3, 3, device=dev, requires_grad=True)
        bench(f"conv/{c}/{hw}/3/1 fwd+bwd",
              lambda: torch.nn.functional.conv2d(x, w, padding=1).sum().backward())
    x = torch.randn(32, 64, 56, 56, device=dev)
    w, b = torch.ones(64, device=dev), torch.zeros(64, device=dev)
    rm, rv = torch.zeros(64, device=dev), torch.ones(64, device=dev)
    bench("batch_norm_train", lambda: torch.nn.functional.batch_norm(x, rm, rv, w, b, True))
    logits = torch.randn(256, 1000, device=dev, requires_grad=True)
    target = torch.randint(0, 1000, (256,), device=dev)
    bench("cross_entropy fwd+bwd",
          lambda: torch.nn.functional.cross_entropy(logits, target).backward())
    h = torch.randn(1 << 24)
    bench("host_to_device/16M", lambda: h.to(dev))


if __name__ == "__main__":
    main()
