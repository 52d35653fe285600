// Core throughput: 2048x2048 float32 matmul through graft and through plain
// Eigen (same binary, same threads), a broadcasting add, and a large add
// (memory bandwidth).
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include "core/ops.h"
#include "core/parallel.h"

namespace {

constexpr int64_t kN = 2048;

void set_flops(benchmark::State& state, int64_t n) {
  // 2n^3 flops per product, reported per second of real time
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(2 * n * n * n) / 1e9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GraftMatmul(benchmark::State& state) {
  const int64_t n = state.range(0);
  graft::Generator gen(0);
  graft::Tensor a = graft::randn({n, n}, {}, &gen), b = graft::randn({n, n}, {}, &gen);
  for (auto _ : state) {
    graft::Tensor c = graft::matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(state, n);
}

void BM_GraftMatmulTransposed(benchmark::State& state) {
  const int64_t n = state.range(0);
  graft::Generator gen(0);
  graft::Tensor a = graft::randn({n, n}, {}, &gen), b = graft::randn({n, n}, {}, &gen);
  for (auto _ : state) {
    graft::Tensor c = graft::matmul(a, b.t());  // strided, no copy
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(state, n);
}

void BM_EigenMatmul(benchmark::State& state) {
  const int64_t n = state.range(0);
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n);
  Eigen::MatrixXf c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, n);
}

// [N, 512] + [512]: the bias-add pattern. Bytes = read a + write out (+ the
// small broadcast row, negligible).
void BM_GraftAddBroadcast(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = 512;
  graft::Generator gen(0);
  graft::Tensor a = graft::randn({rows, cols}, {}, &gen), b = graft::randn({cols}, {}, &gen);
  for (auto _ : state) {
    graft::Tensor c = graft::add(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 2 * 4);
}

// a + b on two 32 Mi-float tensors (128 MiB each, far beyond any cache): the
// memory bandwidth graft's elementwise kernels reach, the roof of BatchNorm,
// ReLU and pooling (benchmarks/roofline.py). Bytes = read a, b + write out.
void BM_GraftAddLarge(benchmark::State& state) {
  const int64_t n = state.range(0);
  graft::Generator gen(0);
  graft::Tensor a = graft::randn({n}, {}, &gen), b = graft::randn({n}, {}, &gen);
  for (auto _ : state) {
    graft::Tensor c = graft::add(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  state.SetBytesProcessed(state.iterations() * n * 3 * 4);
}

}  // namespace

BENCHMARK(BM_GraftMatmul)->Arg(kN)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EigenMatmul)->Arg(kN)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GraftMatmulTransposed)->Arg(kN)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GraftAddBroadcast)->Arg(8192)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_GraftAddLarge)->Arg(int64_t{32} << 20)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifndef GRAFT_BENCH_KERNELS  // graft-bench-kernels links benchmark_main instead
BENCHMARK_MAIN();
#endif
