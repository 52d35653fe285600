// GPU benchmarks (Google Benchmark). Every benchmark synchronises the device
// inside the timed loop so the times are wall-clock kernel times, and reports
// bytes/s or FLOP/s. Without a GPU each benchmark is skipped with the reason.
// benchmarks/gpu_suite.sh runs them next to the PyTorch equivalents
// (benchmarks/bench_cuda_torch.py) on the same machine.
#include <benchmark/benchmark.h>

#include <string>

#include "core/autograd.h"
#include "core/cuda.h"
#include "core/ops.h"
#include "core/ops_nn.h"

namespace graft {
namespace {

bool skip_without_cuda(benchmark::State& state) {
  if (cuda_available()) return false;
  state.SkipWithError(device_unavailable_reason(DeviceType::CUDA).c_str());
  return true;
}

void sync() { cuda::synchronize(); }

Tensor cuda_randn(const Shape& s, DType t = DType::Float32) {
  return randn(s, opts(DType::Float32)).to(t).to(Device::cuda());
}

void BM_CudaAdd(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t n = state.range(0);
  const Tensor a = cuda_randn({n}), b = cuda_randn({n});
  for (auto _ : state) {
    Tensor c = add(a, b);
    sync();
  }
  state.SetBytesProcessed(state.iterations() * n * 4 * 3);
}
BENCHMARK(BM_CudaAdd)->Arg(1 << 20)->Arg(1 << 24)->UseRealTime();

void BM_CudaAddTransposed(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t n = state.range(0);
  const Tensor a = cuda_randn({n, n}).t(), b = cuda_randn({n, n});
  for (auto _ : state) {
    Tensor c = add(a, b);
    sync();
  }
  state.SetBytesProcessed(state.iterations() * n * n * 4 * 3);
}
BENCHMARK(BM_CudaAddTransposed)->Arg(4096)->UseRealTime();

void BM_CudaSumRows(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t rows = state.range(0), cols = state.range(1);
  const Tensor a = cuda_randn({rows, cols});
  for (auto _ : state) {
    Tensor s = sum(a, {1});
    sync();
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}
BENCHMARK(BM_CudaSumRows)
    ->Args({4096, 4096})
    ->Args({16, 1 << 20})
    ->Args({1 << 20, 16})
    ->UseRealTime();

// A full reduction (partials over up to 1024 blocks, then one block).
void BM_CudaSumAll(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const Tensor a = cuda_randn({state.range(0)});
  for (auto _ : state) {
    Tensor s = sum(a);
    sync();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
}
BENCHMARK(BM_CudaSumAll)->Arg(1 << 24)->UseRealTime();

// Softmax over a middle dim ([32, 1000, 196]: over the channels of a feature
// map), forward and backward.
void BM_CudaSoftmaxMiddleDim(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const Tensor x = cuda_randn({32, 1000, 196});
  x.set_requires_grad(true);
  for (auto _ : state) {
    Tensor y = F::softmax(x, 1);
    sum(mul(y, y)).backward();
    sync();
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4 * 2);
}
BENCHMARK(BM_CudaSoftmaxMiddleDim)->UseRealTime();

void BM_CudaMatmul(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t n = state.range(0);
  const Tensor a = cuda_randn({n, n}), b = cuda_randn({n, n});
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    sync();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CudaMatmul)->Arg(1024)->Arg(4096)->UseRealTime();

// ResNet18-like convolution layers, batch 32: forward and both backward passes.
void BM_CudaConv(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const int64_t C = state.range(0), HW = state.range(1), K = state.range(2),
                stride = state.range(3);
  const Tensor x = cuda_randn({32, C, HW, HW});
  const Tensor w = cuda_randn({C, C, K, K});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  F::Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = K / 2;
  for (auto _ : state) {
    Tensor y = F::conv2d(x, w, Tensor(), p);
    sum(y).backward();
    sync();
  }
  const double out_hw = static_cast<double>(HW / stride) * static_cast<double>(HW / stride);
  state.counters["FLOP/s"] = benchmark::Counter(
      3 * 2.0 * 32 * C * C * K * K * out_hw * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CudaConv)
    ->Args({64, 56, 3, 1})
    ->Args({128, 28, 3, 1})
    ->Args({256, 14, 3, 1})
    ->Args({512, 7, 3, 1})
    ->UseRealTime();

void BM_CudaBatchNormTrain(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const Tensor x = cuda_randn({32, 64, 56, 56});
  const Tensor w = ones({64}, opts(DType::Float32, Device::cuda()));
  const Tensor b = zeros({64}, opts(DType::Float32, Device::cuda()));
  Tensor rm = zeros({64}, opts(DType::Float32, Device::cuda()));
  Tensor rv = ones({64}, opts(DType::Float32, Device::cuda()));
  for (auto _ : state) {
    Tensor y = F::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5);
    sync();
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4 * 2);
}
BENCHMARK(BM_CudaBatchNormTrain)->UseRealTime();

void BM_CudaCrossEntropy(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const Tensor logits = cuda_randn({256, 1000});
  const Tensor target = randint(0, 1000, {256}).to(Device::cuda());
  logits.set_requires_grad(true);
  for (auto _ : state) {
    Tensor l = F::cross_entropy(logits, target);
    l.backward();
    sync();
  }
}
BENCHMARK(BM_CudaCrossEntropy)->UseRealTime();

void BM_CudaHostToDevice(benchmark::State& state) {
  if (skip_without_cuda(state)) return;
  const Tensor x = randn({state.range(0)});
  for (auto _ : state) {
    Tensor y = x.to(Device::cuda());
    sync();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 4);
}
BENCHMARK(BM_CudaHostToDevice)->Arg(1 << 24)->UseRealTime();

}  // namespace
}  // namespace graft

#ifndef GRAFT_BENCH_KERNELS  // graft-bench-kernels links benchmark_main instead
BENCHMARK_MAIN();
#endif
