#!/usr/bin/env bash
# The demo's source epoch, graft against the same loop in PyTorch
# (demo_source_torch.py), run alternately REPEATS times each on THREADS
# threads; prints each run's training img/s and the ratios. PyTorch runs on
# jemalloc when Debian's libjemalloc2 is installed (as compare_resnet.py's
# --torch-env does), so that the two allocators both keep freed memory.
#   benchmarks/compare_demo.sh [REPEATS=3] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
THREADS=${2:-2}
GRAFT=${GRAFT:-build/graft}
PY=${PYTHON:-/usr/bin/python3}
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
TORCH_ENV=()
[[ -e $JEMALLOC ]] && TORCH_ENV=(LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,retain:true)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
ratios=()
for ((i = 1; i <= REPEATS; i++)); do
  # One source epoch; the target stage is cut to one 50-image epoch.
  OMP_WAIT_POLICY=passive "$GRAFT" demo --out "$OUT/run$i" --threads "$THREADS" \
    --source-epochs 1 --k 10 --modes lr0 --epochs 1 > "$OUT/graft$i.log" 2>&1
  gs=$(tr '\r' '\n' < "$OUT/graft$i.log" | grep -m1 -E '^epoch 1/1  loss' |
       grep -oE '[0-9.]+ img/s' | cut -d' ' -f1)
  ts=$(env "${TORCH_ENV[@]}" "$PY" benchmarks/demo_source_torch.py --epochs 1 --threads "$THREADS" |
       grep -oE 'epoch 1: .* ([0-9.]+) img/s' | grep -oE '[0-9.]+ img/s' | cut -d' ' -f1)
  r=$(awk "BEGIN{printf \"%.2f\", $gs/$ts}")
  echo "run $i: graft $gs img/s, torch $ts img/s, ratio $r"
  ratios+=("$r")
done
mapfile -t sorted < <(printf '%s\n' "${ratios[@]}" | sort -n)
echo "median ratio ${sorted[(REPEATS - 1) / 2]} (all: ${sorted[*]})"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
