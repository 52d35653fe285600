"""PyTorch references for tests/test_dist.cpp, run at test time with /usr/bin/python3.

  dist_torch.py sampler N WORLD SEED EPOCH
      Prints, one line per rank, torch.utils.data.DistributedSampler's indices
      with shuffle=False, then one line per rank with shuffle=True, and last the
      permutation torch drew for shuffle=True (torch.randperm with seed + epoch).
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


if __name__ == "__main__":
    if sys.argv[1] == "sampler":
        sampler(*(int(a) for a in sys.argv[2:6]))
    else:
        sys.exit("unknown command " + sys.argv[1])
