#!/bin/sh
# `graft demo`'s feature-extract mode with and without --cache-features,
# alternated (the machine may be shared), at the demo's default target
# protocol (K = 10 and 30, 30 epochs at batch 32, curve points every 5 epochs
# on 1,000 test images, final test on 5,000). Prints the load average before
# each run, the per-K seconds and test accuracy from results.csv.
#
#   benchmarks/demo_feature_cache.sh GRAFT SOURCE.pth [REPEATS] [THREADS]
#     SOURCE.pth: a source model (`graft demo` writes one to OUT/source.pth)
set -eu
graft=${1:?usage: demo_feature_cache.sh GRAFT SOURCE.pth [REPEATS] [THREADS]}
source=${2:?usage: demo_feature_cache.sh GRAFT SOURCE.pth [REPEATS] [THREADS]}
repeats=${3:-2}
threads=${4:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
i=1
while [ "$i" -le "$repeats" ]; do
  for cache in off on; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    OMP_NUM_THREADS=$threads "$graft" demo --out "$out/$cache" --source-weights "$source" \
      --modes feature-extract --k 10,30 --cache-features "$cache" --threads "$threads" \
      >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
    total=$(echo "$(date +%s.%N) - $start" | bc)
    # results.csv: k,mode,test_acc,seconds
    rows=$(tail -n +2 "$out/$cache/results.csv" | awk -F, '{printf " K=%s acc %s %.1f s;", $1, $3, $4}')
    echo "run $i cache=$cache load [$load]:$rows process ${total%.*} s"
  done
  i=$((i + 1))
done
