// Records one run of `graft demo`'s target fine-tune so that PyTorch can
// replay it step for step (benchmarks/demo_replay.py).
//
// Seeds alone cannot pair the two engines: the K-shot subset, the batch order,
// the flips and the new head's initial weights come from each engine's own
// random streams. This program runs the demo's fine-tune mode with the demo's
// own pieces (train/demo.h: the target task, the mode's model and its SGD
// settings at their defaults: lr 0.01, momentum 0.9, weight decay 5e-4) and
// its schedule for K <= 30 (batch 32, random flips, 30 epochs) through
// train::fit, and writes to OUT:
//   init.pth            the model before the first step (torchvision names)
//   subset_x.npy / _y   the K-per-class training images [n,3,32,32] and labels
//   step_NNN.npy        each step's input batch, after its flips
//   graft_losses.txt    each step's mean loss
//   final.pth           the model after the last step
// and prints graft's test accuracy on the 5,000 target test images.
//
//   demo_record runs/demo/source.pth OUT SEED [K]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "core/generator.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/npy.h"
#include "io/pth.h"
#include "io/state_dict.h"
#include "optim/optimizer.h"
#include "train/demo.h"
#include "train/finetune.h"
#include "train/fit.h"

using namespace graft;

int main(int argc, char** argv) try {
  if (argc < 4) {
    std::cerr << "usage: demo_record SOURCE.pth OUT SEED [K]\n";
    return 2;
  }
  const std::string source = argv[1], out = argv[2];
  const uint64_t seed = std::stoull(argv[3]);
  const int64_t k = argc > 4 ? std::stoll(argv[4]) : 10;
  GRAFT_CHECK(k > 0 && k <= 30, "demo_record: K must be in 1..30 (batch 32, 30 epochs), got ", k);
  train::DemoOptions demo;  // the defaults: graft demo's protocol
  demo.seed = seed;
  const auto train = train::load_demo_task(demo, true, train::kDemoTargetClasses);
  const auto test = train::load_demo_task(demo, false, train::kDemoTargetClasses);
  const auto subset = data::per_class_subset(train, k, seed + static_cast<uint64_t>(k), true);
  std::vector<Tensor> xs;
  std::vector<int64_t> ys;
  Generator unused(0);
  for (int64_t i = 0; i < subset->size(); ++i) {
    const data::Example e = subset->get(i, unused);
    xs.push_back(e.image.unsqueeze(0));
    ys.push_back(e.label);
  }
  io::save_npy(out + "/subset_x.npy", cat(xs, 0));
  io::save_npy(out + "/subset_y.npy", tensor<int64_t>(ys));

  train::FinetuneOptions ft;
  const auto model = train::demo_mode_model(demo, "finetune", k, io::load_weights_file(source), ft);
  io::save_pth(model->state_dict(), out + "/init.pth");
  optim::SGD opt(train::build_param_groups(*model, ft, demo.lr), train::demo_sgd(demo));

  train::FitOptions fo;
  fo.epochs = 30;
  fo.seed = seed;
  fo.num_classes = 5;
  fo.quiet = true;
  int step = 0;
  fo.input_fn = [&](const Tensor& images, Generator& flip_gen) {
    Tensor x = train::random_hflip(images, flip_gen);  // fit()'s own hflip
    char name[32];
    std::snprintf(name, sizeof name, "/step_%03d.npy", step++);
    io::save_npy(out + name, x.contiguous());
    return x;
  };
  std::ofstream losses(out + "/graft_losses.txt");
  fo.on_step = [&](const train::StepRecord& r) { losses << r.loss << "\n"; };
  data::DataLoader::Options dl;
  dl.batch_size = 32;
  dl.shuffle = true;
  dl.seed = seed;
  data::DataLoader loader(subset, dl);
  train::fit(*model, opt, nullptr, loader, nullptr, fo);
  io::save_pth(model->state_dict(), out + "/final.pth");
  data::DataLoader::Options tl;
  tl.batch_size = 256;
  data::DataLoader test_loader(test, tl);
  std::printf("graft: seed %llu K=%lld %d steps, test accuracy %.4f\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(k), step,
              train::evaluate(*model, test_loader, 5).top1);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "demo_record: " << e.what() << "\n";
  return 1;
}
