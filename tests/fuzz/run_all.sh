#!/usr/bin/env bash
# Fuzzes each target in turn (outside CI), then merges what it found into the
# committed minimised corpus. Needs a GRAFT_FUZZ=ON build (clang):
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DGRAFT_FUZZ=ON -DGRAFT_CUDA=OFF
#   cmake --build build-fuzz --target fuzz_zip fuzz_pickle fuzz_pth fuzz_safetensors fuzz_npy fuzz_idx fuzz_image
#   tests/fuzz/run_all.sh build-fuzz 600        # seconds per target
# Crashes land in $WORK/<target>/crash-* (add them to regressions/<target>/ once fixed);
# each target's libFuzzer log (executions, coverage) is $WORK/<target>.log.
set -euo pipefail
BUILD=${1:-build-fuzz}
SECONDS_PER_TARGET=${2:-600}
TARGETS=${TARGETS:-zip pickle pth safetensors npy idx image}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/graft_fuzz}
mkdir -p "$WORK"
for t in $TARGETS; do
  bin=$BUILD/tests/fuzz/fuzz_$t
  mkdir -p "$WORK/$t/new" "$WORK/$t/min"
  echo "fuzz_$t: ${SECONDS_PER_TARGET}s"
  # -rss_limit_mb / -timeout: an input that needs > 2 GB or > 10 s is a bug too.
  nice -n 19 "$bin" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$WORK/$t/" "$WORK/$t/new" "$HERE/corpus/$t" \
    >"$WORK/$t.log" 2>&1 || echo "fuzz_$t: stopped with a finding, see $WORK/$t.log"
  grep -E "stat::number_of_executed_units|cov:" "$WORK/$t.log" | tail -2
  # Minimise the committed corpus plus the new inputs into min/, then replace.
  rm -rf "$WORK/$t/min" && mkdir -p "$WORK/$t/min"
  nice -n 19 "$bin" -merge=1 "$WORK/$t/min" "$HERE/corpus/$t" "$WORK/$t/new" >"$WORK/$t.merge.log" 2>&1
  rm -rf "$HERE/corpus/$t" && cp -r "$WORK/$t/min" "$HERE/corpus/$t"
done
