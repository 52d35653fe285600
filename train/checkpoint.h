// Training checkpoints (`last.pth`, `best.pth`) and the one front end every
// subcommand uses to read weights.
//
// A checkpoint describes itself. It is one zip-format .pth that
// torch.load(path, weights_only=True) reads (plain dicts, lists, strings,
// ints and tensors; floats are 0-d float64 tensors because torch 1.13's
// weights_only unpickler rejects pickled floats):
//   {'graft_version': str, 'arch': str, 'num_classes': int, 'classes': [str],
//    'transform': {'resize': int, 'crop': int, 'mean': f64[3], 'std': f64[3]},  # images only
//    'epoch': int,                          # completed epochs
//    'best': {'metric': 'val_acc'|'train_acc', 'score': f64, 'epoch': int},
//    'progress': {'epoch', 'batch', 'steps', 'correct', 'seen': int, 'loss_sum': f64},
//    'state_dict': OrderedDict (model parameters and buffers),
//    'optimizer': {flat optimizer state, see optim::FlatState},   # last.pth only
//    'scheduler': {flat schedule state, see optim::Schedule}}     # last.pth, when scheduled
// so `model.load_state_dict(ckpt['state_dict'])` works in PyTorch.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/pth.h"
#include "io/state_dict.h"
#include "nn/models/registry.h"
#include "optim/optimizer.h"
#include "train/fit.h"

namespace graft::train {

// How eval/predict prepare an image for the model: Resize(resize) (shorter
// side), CenterCrop(crop), ToTensor, Normalize(mean, std).
struct EvalTransform {
  int64_t resize = 0, crop = 0;
  std::vector<double> mean, std;
  bool operator==(const EvalTransform&) const = default;
};
// ImageNet's mean/std at crop size `size` (resize = size * 256 / 224), as torchvision.
EvalTransform imagenet_eval(int64_t size);
data::TransformPtr make_transform(const EvalTransform& t);

struct BestScore {
  std::string metric;  // "val_acc" or "train_acc" (no validation data); "" none yet
  double score = -1;
  int64_t epoch = 0;
};

struct TrainingCheckpoint {
  std::string graft_version;  // empty: not written by graft
  std::string arch;
  int64_t num_classes = 0;
  std::vector<std::string> classes;
  std::optional<EvalTransform> transform;
  int64_t epoch = 0;       // completed epochs
  EpochProgress progress;  // progress.batch > 0: saved part-way through epoch `epoch`
  BestScore best;
  io::NamedTensors model;
  optim::FlatState optimizer;  // empty: not saved
  optim::FlatState scheduler;  // empty: none
};

// Atomic: written to a temporary file and renamed, so a crash or a full
// disk never leaves a half-written file under `path` (the previous one stays).
void save_checkpoint(const std::string& path, const TrainingCheckpoint& ckpt);

// Reads any weights file: a graft checkpoint, a .pth (zip or legacy) holding a
// state_dict or a dict with a 'state_dict'/'model' entry, a .safetensors, or
// .npy files. A DataParallel 'module.' prefix is stripped, and a one-line note
// goes to `notes` (stderr when null and !quiet).
TrainingCheckpoint load_checkpoint(const std::string& path, bool quiet = false);

// What a subcommand's flags ask of the model; empty / 0: take it from the file.
struct ModelRequest {
  std::string weights;         // the file (named in every message)
  std::string arch;            // --arch
  int64_t num_classes = 0;     // --num-classes
  bool override_meta = false;  // --override: flags win over the checkpoint's metadata
  bool quiet = false;
};

struct LoadedModel {
  std::shared_ptr<nn::Classifier> model;
  TrainingCheckpoint ckpt;
  std::string arch;
  int64_t num_classes = 0;
};

// Builds the model the file describes and loads it (strict). A flag that
// contradicts the file is an error naming both; a file that does not fit
// gets a one-line error with the likely cause (see io::diagnose_load).
LoadedModel load_model(const ModelRequest& req);

// The dry-run load report of `sd` into `arch` with `num_classes`, with the
// likely cause when it does not fit (graft inspect --plan).
io::LoadReport plan_load(const io::NamedTensors& sd, const std::string& arch, int64_t num_classes);

}  // namespace graft::train
