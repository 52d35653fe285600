// Cached backbone features for training a frozen classifier's head.
//
// When every backbone parameter is frozen, every BatchNorm of the backbone
// normalises with its running statistics (BnPolicy::Frozen), no backbone
// module is random or hooked, and the training examples are deterministic, an
// epoch's backbone forward pass recomputes the features of the epoch before.
// FeatureCache runs the backbone (nn::Classifier::features: everything up to
// the pooled, flattened features that feed the head, e.g. ResNet's `fc`) once
// per example and keeps the result as a data set; fit() then trains only the
// head on it:
//
//   std::string why = FeatureCache::inexact_reason(*net, train_data.get(), true);
//   if (why.empty()) {
//     FeatureCache train_f(*net, train_data, {.hflip = true});   // both orientations
//     FeatureCache val_f(*net, val_data, {.train_mode = false});
//     DataLoader train_loader(train_f.dataset(), same_options_as_uncached);
//     DataLoader val_loader(val_f.dataset(), val_options);
//     fo.input_fn = train_f.input_fn();                            // picks flips
//     fit(*net->classifier(), opt, sched, train_loader, &val_loader, fo);
//   }
//
// Why it is exact: the cached data set has the same size as the original, so
// a DataLoader with the same options yields the same examples in the same
// batches in the same order (its order depends on seed, epoch and size only);
// input_fn makes the same horizontal-flip draws as random_hflip (one per
// image, in batch order, from the epoch's flip generator) and picks the cached
// features of the flipped or unflipped image; the head, loss and optimizer see
// the same numbers up to the backbone's float rounding, which can differ with
// the composition of the batches the backbone ran on (GEMM blocking). The
// optimizer holds the model's own head tensors, so checkpoints of the model
// are the full model, backbone included.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/generator.h"
#include "data/dataset.h"
#include "nn/models/registry.h"

namespace graft::train {

struct FeatureCacheOptions {
  // Also cache the features of each horizontally flipped image (for a run
  // whose fit() flips at random: FitOptions::hflip).
  bool hflip = false;
  // The model's mode while the backbone runs: training (as fit's forward
  // pass) or eval (as evaluate's). With the conditions of inexact_reason they
  // compute the same thing; the mode is kept for fidelity.
  bool train_mode = true;
  int64_t batch_size = 128;  // backbone batches while filling the cache
  int num_workers = 0;       // loader threads while filling the cache
  Device device = Device::cpu();
  // Refuse (with an error saying so) to hold more feature bytes than this.
  int64_t max_bytes = int64_t{4} << 30;
  // Data-parallel runs split the one-off backbone pass: this rank computes the
  // examples of its DistributedSampler shard (rank, rank + num_replicas, ...;
  // padded to equal sizes) and `all_gather` (dist::ProcessGroup::all_gather:
  // [num_replicas, ...t.shape], the same call on every rank) gives each rank
  // the whole cache.
  int64_t num_replicas = 1;
  int64_t rank = 0;
  std::function<Tensor(const Tensor&)> all_gather;
};

class FeatureCache {
 public:
  // Why training `model`'s head on cached features would not be the same
  // computation as running the model ("" when it would be):
  //   a trainable backbone parameter (anything outside the head);
  //   a backbone BatchNorm that uses batch statistics in training mode
  //   (BnPolicy::Train, or track_running_stats off);
  //   a Dropout with p > 0, a forward hook, or a module of a type not known to
  //   be deterministic in the backbone;
  //   random examples (a random transform) in `train_data` (when given).
  // fit()'s own random flip (FitOptions::hflip) does not make it inexact:
  // FeatureCacheOptions::hflip caches both orientations.
  static std::string inexact_reason(const nn::Classifier& model, const data::Dataset* train_data);

  // Bytes the features of `examples` examples would take.
  static int64_t bytes_needed(const nn::Classifier& model, int64_t examples, bool hflip);

  // Runs the backbone over every example of `data` once (no autograd; over
  // this rank's share of them in a data-parallel run) and keeps the features
  // of all of them on the CPU. Errors when `data` is not deterministic or
  // the features exceed options.max_bytes. Does not check the model: call
  // inexact_reason first.
  FeatureCache(nn::Classifier& model, data::DatasetPtr data, FeatureCacheOptions options = {});

  // The features as a data set of the same size and labels as the source:
  // example i is float32 [F], or [2, F] (unflipped, flipped) with hflip.
  const data::DatasetPtr& dataset() const { return dataset_; }
  int64_t size() const { return dataset_->size(); }
  int64_t feature_size() const { return features_; }
  bool hflip() const { return hflip_; }
  double seconds() const { return seconds_; }  // time taken to fill the cache
  int64_t bytes() const;

  // For FitOptions::input_fn: maps a batch of this cache's examples to the
  // head's input [B, F]. With hflip it draws one hflip_draw per image in
  // batch order (as random_hflip) and picks the flipped features on true;
  // without, it draws nothing and returns the features.
  std::function<Tensor(const Tensor& batch, Generator& flip_gen)> input_fn() const;

 private:
  data::DatasetPtr dataset_;
  int64_t features_ = 0;
  bool hflip_ = false;
  double seconds_ = 0;
};

}  // namespace graft::train
