// MobileNetV2 (Sandler et al. 2018) exactly as torchvision 0.14's
// torchvision.models.mobilenet_v2 builds it (width_mult 1.0, round_nearest
// 8): module names, registration order, repr and initialisation follow
// torchvision.models.mobilenetv2, so a torchvision state_dict loads key for
// key ("features.0.0.weight", "features.N.conv.K...", "classifier.1.weight")
// and print(model) matches. Depthwise convolutions are Conv2d with
// groups = channels.
#pragma once

#include <cstdint>
#include <memory>

#include "nn/layers.h"
#include "nn/models/registry.h"

namespace graft::nn {

// torchvision.ops.misc.Conv2dNormActivation: Conv2d (no bias, padding
// (k - 1) / 2), BatchNorm2d, ReLU6, as children "0", "1", "2".
class Conv2dNormActivation : public Sequential {
 public:
  Conv2dNormActivation(int64_t in, int64_t out, int64_t kernel_size, int64_t stride = 1,
                       int64_t groups = 1);
};

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t inp, int64_t oup, int64_t stride, int64_t expand_ratio);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Sequential> conv;
  bool use_res_connect;
};

class MobileNetV2 : public Classifier {
 public:
  // dropout: the classifier's Dropout probability (torchvision's default 0.2).
  explicit MobileNetV2(int64_t num_classes = 1000, double dropout = 0.2);
  Tensor forward(const Tensor& x) override;

  // features, then adaptive average pooling to 1x1 and flatten: [N, 1280].
  Tensor features(const Tensor& x) override;
  int64_t feature_width() const override { return last_channel; }
  ModulePtr classifier() const override { return classifier_; }
  std::string classifier_name() const override { return "classifier"; }
  // classifier.1 becomes a fresh Linear(1280, num_classes) with PyTorch's
  // default initialisation; the Dropout stays.
  void replace_classifier(int64_t num_classes, Generator* gen = nullptr) override;

  static constexpr int64_t last_channel = 1280;
  std::shared_ptr<Sequential> features_;    // registered as "features"
  std::shared_ptr<Sequential> classifier_;  // registered as "classifier": Dropout, Linear
};

std::shared_ptr<MobileNetV2> mobilenet_v2(int64_t num_classes = 1000, double dropout = 0.2);

}  // namespace graft::nn
