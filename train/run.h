// `graft train` as a library call: every resolved flag in one TrainConfig,
// and run_training() doing data, model, fine-tuning recipe, optimizer,
// schedule, the loop, metrics files, checkpoints and resume.
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "nn/models/registry.h"
#include "train/finetune.h"
#include "train/fit.h"

namespace graft::dist {
class ProcessGroup;
}

namespace graft::train {

struct TrainConfig {
  // model
  std::string arch = "resnet18";
  std::string weights;  // .pth / .safetensors / .npy dir; empty: random init
  // 0: the data's classes (ImageFolder, fashion-mnist); for .npy labels,
  // whose class count is unknown, the weights' head when it covers the labels.
  int64_t num_classes = 0;
  std::string mode;  // "", scratch, finetune, feature-extract (presets)
  // data (one source)
  std::string train_npy, train_labels, val_npy, val_labels;
  std::string data_dir, val_data;
  std::string dataset;              // "fashion-mnist"
  int64_t image_size = 0;           // 0: 224 for image folders, 32 for fashion-mnist
  std::string augment = "default";  // default | none (npy data is never augmented)
  int workers = 2;
  bool skip_bad_images = false;
  // optimizer
  std::string optimizer = "sgd";
  double lr = 0.01, momentum = 0.9, dampening = 0, weight_decay = 0, eps = 1e-8;
  bool nesterov = false, amsgrad = false;
  std::array<double, 2> betas = {0.9, 0.999};
  std::vector<std::string> freeze, param_groups;
  std::string bn = "train";
  double backbone_lr_mult = 1, head_lr_mult = 1;
  // schedule
  std::string scheduler = "none";  // none | step | multistep | cosine | warmup | onecycle
  int64_t step_size = 10;
  double gamma = 0.1;
  std::vector<int64_t> milestones;
  int64_t warmup_epochs = 0;  // linear warmup before any scheduler (--scheduler warmup: 1)
  // loop
  // epochs 0: 1, or as many as max_steps needs when it is given.
  int64_t batch_size = 32, epochs = 0, max_steps = -1, val_every = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  double label_smoothing = 0;
  double clip_grad_norm = 0;  // 0: off
  // Train the head on backbone features computed once (train::FeatureCache):
  // auto = where that is exact (frozen backbone and BN, deterministic
  // training data, no telemetry), on = that or an error saying why not, off.
  std::string cache_features = "auto";
  int64_t telemetry = 0;  // sample train/telemetry.h every N steps into --out (0: off)
  // outputs
  std::string save;  // final state_dict .pth
  std::string
      out;  // run folder: metrics.csv, config.json, last.pth, best.pth, classes.txt, curves.svg
  std::string resume;
  bool overwrite = false;  // allow a non-empty --out (its run files are removed first)
  std::string device = "cpu";
  std::string dtype = "float32";  // float32 | float64 (the model's parameters and inputs)
  int threads = 0;                // 0: keep the default
  // data parallel (dist/): on when an MPI launcher starts more than one
  // rank, or with --distributed
  bool distributed = false;
  bool sync_bn = false;
  double dist_timeout = 300;  // seconds a collective waits for the other ranks
  int64_t world_size = 1;     // ranks that trained the run (recorded in config.json)
  bool quiet = false;
  // Option names ("lr", "epochs", ...) the user gave explicitly: a given flag
  // that would have no effect is an error. Empty for C++ callers.
  std::set<std::string> given;
};

struct TrainSummary {
  std::vector<EpochRecord> epochs;
  bool interrupted = false;
  double best_val_acc = -1;
};

// Where `graft train --data ROOT` finds its splits: ROOT/train (else ROOT)
// for training, and ROOT/val, else ROOT/test, for validation ("" when none).
struct ImageSplits {
  std::string train, val;
};
ImageSplits resolve_image_splits(const std::string& root);
// Whether ROOT holds a train/ split (a train/ folder of class folders).
bool has_split_layout(const std::string& root);

// Reads `dir`/config.json written by a previous run (for --resume).
TrainConfig load_config(const std::string& dir);
std::string config_json(const TrainConfig& c);

// Under an MPI launcher with more than one rank (or --distributed), every
// rank runs this and trains one data-parallel model (dist/ddp.h).
TrainSummary run_training(TrainConfig c);
// One rank of a run: `pg` null for a single process.
TrainSummary run_training_on(TrainConfig c, dist::ProcessGroup* pg);

// What the flags freeze, as `graft train` applies them (also used by `graft
// inspect --graph`): --mode feature-extract leaves only the head trainable,
// then each --freeze GLOB freezes what it matches (an error when it matches
// nothing). Returns the fine-tuning options the flags give (groups, lr
// multipliers, BatchNorm policy).
FinetuneOptions apply_freeze_flags(const TrainConfig& c, nn::Classifier& net);

}  // namespace graft::train
