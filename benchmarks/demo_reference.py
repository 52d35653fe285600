#!/usr/bin/env python3
"""The target stage of `graft demo` in PyTorch, over several seeds.

Starts from a source model that graft wrote (`graft demo` leaves
runs/demo/source.pth, a torchvision-named state_dict), so that both engines
fine-tune the very same weights, and reports each seed's target test accuracy
and their spread. `graft demo --source-weights SOURCE.pth --seed S --k K
--modes M` gives graft's side. The protocol is ../shared/DEMO-REFERENCE.md's:
Fashion-MNIST classes 5-9 relabelled 0-4, K training images per class, pixels
in [0,1] resized 28->32 (bilinear), normalised (0.286, 0.353), three channels;
a new Linear(512, 5) head; SGD lr 0.01, momentum 0.9, weight decay 5e-4;
random horizontal flips; batch 32, 30 epochs for K <= 30.

  /usr/bin/python3 benchmarks/demo_reference.py runs/demo/source.pth --k 10 --seeds 0-5
"""
import argparse
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

DATA = "/usr/share/datasets/fashion-mnist"


def load(split, classes=(5, 6, 7, 8, 9), root=DATA):
    """The demo's preprocessing of Fashion-MNIST `classes` (consecutive),
    relabelled 0..n-1: the target task by default, (0, ..., 4) the source."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    keep = np.isin(labels, classes)
    x = torch.from_numpy(images[keep].astype(np.float32) / 255.0)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = ((x - 0.286) / 0.353).repeat(1, 3, 1, 1)
    return x, torch.from_numpy(labels[keep].astype(np.int64) - classes[0])


def run(source, mode, k, seed, train, test, epochs, batch):
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(train[1] == c).flatten()[
        torch.randperm(int((train[1] == c).sum()), generator=gen)[:k]] for c in range(5)])
    x, y = train[0][idx], train[1][idx]
    torch.manual_seed(seed + 1000 + k)
    model = torchvision.models.resnet18(num_classes=5)
    sd = {n: t for n, t in source.items() if not n.startswith("fc.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected, (missing, unexpected)
    backbone = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    mult = {"finetune": 1.0, "lr0.1x": 0.1, "lr0": 0.0}[mode]
    opt = torch.optim.SGD([{"params": backbone, "lr": 0.01 * mult},
                           {"params": model.fc.parameters()}],
                          lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch):
            b = order[s:s + batch]
            xb = x[b].clone()
            flip = torch.rand(len(b), generator=gen) < 0.5
            xb[flip] = xb[flip].flip(-1)
            opt.zero_grad()
            F.cross_entropy(model(xb), y[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(test[0][s:s + 500]).argmax(1) == test[1][s:s + 500]).sum())
                      for s in range(0, len(test[0]), 500))
    return correct / len(test[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("source", help="source.pth written by graft demo")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mode", default="finetune", choices=["finetune", "lr0.1x", "lr0"])
    ap.add_argument("--seeds", default="0-5", help="A-B or a comma list")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if "-" in args.seeds:
        a, b = map(int, args.seeds.split("-"))
        seeds = list(range(a, b + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    source = torch.load(args.source, map_location="cpu")
    source = source.get("state_dict", source)  # graft's checkpoint, or a bare state_dict
    train, test = load("train"), load("test")
    epochs, batch = (30, 32) if args.k <= 30 else (15, 128)
    accs = []
    for seed in seeds:
        accs.append(run(source, args.mode, args.k, seed, train, test, epochs, batch))
        print(f"seed {seed}: {args.mode} K={args.k} target test accuracy {accs[-1]:.4f}", flush=True)
    a = np.array(accs)
    print(f"{args.mode} K={args.k}: mean {a.mean():.4f}, min {a.min():.4f}, max {a.max():.4f} "
          f"over {len(a)} seeds")


if __name__ == "__main__":
    main()
