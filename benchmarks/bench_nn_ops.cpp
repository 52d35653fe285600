// Conv2d forward / backward-input / backward-weight on the ResNet18 conv
// shapes (224x224 input), reporting GFLOP/s (2*MACs per second).
//   build/benchmarks/bench_nn_ops [--benchmark_filter=...]   (GRAFT_BENCH_BATCH, default 32)
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "core/kernels.h"
#include "core/ops_nn.h"
#include "core/parallel.h"

namespace {

using namespace graft;

// glibc serves allocations above its mmap threshold (128 KiB at start) with
// fresh mappings, and raises the threshold to the size of the largest mapped
// block freed so far. Eigen allocates its GEMM packing buffers per call, so
// until a large block has been freed every GEMM maps, page-faults and unmaps
// them: layer3_3x3 alone ran at 54 ms instead of 20. A training process frees
// large blocks in its first step; one 16 MiB block freed here does the same
// (32 MiB is glibc's cap for the adjustment).
[[maybe_unused]] const bool kMallocWarmed = [] {
  void* volatile block = std::malloc(size_t{16} << 20);  // volatile: not elided
  std::free(block);
  return true;
}();

struct ConvShape {
  const char* name;
  int64_t C, H, O, k, stride, pad;
};
// One entry per distinct conv of torchvision's resnet18.
const ConvShape kShapes[] = {
    {"conv1_7x7s2", 3, 224, 64, 7, 2, 3},      {"layer1_3x3", 64, 56, 64, 3, 1, 1},
    {"layer2_3x3s2", 64, 56, 128, 3, 2, 1},    {"layer2_3x3", 128, 28, 128, 3, 1, 1},
    {"layer2_ds1x1s2", 64, 56, 128, 1, 2, 0},  {"layer3_3x3s2", 128, 28, 256, 3, 2, 1},
    {"layer3_3x3", 256, 14, 256, 3, 1, 1},     {"layer3_ds1x1s2", 128, 28, 256, 1, 2, 0},
    {"layer4_3x3s2", 256, 14, 512, 3, 2, 1},   {"layer4_3x3", 512, 7, 512, 3, 1, 1},
    {"layer4_ds1x1s2", 256, 14, 512, 1, 2, 0},
};

int64_t batch() {
  const char* b = std::getenv("GRAFT_BENCH_BATCH");
  return b ? std::atoll(b) : 32;
}

enum Mode { kForward = 0, kBackwardInput = 1, kBackwardWeight = 2 };

void BM_Conv2d(benchmark::State& state) {
  const ConvShape& s = kShapes[state.range(0)];
  const auto mode = static_cast<Mode>(state.range(1));
  const int64_t N = batch();
  F::Conv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  Generator gen(1);
  Tensor x = randn({N, s.C, s.H, s.H}, {}, &gen);
  Tensor w = randn({s.O, s.C, s.k, s.k}, {}, &gen);
  Tensor out = F::conv2d(x, w, Tensor(), p);
  Tensor g = randn(out.sizes(), {}, &gen);
  Tensor gx = empty(x.sizes()), gw = empty(w.sizes());
  for (auto _ : state) {
    switch (mode) {
      case kForward:
        kernel::conv2d_forward(Device::cpu())(x, w, Tensor(), p, out);
        break;
      case kBackwardInput:
        kernel::conv2d_backward_input(Device::cpu())(g, w, p, gx);
        break;
      case kBackwardWeight:
        kernel::conv2d_backward_weight(Device::cpu())(g, x, p, gw);
        break;
    }
    benchmark::ClobberMemory();
  }
  const double flops =
      2.0 * static_cast<double>(out.numel()) * static_cast<double>(s.C * s.k * s.k);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = get_num_threads();
  state.SetLabel(std::string(s.name) + (mode == kForward         ? " fwd"
                                        : mode == kBackwardInput ? " bwd_input"
                                                                 : " bwd_weight"));
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t i = 0; i < static_cast<int64_t>(std::size(kShapes)); ++i)
    for (int64_t m = 0; m < 3; ++m) b->Args({i, m});
}
// No MinTime: --benchmark_min_time sets it.
BENCHMARK(BM_Conv2d)->Apply(shapes)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

#ifndef GRAFT_BENCH_KERNELS  // graft-bench-kernels links benchmark_main instead
BENCHMARK_MAIN();
#endif
