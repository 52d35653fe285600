"""PyTorch references for tests/test_dist.cpp, run at test time with /usr/bin/python3.

  dist_torch.py sampler N WORLD SEED EPOCH
      Prints, one line per rank, torch.utils.data.DistributedSampler's indices
      with shuffle=False, then one line per rank with shuffle=True, and last the
      permutation torch drew for shuffle=True (torch.randperm with seed + epoch).

  dist_torch.py init OUT.pth CLASSES
      A torchvision resnet18 (seed 0) with CLASSES outputs: the common start.

  dist_torch.py ddp X.npy Y.npy INIT.pth OUT.pth WORLD BATCH STEPS LR
      torch DistributedDataParallel on the gloo backend, WORLD processes on
      this machine, float64, SGD(lr, momentum 0.9), DistributedSampler without
      shuffling, BatchNorm per rank (torch's default, buffers broadcast from
      rank 0 at each forward); rank 0 saves the state_dict after STEPS steps.
"""
import sys

import torch
from torch.utils.data import DistributedSampler


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def sampler(n, world, seed, epoch):
    for shuffle in (False, True):
        for rank in range(world):
            s = DistributedSampler(Sized(n), num_replicas=world, rank=rank, shuffle=shuffle,
                                   seed=seed)
            s.set_epoch(epoch)
            print(" ".join(str(i) for i in s))
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    print(" ".join(str(i) for i in torch.randperm(n, generator=g).tolist()))


def init(out, classes):
    import torchvision
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=classes).state_dict(), out)


def ddp_worker(rank, world, args, store):
    import numpy as np
    import torchvision
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    x_path, y_path, init_path, out, batch, steps, lr = args
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    x = torch.from_numpy(np.load(x_path)).double()
    y = torch.from_numpy(np.load(y_path))
    sd = torch.load(init_path)
    model = torchvision.models.resnet18(num_classes=sd["fc.weight"].shape[0])
    model.load_state_dict(sd)
    model = model.double()
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=0.9)
    data = torch.utils.data.TensorDataset(x, y)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, sampler=sampler)
    done, epoch = 0, 0
    while done < steps:
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(ddp(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
        epoch += 1
    if rank == 0:
        torch.save(model.state_dict(), out)
    dist.barrier()
    dist.destroy_process_group()


def ddp(x_path, y_path, init_path, out, world, batch, steps, lr):
    import os
    import tempfile
    import torch.multiprocessing as mp
    store = os.path.join(tempfile.mkdtemp(), "store")
    mp.spawn(ddp_worker, args=(world, (x_path, y_path, init_path, out, batch, steps, lr), store),
             nprocs=world)


if __name__ == "__main__":
    if sys.argv[1] == "sampler":
        sampler(*(int(a) for a in sys.argv[2:6]))
    elif sys.argv[1] == "init":
        init(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "ddp":
        a = sys.argv[2:]
        ddp(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), int(a[6]), float(a[7]))
    else:
        sys.exit("unknown command " + sys.argv[1])
