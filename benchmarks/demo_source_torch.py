#!/usr/bin/env python3
"""The source stage of `graft demo` as a plain PyTorch loop, timed per epoch,
for issue 15's demo target (graft's source epoch against the same loop in
PyTorch). Same protocol as train/demo.cpp: Fashion-MNIST classes 0-4 (30,000
training images), pixels in [0,1] resized 28->32 (bilinear) and normalised
(0.286, 0.353) once, three channels; torchvision resnet18 with 5 classes;
SGD lr 0.01, momentum 0.9, weight decay 5e-4; batch 128, shuffled, random
horizontal flips. Prints the one-off preprocessing time and, per epoch, the
seconds and images/s of the training loop alone (as graft's progress line
does).

  /usr/bin/python3 benchmarks/demo_source_torch.py --epochs 1 --threads 2

benchmarks/compare_demo.sh runs it alternately with `graft demo`.
"""
import argparse
import time

import torch
import torch.nn.functional as F
import torchvision

from demo_reference import DATA, load  # the demo's preprocessing, shared with its target stage


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use the first N images (0: all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    x, y = load("train", classes=(0, 1, 2, 3, 4), root=a.data)
    print(f"torch {torch.__version__}, {a.threads} threads: preprocessed {len(x)} images "
          f"once in {time.perf_counter() - t0:.1f} s", flush=True)
    if a.limit > 0:
        x, y = x[:a.limit], y[:a.limit]
    model = torchvision.models.resnet18(num_classes=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(a.seed)
    model.train()
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), a.batch):
            b = order[s:s + a.batch]
            xb = x[b]
            flip = torch.rand(len(b), generator=gen) < 0.5
            xb[flip] = xb[flip].flip(-1)
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), y[b])
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        print(f"epoch {epoch + 1}: {dt:.1f} s, {len(x) / dt:.1f} img/s, last loss {loss.item():.4f}",
              flush=True)


if __name__ == "__main__":
    main()
