#include "train/feature_cache.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <typeinfo>

#include "core/autograd.h"
#include "core/ops.h"
#include "data/loader.h"
#include "nn/layers.h"
#include "train/fit.h"

namespace graft::train {

namespace {

// The cached features: example i is row i of `features` ([N, F] or [N, 2, F]).
class FeatureSet : public data::Dataset {
 public:
  FeatureSet(Tensor features, std::vector<int64_t> labels, int64_t classes)
      : features_(std::move(features)), labels_(std::move(labels)), classes_(classes) {}
  int64_t size() const override { return features_.size(0); }
  data::Example get(int64_t index, Generator&) const override {
    check_index(index, "FeatureCache");
    // A plain copy (clone() would open an OpenMP region per example).
    Tensor out = empty(Shape(features_.sizes().begin() + 1, features_.sizes().end()));
    const int64_t n = out.numel();
    std::memcpy(out.data_ptr<float>(), features_.data_ptr<float>() + index * n,
                static_cast<size_t>(n) * sizeof(float));
    return {std::move(out), labels_[static_cast<size_t>(index)]};
  }
  using Dataset::get;
  int64_t label(int64_t index) const override {
    check_index(index, "FeatureCache");
    return labels_[static_cast<size_t>(index)];
  }
  int64_t num_classes() const override { return classes_; }
  bool deterministic() const override { return true; }
  const Tensor& features() const { return features_; }

 private:
  Tensor features_;
  std::vector<int64_t> labels_;
  int64_t classes_;
};

// Module types whose forward pass is a function of its input and state alone
// (given the BatchNorm and Dropout conditions checked separately): these
// layers, and the registered models and their blocks (nn::ModelSpec::types).
// Exact types: a subclass may override forward().
bool known_deterministic(const nn::Module& m) {
  const std::type_info& t = typeid(m);
  return nn::is_model_or_block_type(t) || t == typeid(nn::ReLU6) || t == typeid(nn::Sequential) ||
         t == typeid(nn::Conv2d) || t == typeid(nn::BatchNorm2d) || t == typeid(nn::ReLU) ||
         t == typeid(nn::MaxPool2d) || t == typeid(nn::AdaptiveAvgPool2d) ||
         t == typeid(nn::Identity) || t == typeid(nn::Flatten) || t == typeid(nn::Dropout);
}

}  // namespace

std::string FeatureCache::inexact_reason(const nn::Classifier& model,
                                         const data::Dataset* train_data) {
  if (!nn::is_model_type(typeid(model)))
    return "the model is a " + model.type_name() + " of C++ type " + typeid(model).name() +
           ", whose forward pass may differ from features() + " + model.classifier_name();
  if (model.has_hooks()) return "the model has a forward hook, which cached features would skip";
  for (const auto& [name, p] : model.named_parameters())
    if (!model.in_head(name) && p.requires_grad())
      return "backbone parameter '" + name + "' is trainable (only the head '" +
             model.classifier_name() + "' may train)";
  for (const auto& [name, m] : model.named_modules()) {
    if (name.empty() || model.in_head(name)) continue;
    if (m->has_hooks())
      return "backbone module '" + name + "' has a forward hook, which cached features would skip";
    if (!known_deterministic(*m))
      return "backbone module '" + name + "' is a " + m->type_name() +
             ", not known to give the same output for the same input";
    if (const auto* bn = dynamic_cast<const nn::BatchNorm2d*>(m.get())) {
      if (!bn->track_running_stats)
        return "backbone BatchNorm '" + name +
               "' has no running statistics, so it normalises with each batch's";
      if (!bn->force_eval)
        return "backbone BatchNorm '" + name +
               "' normalises with batch statistics in training mode (BN policy 'train'; "
               "'frozen' keeps a frozen backbone's BN in eval mode)";
    }
    if (const auto* d = dynamic_cast<const nn::Dropout*>(m.get()); d && d->p > 0)
      return "backbone module '" + name + "' is a Dropout (random in training mode)";
  }
  if (train_data && !train_data->deterministic())
    return "the training examples are random (a random transform, i.e. data augmentation): the "
           "backbone sees different inputs every epoch";
  return {};
}

int64_t FeatureCache::bytes_needed(const nn::Classifier& model, int64_t examples, bool hflip) {
  return examples * (hflip ? 2 : 1) * model.feature_width() * static_cast<int64_t>(sizeof(float));
}

int64_t FeatureCache::bytes() const {
  return static_cast<const FeatureSet&>(*dataset_).features().numel() *
         static_cast<int64_t>(sizeof(float));
}

FeatureCache::FeatureCache(nn::Classifier& model, data::DatasetPtr data, FeatureCacheOptions o)
    : features_(model.feature_width()), hflip_(o.hflip) {
  GRAFT_CHECK(data, "FeatureCache: null data set");
  GRAFT_CHECK(data->deterministic(),
              "FeatureCache: the data set's examples are random (a random transform); cached "
              "features would freeze one draw");
  GRAFT_CHECK(o.batch_size > 0, "FeatureCache: batch_size must be positive");
  const int64_t n = data->size();
  const int64_t need = bytes_needed(model, n, o.hflip);
  GRAFT_CHECK(need <= o.max_bytes, "FeatureCache: the features of ", n, " examples take ",
              need >> 20, " MiB, over the budget of ", o.max_bytes >> 20, " MiB");
  GRAFT_CHECK(o.num_replicas >= 1 && o.rank >= 0 && o.rank < o.num_replicas, "FeatureCache: rank ",
              o.rank, " outside num_replicas ", o.num_replicas);
  GRAFT_CHECK(o.num_replicas == 1 || o.all_gather,
              "FeatureCache: num_replicas > 1 needs all_gather");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t views = o.hflip ? 2 : 1, world = o.num_replicas;
  // This rank's rows: example rank + j * world is row j (the padded shard,
  // so every rank has `per` rows to gather).
  const int64_t per = (n + world - 1) / world;
  Tensor mine = empty({per, views, features_});
  Tensor mine_labels = empty({per}, opts(DType::Int64));
  float* dst = mine.data_ptr<float>();
  int64_t* label_dst = mine_labels.data_ptr<int64_t>();

  data::DataLoader::Options lo;
  lo.batch_size = o.batch_size;
  lo.num_workers = o.num_workers;
  lo.num_replicas = world;
  lo.rank = o.rank;
  data::DataLoader loader(data, lo);
  const bool was_training = model.is_training();
  model.train(o.train_mode);
  NoGradGuard no_grad;
  int64_t row = 0;
  try {
    loader.start(0);
    data::Batch b;
    while (loader.next(b)) {
      const int64_t bs = b.labels.numel();
      for (int64_t v = 0; v < views; ++v) {
        // The flipped view is random_hflip's flip of every image (same bits).
        const Tensor x = v == 0 ? b.images : hflip_images(b.images, std::vector<char>());
        const Tensor f = model.features(x.to(o.device)).cpu().contiguous();
        GRAFT_CHECK(f.dim() == 2 && f.size(0) == bs && f.size(1) == features_,
                    "FeatureCache: the backbone gave ", shape_str(f.sizes()), " for ", bs,
                    " images; expected [", bs, ", ", features_, "]");
        const float* src = f.data_ptr<float>();
        for (int64_t i = 0; i < bs; ++i)
          std::memcpy(dst + ((row + i) * views + v) * features_, src + i * features_,
                      static_cast<size_t>(features_) * sizeof(float));
      }
      const auto l = b.labels.to_vector<int64_t>();
      std::copy(l.begin(), l.end(), label_dst + row);
      row += bs;
    }
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  GRAFT_CHECK(row == per, "FeatureCache: the loader gave ", row, " of ", per, " examples");
  // Example i is row i / world of rank i % world's rows.
  const Tensor rows = (world > 1 ? o.all_gather(mine) : mine.unsqueeze(0)).contiguous();
  const Tensor row_labels = world > 1 ? o.all_gather(mine_labels) : mine_labels.unsqueeze(0);
  GRAFT_CHECK(rows.dim() == 4 && rows.size(0) == world && rows.size(1) == per &&
                  row_labels.numel() == world * per,
              "FeatureCache: all_gather gave ", shape_str(rows.sizes()), " for ", world,
              " ranks of ", per, " rows");
  Tensor all = o.hflip ? empty({n, 2, features_}) : empty({n, features_});
  const float* from = rows.data_ptr<float>();
  const auto gathered_labels = row_labels.to_vector<int64_t>();
  std::vector<int64_t> labels(static_cast<size_t>(n));
  const int64_t row_floats = views * features_;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = (i % world) * per + i / world;
    std::memcpy(all.data_ptr<float>() + i * row_floats, from + at * row_floats,
                static_cast<size_t>(row_floats) * sizeof(float));
    labels[static_cast<size_t>(i)] = gathered_labels[static_cast<size_t>(at)];
  }
  dataset_ = std::make_shared<FeatureSet>(all, std::move(labels), data->num_classes());
  seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::function<Tensor(const Tensor&, Generator&)> FeatureCache::input_fn() const {
  const int64_t f = features_;
  if (!hflip_)
    return [f](const Tensor& batch, Generator&) {
      GRAFT_CHECK(batch.dim() == 2 && batch.size(1) == f, "FeatureCache: expected a batch [B, ", f,
                  "] of cached features, got ", shape_str(batch.sizes()));
      return batch;
    };
  return [f](const Tensor& batch, Generator& gen) {
    GRAFT_CHECK(batch.dim() == 3 && batch.size(1) == 2 && batch.size(2) == f,
                "FeatureCache: expected a batch [B, 2, ", f, "] of cached features, got ",
                shape_str(batch.sizes()));
    const Tensor in = batch.contiguous();
    const int64_t bs = in.size(0);
    Tensor out = empty({bs, f});
    const float* src = in.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    for (int64_t i = 0; i < bs; ++i) {
      const int64_t v = hflip_draw(gen) ? 1 : 0;
      std::memcpy(dst + i * f, src + (i * 2 + v) * f, static_cast<size_t>(f) * sizeof(float));
    }
    return out;
  };
}

}  // namespace graft::train
