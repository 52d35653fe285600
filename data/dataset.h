// Datasets: indexable collections of (image tensor, label) examples.
//
// get(i, gen) must be safe to call from several threads at once (the
// DataLoader's workers do); `gen` drives random transforms and is owned by the
// caller, so a fixed seed gives the same examples whatever the worker count.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"
#include "data/transforms.h"

namespace graft::data {

struct Example {
  Tensor image;  // float32 [C, H, W]
  int64_t label = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index, Generator& gen) const = 0;
  // Convenience for deterministic transforms: a generator seeded with `index`.
  Example get(int64_t index) const;
  // Label of example i without decoding it (for splits and subsampling).
  virtual int64_t label(int64_t index) const = 0;
  virtual int64_t num_classes() const = 0;
  // True when get(i, gen) never draws from `gen` (no random transform): the
  // example is a function of i alone, so it can be computed once and cached
  // (train::FeatureCache). False unless a data set says so.
  virtual bool deterministic() const { return false; }

  // An example in two stages, for data::CachedDataset: `prefix(i)` is its
  // deterministic part (decoding and the leading deterministic transforms;
  // it draws nothing), `rest` completes it (null: the prefix is the example's
  // float tensor). get(i, gen) == rest(prefix(i), gen) bit for bit. Default:
  // none (nothing to cache).
  struct Stages {
    std::function<ImageOrTensor(int64_t)> prefix;
    TransformPtr rest;
  };
  virtual std::optional<Stages> stages() const { return std::nullopt; }

 protected:
  void check_index(int64_t index, const char* who) const;
};
using DatasetPtr = std::shared_ptr<const Dataset>;

// torchvision.datasets.ImageFolder: root/<class>/**/<image>. Classes are the
// sorted names of root's non-hidden subfolders; files are walked recursively
// in sorted order (os.walk order) and kept when their extension (compared
// case-insensitively) is one of `extensions`; hidden files and folders are
// ignored. Errors: no class folder, or a class with no image.
class ImageFolder : public Dataset {
 public:
  struct Options {
    // Applied to each decoded image; must end with a tensor (ToTensor).
    // Null: ToTensor only.
    TransformPtr transform;
    // Decode every file once at construction and drop the undecodable ones,
    // printing one "warning:" line per file to stderr. Off: a bad file throws
    // from get(), naming the file.
    bool skip_bad_images = false;
    std::vector<std::string> extensions = {".jpg", ".jpeg", ".png", ".bmp"};
  };
  explicit ImageFolder(const std::string& root, Options options);
  explicit ImageFolder(const std::string& root, TransformPtr transform = nullptr);

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Example get(int64_t index, Generator& gen) const override;
  using Dataset::get;
  int64_t label(int64_t index) const override;
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  bool deterministic() const override;
  // Decoding and the transform's leading deterministic steps, then the rest.
  std::optional<Stages> stages() const override;

  const std::string& root() const { return root_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::map<std::string, int64_t>& class_to_idx() const { return class_to_idx_; }
  // (path, class index) in dataset order.
  const std::vector<std::pair<std::string, int64_t>>& samples() const { return samples_; }
  // Number of files dropped by skip_bad_images.
  int64_t skipped() const { return skipped_; }
  // Decoded but untransformed image i.
  Image load(int64_t index) const;

 private:
  std::string root_;
  Options options_;
  std::vector<std::string> classes_;
  std::map<std::string, int64_t> class_to_idx_;
  std::vector<std::pair<std::string, int64_t>> samples_;
  int64_t skipped_ = 0;
};

// Examples held in memory: images [N, ...] (any dtype; returned as float32)
// and labels [N] (integer).
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor images, Tensor labels);
  // Loads the pair from two .npy files (io/npy.h).
  static std::shared_ptr<TensorDataset> from_npy(const std::string& images_path,
                                                 const std::string& labels_path);
  int64_t size() const override { return images_.size(0); }
  Example get(int64_t index, Generator& gen) const override;
  using Dataset::get;
  int64_t label(int64_t index) const override;
  int64_t num_classes() const override { return num_classes_; }
  bool deterministic() const override { return true; }
  const Tensor& images() const { return images_; }
  const Tensor& labels() const { return labels_; }

 private:
  Tensor images_, labels_;  // images float32 contiguous, labels int64
  int64_t num_classes_ = 0;
};

// ---- Fashion-MNIST ----

inline const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";
const std::vector<std::string>& fashion_mnist_classes();

// The demo preprocessing of Fashion-MNIST for ImageNet-shaped CNNs, on a whole
// batch at once: uint8 [N, 28, 28] -> x/255 -> bilinear resize to `size`
// (align_corners=False, torch's F.interpolate) -> (x - 0.286) / 0.353 ->
// repeated to 3 channels: float32 [N, 3, size, size].
Tensor fashion_mnist_demo_transform(const Tensor& images_u8, int64_t size = 32);

class FashionMNIST : public Dataset {
 public:
  struct Options {
    bool train = true;
    std::string root = kFashionMnistRoot;
    // Keep only these original class ids, relabelled 0..k-1 in this order
    // (empty: all 10 classes, labels unchanged).
    std::vector<int64_t> classes;
    // Output size of fashion_mnist_demo_transform; 0 keeps 28x28 [1, 28, 28]
    // scaled to [0, 1] with no normalisation.
    int64_t demo_size = 32;
  };
  explicit FashionMNIST(Options options);
  FashionMNIST() : FashionMNIST(Options{}) {}

  int64_t size() const override { return images_.size(0); }
  Example get(int64_t index, Generator& gen) const override;
  using Dataset::get;
  int64_t label(int64_t index) const override;
  int64_t num_classes() const override { return num_classes_; }
  bool deterministic() const override { return true; }
  std::optional<Stages> stages() const override;
  // The raw images uint8 [N, 28, 28] (after class filtering) and labels int64
  // [N]; preprocess(images().narrow(0, i, n)) is the batch-level fast path.
  const Tensor& images() const { return images_; }
  Tensor preprocess(const Tensor& images_u8) const;
  const Tensor& labels() const { return labels_; }
  const std::vector<std::string>& classes() const { return class_names_; }

 private:
  Tensor images_, labels_;
  int64_t num_classes_ = 0;
  int64_t demo_size_ = 32;
  std::vector<std::string> class_names_;
};

// ---- views over datasets ----

class Subset : public Dataset {
 public:
  Subset(DatasetPtr base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t index, Generator& gen) const override;
  using Dataset::get;
  int64_t label(int64_t index) const override;
  int64_t num_classes() const override { return base_->num_classes(); }
  bool deterministic() const override { return base_->deterministic(); }
  std::optional<Stages> stages() const override;
  const std::vector<int64_t>& indices() const { return indices_; }
  const DatasetPtr& base() const { return base_; }

 private:
  DatasetPtr base_;
  std::vector<int64_t> indices_;
};

// The deterministic prefix of a data set's examples (Dataset::stages:
// decoding, resizing, cropping, normalising...) computed once and held in
// memory; get() applies only the random rest, so every epoch gives the
// examples the base would, bit for bit, for the same generator.
class CachedDataset : public Dataset {
 public:
  struct Options {
    int64_t max_bytes = int64_t{2} << 30;  // memory budget for the cached prefixes
    int num_workers = 0;                   // threads filling the cache (0: this one)
  };
  // The cache of `base`, or null with `*why` set when there is nothing to
  // cache (no stages) or it does not fit in options.max_bytes (it stops
  // filling once over).
  static std::shared_ptr<CachedDataset> make(DatasetPtr base, Options options, std::string* why);

  int64_t size() const override { return static_cast<int64_t>(entries_.size()); }
  Example get(int64_t index, Generator& gen) const override;
  using Dataset::get;
  int64_t label(int64_t index) const override { return base_->label(index); }
  int64_t num_classes() const override { return base_->num_classes(); }
  bool deterministic() const override { return base_->deterministic(); }
  int64_t bytes() const { return bytes_; }
  // The part still applied per example (null: none).
  const TransformPtr& rest() const { return rest_; }

 private:
  CachedDataset() = default;
  DatasetPtr base_;
  std::vector<ImageOrTensor> entries_;
  TransformPtr rest_;
  int64_t bytes_ = 0;
};

// Random split into (train, val): val gets round(val_fraction * size) examples,
// chosen by a permutation drawn from `seed`. Both keep the base's order.
std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> train_val_split(DatasetPtr base,
                                                                            double val_fraction,
                                                                            uint64_t seed);

// At most k examples of each class, chosen at random with `seed`, in dataset
// order. Errors when a class has fewer than k examples and `strict` is set.
std::shared_ptr<Subset> per_class_subset(DatasetPtr base, int64_t k, uint64_t seed,
                                         bool strict = false);

}  // namespace graft::data
