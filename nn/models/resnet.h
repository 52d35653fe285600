// ResNet (He et al. 2015) exactly as torchvision builds it (v1.5: the stride
// of a Bottleneck sits on its 3x3 conv). Module names, registration order,
// repr and initialisation follow torchvision.models.resnet, so a torchvision
// state_dict loads key for key and print(model) matches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/models/registry.h"

namespace graft::nn {

class BasicBlock : public Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride = 1,
             std::shared_ptr<Module> downsample = nullptr);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Module> relu;
  std::shared_ptr<Conv2d> conv2;
  std::shared_ptr<BatchNorm2d> bn2;
  std::shared_ptr<Module> downsample;  // null: identity shortcut (not registered)
};

class Bottleneck : public Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride = 1,
             std::shared_ptr<Module> downsample = nullptr);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Conv2d> conv2;
  std::shared_ptr<BatchNorm2d> bn2;
  std::shared_ptr<Conv2d> conv3;
  std::shared_ptr<BatchNorm2d> bn3;
  std::shared_ptr<Module> relu;
  std::shared_ptr<Module> downsample;
};

enum class BlockKind { Basic, Bottleneck };

class ResNet : public Classifier {
 public:
  // layers: blocks per stage (resnet18 = {2, 2, 2, 2}).
  ResNet(BlockKind block, std::vector<int64_t> layers, int64_t num_classes = 1000,
         bool zero_init_residual = false);
  Tensor forward(const Tensor& x) override;

  // Features before the classifier: [N, 512 * expansion].
  Tensor features(const Tensor& x) override;
  // 512 for resnet18/34, 2048 for 50/101/152.
  int64_t feature_width() const override { return 512 * expansion_; }
  ModulePtr classifier() const override { return fc; }
  std::string classifier_name() const override { return "fc"; }
  // A fresh Linear(feature_width(), num_classes) with PyTorch's default
  // initialisation; parameter names stay "fc.weight"/"fc.bias".
  void replace_classifier(int64_t num_classes, Generator* gen = nullptr) override;
  // The name ResNet's callers knew before the registry (tests, user code).
  void replace_head(int64_t num_classes, Generator* gen = nullptr) {
    replace_classifier(num_classes, gen);
  }

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Module> relu;
  std::shared_ptr<Module> maxpool;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<Module> avgpool;
  // Any module mapping [N, feature_width()] to logits (assignable:
  // `model->fc = std::make_shared<Linear>(512, 10)`).
  std::shared_ptr<Module> fc;

 private:
  std::shared_ptr<Sequential> make_layer(int64_t planes, int64_t blocks, int64_t stride);
  BlockKind block_;
  int64_t expansion_;
  int64_t inplanes_ = 64;
};

std::shared_ptr<ResNet> resnet18(int64_t num_classes = 1000, bool zero_init_residual = false);
std::shared_ptr<ResNet> resnet34(int64_t num_classes = 1000, bool zero_init_residual = false);
std::shared_ptr<ResNet> resnet50(int64_t num_classes = 1000, bool zero_init_residual = false);
std::shared_ptr<ResNet> resnet101(int64_t num_classes = 1000, bool zero_init_residual = false);
std::shared_ptr<ResNet> resnet152(int64_t num_classes = 1000, bool zero_init_residual = false);

// "resnet18" ... "resnet152" with zero_init_residual (nn::build_model builds
// every registered model); another name is an error listing these.
std::shared_ptr<ResNet> make_resnet(const std::string& arch, int64_t num_classes = 1000,
                                    bool zero_init_residual = false);
const std::vector<std::string>& resnet_archs();

}  // namespace graft::nn
