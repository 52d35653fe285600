"""Times torch.load on the benchmark checkpoint (companion of bench_io.cpp).
usage: python3 benchmarks/bench_io_torch.py [file]   (default: resnet50 fixture)"""
import os
import sys
import time

import torch

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "tests", "fixtures", "data", "io_resnet50.pth")
torch.set_num_threads(1)
for name, kw in (("torch.load", {}), ("torch.load(weights_only=True)", {"weights_only": True})):
    torch.load(path, **kw)  # warm the page cache
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sd = torch.load(path, **kw)
        times.append(time.perf_counter() - t0)
    print("%-32s median %.1f ms (min %.1f ms)" % (name, sorted(times)[2] * 1e3, min(times) * 1e3))
