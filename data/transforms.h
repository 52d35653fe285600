// torchvision-style image transforms (semantics of torchvision 0.14).
//
// A pipeline value is either a decoded Image (HWC uint8 RGB, what PIL holds)
// or a float32 Tensor (CHW, or NCHW for batch-level use). Image transforms
// reproduce torchvision's PIL path: Resize is PIL's bilinear resampling
// (antialiased when downscaling, 22-bit fixed point, uint8 between the
// horizontal and vertical pass) and matches torchvision+PIL bit for bit on the
// same decoded pixels. On float tensors Resize follows torchvision's tensor path
// (antialias=true: PIL's filter in float, i.e. torch's _upsample_bilinear2d_aa;
// antialias=false: plain bilinear, align_corners=False).
//
// Random transforms draw from the graft::Generator passed to apply(); give each
// loader worker its own generator (Generator::fork) for reproducible runs. The
// numbers differ from torch's RNG, the sampling procedure is torchvision's.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"
#include "data/image.h"

namespace graft::data {

using ImageOrTensor = std::variant<Image, Tensor>;

// ---- functional API ----

// torchvision's output size for Resize(size) with a single int: the shorter
// side becomes `size`, the longer one int(size * long / short).
std::array<int64_t, 2> resize_output_size(int64_t height, int64_t width, int64_t shorter);

// PIL bilinear resize (antialiased when downscaling) of an image, or of the
// region [top, top+h) x [left, left+w) of it (PIL's crop-then-resize, without
// the copy). The region must lie inside the image.
Image resize(const Image& img, int64_t out_h, int64_t out_w);
Image resized_crop(const Image& img, int64_t top, int64_t left, int64_t h, int64_t w, int64_t out_h,
                   int64_t out_w);
// Bilinear resize of a float32 CHW or NCHW tensor (torchvision tensor semantics).
Tensor resize(const Tensor& img, int64_t out_h, int64_t out_w, bool antialias = true);

// PIL crop: pixels outside the image are zero.
Image crop(const Image& img, int64_t top, int64_t left, int64_t h, int64_t w);
// torchvision center_crop: zero-pads when the image is smaller than the crop.
Image center_crop(const Image& img, int64_t h, int64_t w);
Image hflip(const Image& img);
// HWC uint8 -> CHW float32 in [0, 1].
Tensor to_tensor(const Image& img);
// (x - mean[c]) / std[c] on a float CHW or NCHW tensor (returns a new tensor).
Tensor normalize(const Tensor& x, const std::vector<float>& mean, const std::vector<float>& std);

// RandomResizedCrop.get_params: up to 10 tries of (area fraction in `scale`,
// log-uniform aspect ratio in `ratio`), then torchvision's central fallback.
struct CropBox {
  int64_t top, left, height, width;
};
CropBox random_resized_crop_params(int64_t height, int64_t width, std::array<double, 2> scale,
                                   std::array<double, 2> ratio, Generator& gen);

inline const std::vector<float> kImageNetMean = {0.485f, 0.456f, 0.406f};
inline const std::vector<float> kImageNetStd = {0.229f, 0.224f, 0.225f};

// ---- transform objects ----

class Transform {
 public:
  virtual ~Transform() = default;
  virtual ImageOrTensor apply(ImageOrTensor x, Generator& gen) const = 0;
  virtual std::string repr() const = 0;
  // True when apply() never draws from `gen`: the output is a function of the
  // input alone, so it can be computed once and cached (train::FeatureCache,
  // data::PrefixCache). False unless a transform says so: an unknown
  // transform is treated as random.
  virtual bool deterministic() const { return false; }
};
using TransformPtr = std::shared_ptr<const Transform>;

class Resize : public Transform {
 public:
  // Shorter side to `shorter`, keeping the aspect ratio.
  explicit Resize(int64_t shorter, bool antialias = true);
  // Exactly {height, width}.
  explicit Resize(std::array<int64_t, 2> size, bool antialias = true);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;
  bool deterministic() const override { return true; }

 private:
  int64_t h_, w_;  // w_ < 0: h_ is the shorter side
  bool antialias_;
};

class CenterCrop : public Transform {
 public:
  explicit CenterCrop(int64_t size) : CenterCrop(size, size) {}
  CenterCrop(int64_t height, int64_t width);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;
  bool deterministic() const override { return true; }

 private:
  int64_t h_, w_;
};

class RandomResizedCrop : public Transform {
 public:
  explicit RandomResizedCrop(int64_t size, std::array<double, 2> scale = {0.08, 1.0},
                             std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0})
      : RandomResizedCrop(size, size, scale, ratio) {}
  RandomResizedCrop(int64_t height, int64_t width, std::array<double, 2> scale,
                    std::array<double, 2> ratio);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;

 private:
  int64_t h_, w_;
  std::array<double, 2> scale_, ratio_;
};

class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;

 private:
  double p_;
};

// Brightness, contrast and saturation jitter with torchvision's tensor
// semantics on uint8 (blend in float, clamp, truncate), applied in a random
// order; factors are uniform in [max(0, 1 - v), 1 + v]. Images only.
class ColorJitter : public Transform {
 public:
  ColorJitter(double brightness = 0, double contrast = 0, double saturation = 0);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;

 private:
  double b_, c_, s_;
};

class ToTensor : public Transform {
 public:
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override { return "ToTensor()"; }
  bool deterministic() const override { return true; }
};

class Normalize : public Transform {
 public:
  explicit Normalize(std::vector<float> mean = kImageNetMean,
                     std::vector<float> std = kImageNetStd);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;
  bool deterministic() const override { return true; }
  const std::vector<float>& mean() const { return mean_; }
  const std::vector<float>& std() const { return std_; }

 private:
  std::vector<float> mean_, std_;
};

// Applies transforms in order. ToTensor directly followed by Normalize runs as
// one pass (same float operations, so the same bits).
class Compose : public Transform {
 public:
  explicit Compose(std::vector<TransformPtr> transforms);
  ImageOrTensor apply(ImageOrTensor x, Generator& gen) const override;
  std::string repr() const override;
  // Every step is deterministic.
  bool deterministic() const override;
  // The steps, after ToTensor+Normalize fusion.
  const std::vector<TransformPtr>& transforms() const { return transforms_; }
  // The reprs of the random steps, comma-separated ("" when none): what makes
  // the pipeline non-deterministic, for messages.
  std::string random_steps() const;
  // Runs the pipeline on an image and requires a tensor at the end.
  Tensor operator()(const Image& img, Generator& gen) const;

 private:
  std::vector<TransformPtr> transforms_;
};

// The ImageNet fine-tuning pipelines of the PyTorch transfer-learning tutorial:
// train = RandomResizedCrop(size) + RandomHorizontalFlip() + ToTensor() + Normalize()
// eval  = Resize(resize) + CenterCrop(size) + ToTensor() + Normalize()
std::shared_ptr<const Compose> imagenet_train_transform(int64_t size = 224);
std::shared_ptr<const Compose> imagenet_eval_transform(int64_t resize = 256, int64_t size = 224);

}  // namespace graft::data
