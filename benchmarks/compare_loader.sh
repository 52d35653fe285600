#!/usr/bin/env bash
# graft's DataLoader vs torchvision's on the same JPEG folder, same transforms
# (RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor + Normalize), same
# worker count and batch size, in one run. Prints images/s and the ratio.
#
#   benchmarks/compare_loader.sh [workers] [build dir]
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-2}
BUILD=${2:-build}
DATA=benchmarks/data/jpegs
PY=${PYTHON:-python3}
# Debian's torch lives in the system python; prefer it when the default lacks it.
if ! $PY -c "import torchvision" 2>/dev/null && [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi

$PY benchmarks/gen_jpegs.py "$DATA" 400
[ -x "$BUILD/benchmarks/bench_loader" ] || ninja -C "$BUILD" benchmarks/bench_loader

graft_out=$("$BUILD/benchmarks/bench_loader" "$DATA" --workers "$WORKERS" --batch 32 --epochs 3)
echo "$graft_out"
graft_rate=$(echo "$graft_out" | sed -n 's/^graft loader: \([0-9.]*\) images\/s/\1/p')

torch_rate=$($PY - "$DATA" "$WORKERS" <<'PYEOF'
import sys, time
import torch
import torchvision.datasets as datasets
import torchvision.transforms as T
torch.set_num_threads(1)  # per-worker threads: match graft (one thread per worker)
root, workers = sys.argv[1], int(sys.argv[2])
tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = datasets.ImageFolder(root, tf)
dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers,
                                 persistent_workers=workers > 0)
for _ in dl:  # warm-up epoch (worker start, page cache)
    pass
t0 = time.perf_counter()
n = 0
for _ in range(3):
    for x, y in dl:
        n += x.shape[0]
print(f"{n / (time.perf_counter() - t0):.1f}")
PYEOF
)
echo "torchvision loader: $torch_rate images/s ($WORKERS workers, batch 32)"
awk -v g="$graft_rate" -v t="$torch_rate" 'BEGIN { printf "ratio graft/torchvision: %.2fx\n", g / t }'
