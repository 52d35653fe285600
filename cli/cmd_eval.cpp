// `graft eval`: top-1/top-5 accuracy and a confusion matrix for a checkpoint.
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "io/state_dict.h"
#include "nn/models/resnet.h"
#include "train/checkpoint.h"
#include "train/fit.h"

namespace {

struct EvalArgs {
  std::string weights, arch, data_dir, dataset, val_npy, val_labels, device = "cpu";
  int64_t batch_size = 64, image_size = 0;
  int workers = 2, threads = 0;
};

int run_eval(const EvalArgs& a) {
  using namespace graft;
  if (a.threads > 0) set_num_threads(a.threads);
  const Device device = require_device(a.device);
  const train::TrainingCheckpoint ck = train::load_checkpoint(a.weights);
  const Tensor* fc = io::find_tensor(ck.model, "fc.weight");
  GRAFT_CHECK(fc, "'", a.weights, "' has no fc.weight: not a ResNet classifier checkpoint");
  const int64_t classes = fc->size(0);
  const std::string arch = !a.arch.empty() ? a.arch : (!ck.arch.empty() ? ck.arch : "resnet18");
  auto model = nn::make_resnet(arch, classes);
  io::load_state_dict(model->state_dict(), ck.model);  // strict: throws with the report
  model->to(device);

  data::DatasetPtr ds;
  std::vector<std::string> names = ck.classes;
  if (!a.val_npy.empty()) {
    ds = data::TensorDataset::from_npy(a.val_npy, a.val_labels);
  } else if (!a.data_dir.empty()) {
    const int64_t size = a.image_size > 0 ? a.image_size : 224;
    auto f = std::make_shared<data::ImageFolder>(
        a.data_dir, data::imagenet_eval_transform(size * 256 / 224, size));
    if (names.empty()) names = f->classes();
    ds = f;
  } else {
    GRAFT_CHECK(
        a.dataset == "fashion-mnist",
        "no evaluation data: give --data DIR, --dataset fashion-mnist or --val-npy/--val-labels");
    data::FashionMNIST::Options fo;
    fo.train = false;
    fo.demo_size = a.image_size > 0 ? a.image_size : 32;
    data::FashionMNIST f(fo);
    ds = std::make_shared<data::TensorDataset>(f.preprocess(f.images()), f.labels());
    if (names.empty()) names = f.classes();
  }
  data::DataLoader::Options lo;
  lo.batch_size = a.batch_size;
  lo.num_workers = a.workers;
  data::DataLoader loader(ds, lo);
  const train::EvalResult r = train::evaluate(*model, loader, classes, device);
  std::printf("images %lld  loss %.4f  top-1 %.4f  top-5 %.4f\n", static_cast<long long>(r.count),
              r.loss, r.top1, r.top5);
  std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n");
  const auto m = r.confusion.to_vector<int64_t>();
  for (int64_t i = 0; i < classes; ++i) {
    const std::string name = i < static_cast<int64_t>(names.size()) ? names[i] : std::to_string(i);
    std::printf("%-16.16s", name.c_str());
    for (int64_t j = 0; j < classes; ++j)
      std::printf(" %6lld", static_cast<long long>(m[static_cast<size_t>(i * classes + j)]));
    std::printf("\n");
  }
  return 0;
}

std::function<int()> setup_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  app.add_option("--weights", a->weights, "checkpoint (.pth) to evaluate")->required();
  app.add_option("--arch", a->arch, "architecture (default: from the checkpoint)");
  app.add_option("--data", a->data_dir, "ImageFolder root");
  app.add_option("--dataset", a->dataset, "fashion-mnist (its test split)");
  app.add_option("--val-npy", a->val_npy, "images .npy");
  app.add_option("--val-labels", a->val_labels, "labels .npy");
  app.add_option("--image-size", a->image_size, "crop size");
  app.add_option("--batch-size", a->batch_size, "batch size")->capture_default_str();
  app.add_option("--workers", a->workers, "loader threads");
  app.add_option("--device", a->device, "cpu | cuda");
  app.add_option("--threads", a->threads, "CPU threads");
  return [a]() { return run_eval(*a); };
}

GRAFT_COMMAND("eval", "Top-1/top-5 accuracy and confusion matrix of a checkpoint", setup_eval);

}  // namespace
