// The built-in transfer-learning experiment (`graft demo`), the seed
// tutorials' comparison on data that ships with Debian:
//   1. pretrain the model (--arch, ResNet18 by default) on Fashion-MNIST
//      classes 0-4 (the source task);
//   2. transfer to classes 5-9 (relabelled 0-4) with K images per class;
//   3. compare scratch, fine-tune, feature-extract, backbone lr=0 and
//      backbone 0.1x lr on all 5,000 target test images.
// ../shared/DEMO-REFERENCE.md holds PyTorch's scores for the same protocol.
#pragma once

#include <string>
#include <vector>

namespace graft::train {

struct DemoOptions {
  std::string out = "runs/demo";
  std::string arch = "resnet18";
  // The reference table also has K=100 (`--k 10,30,100`, about 4 more minutes).
  std::vector<int64_t> ks = {10, 30};
  std::vector<std::string> modes = {"scratch", "finetune", "feature-extract", "lr0", "lr0.1x"};
  // Source task.
  int64_t source_epochs = 2;
  int64_t source_batch = 128;
  int64_t source_limit = -1;   // use at most this many source images (-1: all 30,000)
  std::string source_weights;  // reuse a pretrained source model instead of training one
  // Target task: epochs and batch per K (0: the reference protocol's choice,
  // 30 epochs at batch 32 for K <= 30, 15 epochs at batch 128 above).
  int64_t epochs = 0;
  int64_t batch = 0;
  int64_t val_every = 5;  // curve points on 1,000 target test images
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  int64_t image_size = 32;
  int workers = 0;
  uint64_t seed = 0;
  // auto | on | off: train the head of a frozen backbone (feature-extract) on
  // features computed once (train::FeatureCache); on errors for a mode where
  // that is inexact (a trainable backbone or BN in training mode).
  std::string cache_features = "auto";
  std::string data_root = "/usr/share/datasets/fashion-mnist";
};

struct DemoResult {
  int64_t k = 0;
  std::string mode;
  double test_acc = 0;
  double seconds = 0;
};

// Runs the experiment, prints progress and the final table, and writes
// results.csv, results.md, curves_k<K>.svg and source.pth into `out`.
std::vector<DemoResult> run_demo(const DemoOptions& o);

}  // namespace graft::train
