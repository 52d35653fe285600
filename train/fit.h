// The training loop shared by `graft train`, `graft demo` and C++ callers:
// epochs over a DataLoader with loss/accuracy/throughput per epoch,
// validation, an optional per-epoch LR scheduler, and evaluation with top-k
// accuracy and a confusion matrix.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "nn/module.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"

namespace graft::train {

struct EvalResult {
  double loss = 0;
  double top1 = 0;
  double top5 = 0;
  int64_t count = 0;
  Tensor confusion;  // int64 [classes, classes]: row = true class, column = predicted
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0;
  double train_acc = 0;
  std::optional<double> val_loss;
  std::optional<double> val_acc;
  double seconds = 0;
  double images_per_sec = 0;
  std::vector<double> lrs;  // per group, as used during this epoch
  int64_t steps = 0;        // optimizer steps in the whole run after this epoch
  bool validated() const { return val_acc.has_value(); }
};

// Where a run stands inside an epoch: enough to continue it exactly. Batches
// and their random transforms depend only on (seed, epoch, batch index), so
// restoring the model, optimizer, schedule and this gives an uninterrupted
// run's bits.
struct EpochProgress {
  int64_t epoch = 0;    // 0-based epoch in progress
  int64_t batch = 0;    // batches of it done
  int64_t steps = 0;    // optimizer steps in the whole run
  double loss_sum = 0;  // sum of per-example training loss over the batches done
  int64_t correct = 0, seen = 0;
};

// What fit() passes to FitOptions::on_step after each optimizer step. At that
// point every trained parameter still holds this step's .grad and already has
// its updated value.
struct StepRecord {
  int64_t epoch = 0;        // 1-based
  int64_t batch = 0;        // 1-based, within the epoch
  int64_t global_step = 0;  // 1-based count of optimizer steps (what max_steps counts)
  double loss = 0;          // this batch's mean training loss
  int64_t batch_size = 0;
};

// Adds a vector of sums element-wise over the ranks of a data-parallel run, in
// place: every rank passes the same length and gets the totals.
using SumOverRanks = std::function<void(std::vector<double>& sums)>;

struct FitOptions {
  int64_t epochs = 1;
  int64_t start_epoch = 0;  // epochs already done (resume)
  // Resume inside epoch `start_epoch` (when resume.batch > 0), and the steps
  // already taken (counted by max_steps).
  EpochProgress resume;
  int64_t val_every = 1;  // validate every N epochs (and after the last)
  bool hflip = false;     // random horizontal flip of each training image
  // When set, maps each training batch's images to the model's input in place
  // of the flip above, drawing from the epoch's flip generator (seeded from
  // `seed` as for hflip). FeatureCache::input_fn() picks cached features.
  std::function<Tensor(const Tensor& images, Generator& flip_gen)> input_fn;
  // The model evaluate() runs on the validation loader (null: the trained one).
  nn::Module* val_model = nullptr;
  uint64_t seed = 0;       // flip randomness: one stream per epoch
  int64_t max_steps = -1;  // stop after this many optimizer steps in total (-1: no limit)
  // Tests: behave as if `stop` became true after this many steps in total (-1: never).
  int64_t stop_after_steps = -1;
  Device device = Device::cpu();
  // The model's floating-point dtype: batches (float32) are converted to it.
  DType dtype = DType::Float32;
  int64_t num_classes = 0;
  double label_smoothing = 0;
  std::optional<double> clip_grad_norm;
  // Called after every optimizer step (logging, telemetry, custom stopping via `stop`).
  std::function<void(const StepRecord&)> on_step;
  bool quiet = false;
  // Called after every epoch (metrics files, checkpoints) with the progress
  // after it: batch 0 of the next epoch, or, when max_steps ended the epoch
  // part-way, the point inside it (a resume continues from there).
  std::function<void(const EpochRecord&, const EpochProgress&)> on_epoch_end;
  // Set to true when `stop` (or stop_after_steps) ended the run early.
  bool* interrupted = nullptr;
  // Called when `stop` ends an epoch part-way, with the progress after the
  // last step (a mid-epoch checkpoint).
  std::function<void(const EpochProgress&)> on_interrupt;
  // Checked after every step; when it becomes true training stops after the
  // current step and fit() returns the completed epochs. A stop after an
  // epoch's last step lets that epoch finish (validation, on_epoch_end).
  const std::atomic<bool>* stop = nullptr;
  // Data-parallel runs: turns this process's stop request into the job's (true
  // when any rank asked), so that every rank stops after the same step. fit()
  // calls it at the same points of every rank's run.
  std::function<bool(bool)> agree_stop;
  // Data-parallel training (dist/ddp.h): called before each training
  // forward, right before backward, and after backward (before gradient
  // clipping and the optimizer step).
  std::function<void()> before_forward, before_backward, after_backward;
  // Data-parallel runs: adds an epoch's loss sum, correct and seen counts, and
  // the validation's sums (each rank evaluates its share of the validation
  // data), over all ranks, so the reported metrics are the whole world's.
  SumOverRanks sum_over_ranks;
};

// Trains `model` and returns one record per completed epoch.
std::vector<EpochRecord> fit(nn::Module& model, optim::Optimizer& opt, optim::Schedule* scheduler,
                             data::DataLoader& train, data::DataLoader* val, const FitOptions& o);

// Eval-mode pass over `loader`; restores the model's training flag after.
// With `sum_over_ranks`, the loader holds this rank's share of the data
// (DataLoader::Options::pad_shards = false: each example on one rank only)
// and the result is the whole data set's; a rank's share may be empty.
EvalResult evaluate(nn::Module& model, data::DataLoader& loader, int64_t num_classes,
                    Device device = Device::cpu(), DType dtype = DType::Float32,
                    const SumOverRanks& sum_over_ranks = {});

// Flips each image of a [B,C,H,W] batch horizontally with probability 0.5:
// hflip_images(images, one hflip_draw per image in batch order).
Tensor random_hflip(const Tensor& images, Generator& gen);
// One image's draw of random_hflip: true flips it.
bool hflip_draw(Generator& gen);
// A float32 copy of a [B,C,H,W] batch with the images whose `which` entry is
// nonzero flipped horizontally (every image when `which` is empty).
Tensor hflip_images(const Tensor& images, const std::vector<char>& which);

// One line: "epoch 3/10  loss 0.4321  acc 0.8750  val_loss ...  123.4 img/s  ETA 1m05s".
std::string format_epoch(const EpochRecord& r, int64_t total_epochs, double eta_seconds);

}  // namespace graft::train
