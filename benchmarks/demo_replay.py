#!/usr/bin/env python3
"""Replays in PyTorch a fine-tune that benchmarks/demo_record wrote.

Both engines then see the same initial weights (init.pth, with graft's new
head), the same K-shot subset and the same batches with the same flips, so
what is left to differ is arithmetic. Prints each engine's loss at a few
steps, the relative difference, and PyTorch's test accuracy next to graft's.

This training run is chaotic: perturbing PyTorch's inputs by one float32
rounding unit (--perturb 1.2e-7) moves its loss by ~5e-3 within 10 steps and
its final accuracy by several points, so single seeds are not comparable
between engines; means over seeds are (RESULTS.md, round 8).

  build/benchmarks/demo_record runs/demo/source.pth /tmp/rec0 0
  /usr/bin/python3 benchmarks/demo_replay.py /tmp/rec0 [--float64] [--perturb EPS]
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_reference import load  # noqa: E402  (the target test set, same preprocessing)


def batch_labels(x, subset_x, subset_y):
    """Labels of a recorded batch: each image is a subset image or its mirror."""
    flat = subset_x.reshape(len(subset_x), -1)
    mirrored = subset_x.flip(-1).reshape(len(subset_x), -1)
    labels = []
    for row in x.reshape(len(x), -1):
        hits = torch.cat([(flat == row).all(1).nonzero().flatten(),
                          (mirrored == row).all(1).nonzero().flatten()])
        found = set(int(subset_y[h]) for h in hits)
        assert len(found) == 1, f"a recorded image matches labels {found} in the subset"
        labels.append(found.pop())
    return torch.tensor(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("record", help="folder written by demo_record")
    ap.add_argument("--float64", action="store_true", help="replay in float64")
    ap.add_argument("--perturb", type=float, default=0.0, help="scale inputs by (1 + EPS)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.float64 else torch.float32
    rec = args.record
    subset_x = torch.from_numpy(np.load(os.path.join(rec, "subset_x.npy")))
    subset_y = torch.from_numpy(np.load(os.path.join(rec, "subset_y.npy")))
    graft_losses = [float(v) for v in open(os.path.join(rec, "graft_losses.txt"))]
    steps = sorted(glob.glob(os.path.join(rec, "step_*.npy")))
    assert len(steps) == len(graft_losses), (len(steps), len(graft_losses))

    model = torchvision.models.resnet18(num_classes=5)
    model.load_state_dict(torch.load(os.path.join(rec, "init.pth")))
    model = model.to(dtype).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for i, path in enumerate(steps):
        x = torch.from_numpy(np.load(path))
        y = batch_labels(x, subset_x, subset_y)
        opt.zero_grad()
        loss = F.cross_entropy(model(x.to(dtype) * (1 + args.perturb)), y)
        loss.backward()
        opt.step()
        if i < 3 or (i + 1) % 10 == 0:
            g = graft_losses[i]
            print(f"step {i + 1:3d}: torch loss {loss.item():.6f}  graft {g:.6f}  "
                  f"relative difference {abs(loss.item() - g) / abs(g):.1e}")
    test_x, test_y = load("test")

    def accuracy(m):
        m.eval()
        with torch.no_grad():
            return sum(int((m(test_x[s:s + 500].to(dtype)).argmax(1) == test_y[s:s + 500]).sum())
                       for s in range(0, len(test_x), 500)) / len(test_x)

    print(f"torch replay: {len(steps)} steps, test accuracy {accuracy(model):.4f}")
    # graft's own final weights, evaluated by PyTorch: checks graft's evaluation.
    final = torchvision.models.resnet18(num_classes=5)
    final.load_state_dict(torch.load(os.path.join(rec, "final.pth")))
    print(f"graft's final weights evaluated in PyTorch: test accuracy {accuracy(final.to(dtype)):.4f}")


if __name__ == "__main__":
    main()
