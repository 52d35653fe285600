// `graft bench`: training-step and inference images/s of a ResNet.
#include <chrono>
#include <cstdio>

#include "cli/command.h"
#include "core/autograd.h"
#include "core/ops_nn.h"
#include "core/parallel.h"
#include "nn/models/resnet.h"
#include "optim/optimizer.h"
#include "optim/params.h"

namespace {

struct BenchArgs {
  std::string arch = "resnet18", device = "cpu", what = "both";
  int64_t batch = 32, size = 224, steps = 5, warmup = 1, classes = 1000;
  bool freeze_backbone = false;
  int threads = 0;
};

double time_loop(int64_t warmup, int64_t steps, const std::function<void()>& fn, graft::Device d) {
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < warmup; ++i) fn();
  if (d.is_cuda()) graft::device_backend(d.type).synchronize(d.index);
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) fn();
  if (d.is_cuda()) graft::device_backend(d.type).synchronize(d.index);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int run_bench(const BenchArgs& a) {
  using namespace graft;
  if (a.threads > 0) set_num_threads(a.threads);
  const Device device = require_device(a.device);
  manual_seed(0);
  auto model = nn::make_resnet(a.arch, a.classes);
  if (a.freeze_backbone) {
    model->requires_grad_(false);
    model->fc->requires_grad_(true);
  }
  model->to(device);
  const Tensor x = randn({a.batch, 3, a.size, a.size}).to(device);
  const Tensor y = randint(0, a.classes, {a.batch}).to(device);
  std::printf("%s  batch %lld  %lldx%lld  %s  threads %d%s\n", a.arch.c_str(),
              static_cast<long long>(a.batch), static_cast<long long>(a.size),
              static_cast<long long>(a.size), device.str().c_str(), get_num_threads(),
              a.freeze_backbone ? "  (backbone frozen)" : "");
  if (a.what == "train" || a.what == "both") {
    optim::SGDOptions so;
    so.lr = 0.01;
    so.momentum = 0.9;
    std::vector<optim::ParamGroup> groups;
    groups.emplace_back(optim::trainable(model->named_parameters()));
    optim::SGD opt(std::move(groups), so);
    model->train();
    const double s = time_loop(
        a.warmup, a.steps,
        [&] {
          Tensor loss = F::cross_entropy(model->forward(x), y);
          opt.zero_grad();
          loss.backward();
          opt.step();
          (void)loss.item();
        },
        device);
    std::printf("train step: %.1f img/s (%.1f ms/step)\n",
                static_cast<double>(a.batch * a.steps) / s, 1e3 * s / static_cast<double>(a.steps));
  }
  if (a.what == "infer" || a.what == "both") {
    model->eval();
    NoGradGuard g;
    const double s = time_loop(
        a.warmup, a.steps, [&] { (void)sum(model->forward(x)).item(); }, device);
    std::printf("inference:  %.1f img/s (%.1f ms/batch)\n",
                static_cast<double>(a.batch * a.steps) / s, 1e3 * s / static_cast<double>(a.steps));
  }
  return 0;
}

std::function<int()> setup_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--arch", a->arch, "architecture")->capture_default_str();
  app.add_option("--batch-size", a->batch, "batch size")->capture_default_str();
  app.add_option("--image-size", a->size, "input size")->capture_default_str();
  app.add_option("--steps", a->steps, "timed steps")->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str();
  app.add_option("--what", a->what, "train | infer | both")
      ->check(CLI::IsMember({"train", "infer", "both"}))
      ->capture_default_str();
  app.add_flag("--freeze-backbone", a->freeze_backbone, "train only fc (feature extraction)");
  app.add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads");
  return [a]() { return run_bench(*a); };
}

GRAFT_COMMAND("bench", "Training-step and inference images/s of a ResNet", setup_bench);

}  // namespace
