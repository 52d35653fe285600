#!/usr/bin/env python3
"""Compares two graft builds, or two kernel settings of one build, side by side
in one run: `graft bench --json` for A and B in alternating order (A B, B A,
A B, ...), so that load on the machine hits both alike, then the median
ms/step of each and the ratio B/A (below 1: B is faster).

  # two builds
  benchmarks/compare_bench.py --a build-main/graft --b build/graft -- --image-size 32 --batch-size 64
  # two kernels of one build, chosen by environment variables
  benchmarks/compare_bench.py --a-env GRAFT_CPU_ISA=baseline --b-env GRAFT_CPU_ISA=avx512 -- --what train

Everything after `--` goes to `graft bench` on both sides. Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(graft, env_pairs, bench_args, path):
    env = dict(os.environ)
    for pair in env_pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    cmd = [graft, "bench", *bench_args, "--json", path]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.exit(f"compare_bench: {' '.join(cmd)} failed:\n{done.stdout}")
    with open(path) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", default="build/graft", help="graft binary A (default build/graft)")
    p.add_argument("--b", help="graft binary B (default: the same as A)")
    p.add_argument("--a-env", action="append", default=[], metavar="K=V", help="environment of A")
    p.add_argument("--b-env", action="append", default=[], metavar="K=V", help="environment of B")
    p.add_argument("--rounds", type=int, default=3, help="A/B pairs (default 3)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then graft bench flags")
    a = p.parse_args()
    bench_args = a.bench_args[1:] if a.bench_args[:1] == ["--"] else a.bench_args
    b_bin = a.b or a.a
    if a.rounds < 1:
        sys.exit("compare_bench: --rounds must be at least 1")

    times = {"A": {}, "B": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = [("A", a.a, a.a_env), ("B", b_bin, a.b_env)]
            for side, binary, env in order if r % 2 == 0 else reversed(order):
                result = run(binary, env, bench_args, os.path.join(tmp, f"{side}{r}.json"))
                for mode in ("train", "inference"):
                    if mode in result:
                        times[side].setdefault(mode, []).append(
                            result[mode]["ms_per_step"]["median"])
    print(f"A: {a.a} {' '.join(a.a_env)}")
    print(f"B: {b_bin} {' '.join(a.b_env)}")
    print(f"{'mode':<10} {'A ms/step':>12} {'B ms/step':>12} {'B/A':>7}   (median of {a.rounds} runs each)")
    for mode in ("train", "inference"):
        if mode not in times["A"]:
            continue
        ta, tb = statistics.median(times["A"][mode]), statistics.median(times["B"][mode])
        print(f"{mode:<10} {ta:12.2f} {tb:12.2f} {tb / ta:7.3f}")


if __name__ == "__main__":
    main()
