// The built-in transfer-learning experiment (`graft demo`), the seed
// tutorials' comparison on data that ships with Debian:
//   1. pretrain the model (--arch, ResNet18 by default) on Fashion-MNIST
//      classes 0-4 (the source task);
//   2. transfer to classes 5-9 (relabelled 0-4) with K images per class;
//   3. compare scratch, fine-tune, feature-extract, backbone lr=0 and
//      backbone 0.1x lr on all 5,000 target test images.
// ../shared/DEMO-REFERENCE.md holds PyTorch's scores for the same protocol.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "io/pth.h"
#include "nn/models/registry.h"
#include "optim/optimizer.h"
#include "train/finetune.h"

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

// The pieces of the experiment that benchmarks/demo_record.cpp reuses to
// record one mode's run for a step-by-step replay in PyTorch.
inline const std::vector<int64_t> kDemoSourceClasses = {0, 1, 2, 3, 4};
inline const std::vector<int64_t> kDemoTargetClasses = {5, 6, 7, 8, 9};

// Fashion-MNIST classes `ids` relabelled 0..n-1, preprocessed once into memory.
data::DatasetPtr load_demo_task(const DemoOptions& o, bool train, const std::vector<int64_t>& ids);

// The model of one mode before training: the source's backbone (except
// scratch) under a new 5-class head, frozen as the mode says; `ft` gets the
// mode's fine-tuning options. An unknown mode is an Error.
std::shared_ptr<nn::Classifier> demo_mode_model(const DemoOptions& o, const std::string& mode,
                                                int64_t k, const io::NamedTensors& source_sd,
                                                FinetuneOptions& ft);

// The optimizer settings every mode shares (its lr per group comes from
// build_param_groups).
optim::SGDOptions demo_sgd(const DemoOptions& o);

}  // namespace graft::train
