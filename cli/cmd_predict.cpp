// `graft predict IMAGE...`: top-k classes with probabilities.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "cli/command.h"
#include "core/autograd.h"
#include "core/ops_nn.h"
#include "data/image.h"
#include "data/transforms.h"
#include "nn/models/registry.h"
#include "train/checkpoint.h"

namespace {

struct PredictArgs {
  std::string weights, arch;
  std::vector<std::string> images;
  int64_t topk = 5, image_size = 0;
  bool override_meta = false;
};

int run_predict(const PredictArgs& a) {
  using namespace graft;
  train::ModelRequest req;
  req.weights = a.weights;
  req.arch = a.arch;
  req.override_meta = a.override_meta;
  train::LoadedModel m = train::load_model(req);
  m.model->eval();
  train::EvalTransform t = m.ckpt.transform ? *m.ckpt.transform : train::imagenet_eval(224);
  if (a.image_size > 0 && a.image_size != t.crop) {
    GRAFT_CHECK(!m.ckpt.transform || a.override_meta, "--image-size ", a.image_size,
                " contradicts '", a.weights, "', trained at ", t.crop,
                " px (drop --image-size, or pass --override)");
    t = train::imagenet_eval(a.image_size);
  }
  const auto transform = train::make_transform(t);
  const int64_t classes = m.num_classes;
  Generator gen(0);
  NoGradGuard no_grad;
  for (const auto& path : a.images) {
    const auto out = transform->apply(data::read_image(path), gen);
    GRAFT_CHECK(std::holds_alternative<Tensor>(out),
                "predict: the eval transform did not give a tensor");
    const Tensor x = std::get<Tensor>(out);
    const Tensor probs = F::softmax(m.model->forward(x.unsqueeze(0)), 1);
    const auto p = probs.to_vector<float>();
    std::vector<int64_t> order(static_cast<size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    const int64_t k = std::min(a.topk, classes);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t i, int64_t j) { return p[i] > p[j]; });
    std::printf("%s\n", path.c_str());
    for (int64_t i = 0; i < k; ++i) {
      const int64_t c = order[static_cast<size_t>(i)];
      const std::string name = c < static_cast<int64_t>(m.ckpt.classes.size())
                                   ? m.ckpt.classes[static_cast<size_t>(c)]
                                   : std::to_string(c);
      std::printf("  %6.2f%%  %s\n", 100.0 * p[static_cast<size_t>(c)], name.c_str());
    }
  }
  return 0;
}

std::function<int()> setup_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  app.add_option("images", a->images, "image files")->required();
  app.add_option("--weights", a->weights,
                 "graft checkpoint (best.pth / last.pth) or any weights file")
      ->required();
  app.add_option("--arch", a->arch,
                 graft::nn::model_names() + " (default: from the checkpoint or its keys)");
  app.add_option("--topk", a->topk, "classes to show")->capture_default_str();
  app.add_option("--image-size", a->image_size,
                 "center-crop size (default: the checkpoint's, else 224)");
  app.add_flag("--override", a->override_meta,
               "let --arch/--image-size contradict the checkpoint's metadata");
  return [a]() { return run_predict(*a); };
}

GRAFT_COMMAND("predict", "Top-k classes with probabilities for images", setup_predict);

}  // namespace
