// ResNet throughput (images/s in the "items_per_second" counter), ResNet18 at
// batch 32, 224x224 by default:
// - BM_TrainStep: a full training step (forward, cross-entropy, backward, an
//   SGD update under NoGradGuard);
// - BM_FeatureExtractStep: the same with the backbone frozen (requires_grad
//   false, BN in eval mode): only the fc head learns;
// - BM_Inference: eval-mode forward under NoGradGuard.
// benchmarks/compare_resnet.py runs this next to the same loops in PyTorch.
// GRAFT_BENCH_ARCH (resnet18..resnet152), GRAFT_BENCH_BATCH, GRAFT_BENCH_SIZE
// choose the case; GRAFT_BENCH_THREADS the threads (default: graft's); the
// JSON context names the CPU GEMM copy in use (graft_cpu_gemm). Each case runs
// one untimed step first: a first step maps and faults in all of its memory,
// which on some VMs took 3x a steady step, and Google Benchmark reports that
// cold step alone when it already exceeds --benchmark_min_time. The training
// cases also report tensor_peak_MiB: the peak of live tensor storage
// (cpu_memory_stats()), which the process's peak RSS is measured against.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "nn/loss.h"
#include "nn/models/registry.h"

namespace {

using namespace graft;

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}

const int64_t kBatch = env_int("GRAFT_BENCH_BATCH", 32);
const int64_t kSize = env_int("GRAFT_BENCH_SIZE", 224);

std::string arch() {
  const char* a = std::getenv("GRAFT_BENCH_ARCH");
  return a && *a ? a : "resnet18";
}

void setup_threads() {
  if (const char* t = std::getenv("GRAFT_BENCH_THREADS")) set_num_threads(std::atoi(t));
}

// Forward, loss, backward and a plain SGD update of the trainable parameters.
void train_steps(benchmark::State& state, nn::Module& model) {
  const Tensor x = randn({kBatch, 3, kSize, kSize});
  const Tensor y = randint(0, 1000, {kBatch});
  nn::CrossEntropyLoss criterion;
  std::vector<Tensor> params;
  for (const Tensor& p : model.parameters())
    if (p.requires_grad()) params.push_back(p);
  const double lr = 1e-3;
  auto step = [&] {
    model.zero_grad();
    Tensor loss = criterion(model.forward(x), y);
    loss.backward();
    NoGradGuard g;
    for (auto& p : params) {
      Tensor w = p;
      sub_(w, p.grad(), lr);
    }
    return loss.item();
  };
  step();  // warm-up, untimed, as compare_resnet.py's PyTorch loop does
  for (auto _ : state) benchmark::DoNotOptimize(step());
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["tensor_peak_MiB"] =
      static_cast<double>(cpu_memory_stats().peak_allocated) / (1 << 20);
}

void BM_TrainStep(benchmark::State& state) {
  setup_threads();
  manual_seed(0);
  auto model = nn::build_model(arch(), 1000);
  model->train();
  train_steps(state, *model);
}
BENCHMARK(BM_TrainStep)->Unit(benchmark::kMillisecond)->UseRealTime();

// The seeds' feature-extract recipe: everything but fc frozen, BN frozen too.
void BM_FeatureExtractStep(benchmark::State& state) {
  setup_threads();
  manual_seed(0);
  auto model = nn::build_model(arch(), 1000);
  model->eval();
  for (auto& [name, p] : model->named_parameters())
    if (!model->in_head(name)) p.set_requires_grad(false);
  train_steps(state, *model);
}
BENCHMARK(BM_FeatureExtractStep)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Inference(benchmark::State& state) {
  setup_threads();
  manual_seed(0);
  auto model = nn::build_model(arch(), 1000);
  model->eval();
  const Tensor x = randn({kBatch, 3, kSize, kSize});
  NoGradGuard g;
  model->forward(x);  // warm-up, untimed, as compare_resnet.py's PyTorch loop does
  for (auto _ : state) {
    Tensor out = model->forward(x);
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_Inference)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // Which GEMM copy ran (kernels/cpu/gemm.h): compare_resnet.py records it.
  benchmark::AddCustomContext("graft_cpu_gemm", cpu_isa_name(cpu_gemm_isa()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
