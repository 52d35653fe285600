// ResNet18 throughput at batch 32, 224x224 by default (images/s in the "items_per_second"
// counter): a full training step (forward, cross-entropy, backward, an SGD
// update under NoGradGuard) and eval-mode inference under NoGradGuard.
// benchmarks/compare_resnet.sh runs this next to the same loop in PyTorch.
// Threads: GRAFT_BENCH_THREADS (default: graft's default thread count);
// GRAFT_BENCH_BATCH and GRAFT_BENCH_SIZE override the batch size and image size.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "nn/loss.h"
#include "nn/models/resnet.h"

namespace {

using namespace graft;

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}

const int64_t kBatch = env_int("GRAFT_BENCH_BATCH", 32);
const int64_t kSize = env_int("GRAFT_BENCH_SIZE", 224);

void setup_threads() {
  if (const char* t = std::getenv("GRAFT_BENCH_THREADS")) set_num_threads(std::atoi(t));
}

void BM_ResNet18TrainStep(benchmark::State& state) {
  setup_threads();
  manual_seed(0);
  auto model = nn::resnet18(1000);
  model->train();
  const Tensor x = randn({kBatch, 3, kSize, kSize});
  const Tensor y = randint(0, 1000, {kBatch});
  nn::CrossEntropyLoss criterion;
  auto params = model->parameters();
  const double lr = 1e-3;
  for (auto _ : state) {
    model->zero_grad();
    Tensor loss = criterion(model->forward(x), y);
    loss.backward();
    NoGradGuard g;
    for (auto& p : params) {
      Tensor w = p;
      sub_(w, p.grad(), lr);
    }
    benchmark::DoNotOptimize(loss.item());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ResNet18TrainStep)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ResNet18Inference(benchmark::State& state) {
  setup_threads();
  manual_seed(0);
  auto model = nn::resnet18(1000);
  model->eval();
  const Tensor x = randn({kBatch, 3, kSize, kSize});
  NoGradGuard g;
  for (auto _ : state) {
    Tensor out = model->forward(x);
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_ResNet18Inference)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
BENCHMARK_MAIN();
