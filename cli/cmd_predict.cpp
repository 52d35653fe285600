// `graft predict IMAGE...`: top-k classes with probabilities.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "cli/command.h"
#include "core/autograd.h"
#include "core/ops_nn.h"
#include "data/image.h"
#include "data/transforms.h"
#include "io/state_dict.h"
#include "nn/models/resnet.h"
#include "train/checkpoint.h"

namespace {

struct PredictArgs {
  std::string weights, arch;
  std::vector<std::string> images;
  int64_t topk = 5, image_size = 224;
};

int run_predict(const PredictArgs& a) {
  using namespace graft;
  const train::TrainingCheckpoint ck = train::load_checkpoint(a.weights);
  const Tensor* fc = io::find_tensor(ck.model, "fc.weight");
  GRAFT_CHECK(fc, "'", a.weights, "' has no fc.weight: not a ResNet classifier checkpoint");
  const int64_t classes = fc->size(0);
  auto model =
      nn::make_resnet(!a.arch.empty() ? a.arch : (ck.arch.empty() ? "resnet18" : ck.arch), classes);
  io::load_state_dict(model->state_dict(), ck.model);
  model->eval();
  const auto transform = data::imagenet_eval_transform(a.image_size * 256 / 224, a.image_size);
  Generator gen(0);
  NoGradGuard no_grad;
  for (const auto& path : a.images) {
    const auto out = transform->apply(data::read_image(path), gen);
    GRAFT_CHECK(std::holds_alternative<Tensor>(out),
                "predict: the eval transform did not give a tensor");
    const Tensor x = std::get<Tensor>(out);
    const Tensor probs = F::softmax(model->forward(x.unsqueeze(0)), 1);
    const auto p = probs.to_vector<float>();
    std::vector<int64_t> order(static_cast<size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    const int64_t k = std::min(a.topk, classes);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t i, int64_t j) { return p[i] > p[j]; });
    std::printf("%s\n", path.c_str());
    for (int64_t i = 0; i < k; ++i) {
      const int64_t c = order[static_cast<size_t>(i)];
      const std::string name =
          c < static_cast<int64_t>(ck.classes.size()) ? ck.classes[c] : std::to_string(c);
      std::printf("  %6.2f%%  %s\n", 100.0 * p[static_cast<size_t>(c)], name.c_str());
    }
  }
  return 0;
}

std::function<int()> setup_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  app.add_option("images", a->images, "image files")->required();
  app.add_option("--weights", a->weights, "checkpoint from graft train (best.pth / last.pth)")
      ->required();
  app.add_option("--arch", a->arch, "architecture (default: from the checkpoint)");
  app.add_option("--topk", a->topk, "classes to show")->capture_default_str();
  app.add_option("--image-size", a->image_size, "center-crop size")->capture_default_str();
  return [a]() { return run_predict(*a); };
}

GRAFT_COMMAND("predict", "Top-k classes with probabilities for images", setup_predict);

}  // namespace
