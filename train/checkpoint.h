// Training checkpoints (`last.pth`, `best.pth`): one zip-format .pth that
// torch.load(path, weights_only=True) reads, holding
//   {'arch': str, 'num_classes': int, 'classes': [str], 'epoch': int,
//    'state_dict': OrderedDict (model parameters and buffers),
//    'optimizer': {flat optimizer state, see optim::StateDict}}   # optional
// so `model.load_state_dict(ckpt['state_dict'])` works in PyTorch and
// `graft forward/eval/predict --weights last.pth` find the weights.
#pragma once

#include <string>
#include <vector>

#include "io/pth.h"
#include "optim/optimizer.h"

namespace graft::train {

struct TrainingCheckpoint {
  std::string arch;
  int64_t num_classes = 0;
  std::vector<std::string> classes;
  int64_t epoch = 0;  // completed epochs
  io::StateDict model;
  optim::StateDict optimizer;  // empty: not saved
};

// Atomic: a crash never leaves a half-written file under `path`.
void save_checkpoint(const std::string& path, const TrainingCheckpoint& ckpt);
// Reads a checkpoint written by save_checkpoint; for a plain state_dict file
// only `model` is filled.
TrainingCheckpoint load_checkpoint(const std::string& path);

}  // namespace graft::train
