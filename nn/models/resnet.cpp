#include "nn/models/resnet.h"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "core/autograd.h"
#include "core/ops.h"
#include "nn/init.h"

namespace graft::nn {

namespace {

std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return std::make_shared<Conv2d>(in, out, 3, stride, /*padding=*/1, /*dilation=*/1,
                                  /*groups=*/1, /*bias=*/false);
}

std::shared_ptr<Conv2d> conv1x1(int64_t in, int64_t out, int64_t stride = 1) {
  return std::make_shared<Conv2d>(in, out, 1, stride, 0, 1, 1, /*bias=*/false);
}

// out += identity, then ReLU. The sum is in place only when no graph is
// recorded through `out` (inference): it saves a full activation copy.
Tensor residual_relu(Tensor out, const Tensor& identity) {
  if (!autograd::any_requires_grad({&out, &identity})) {
    add_(out, identity);
    return relu_(out);
  }
  return relu(add(out, identity));
}

}  // namespace

// ---------------------------------------------------------------- blocks

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, std::shared_ptr<Module> ds)
    : Module("BasicBlock") {
  conv1 = conv3x3(inplanes, planes, stride);
  bn1 = std::make_shared<BatchNorm2d>(planes);
  relu = std::make_shared<ReLU>(true);
  conv2 = conv3x3(planes, planes);
  bn2 = std::make_shared<BatchNorm2d>(planes);
  downsample = std::move(ds);
  register_module("conv1", &conv1);
  register_module("bn1", &bn1);
  register_module("relu", &relu);
  register_module("conv2", &conv2);
  register_module("bn2", &bn2);
  if (downsample) register_module("downsample", &downsample);
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = (*relu)((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  const Tensor identity = downsample ? (*downsample)(x) : x;
  return residual_relu(out, identity);
}

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, std::shared_ptr<Module> ds)
    : Module("Bottleneck") {
  const int64_t width = planes;  // groups=1, base_width=64
  conv1 = conv1x1(inplanes, width);
  bn1 = std::make_shared<BatchNorm2d>(width);
  conv2 = conv3x3(width, width, stride);
  bn2 = std::make_shared<BatchNorm2d>(width);
  conv3 = conv1x1(width, planes * expansion);
  bn3 = std::make_shared<BatchNorm2d>(planes * expansion);
  relu = std::make_shared<ReLU>(true);
  downsample = std::move(ds);
  register_module("conv1", &conv1);
  register_module("bn1", &bn1);
  register_module("conv2", &conv2);
  register_module("bn2", &bn2);
  register_module("conv3", &conv3);
  register_module("bn3", &bn3);
  register_module("relu", &relu);
  if (downsample) register_module("downsample", &downsample);
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = (*relu)((*bn1)((*conv1)(x)));
  out = (*relu)((*bn2)((*conv2)(out)));
  out = (*bn3)((*conv3)(out));
  const Tensor identity = downsample ? (*downsample)(x) : x;
  return residual_relu(out, identity);
}

// ---------------------------------------------------------------- ResNet

ResNet::ResNet(BlockKind block, std::vector<int64_t> layers, int64_t num_classes,
               bool zero_init_residual)
    : Classifier("ResNet"),
      block_(block),
      expansion_(block == BlockKind::Basic ? BasicBlock::expansion : Bottleneck::expansion) {
  GRAFT_CHECK(layers.size() == 4, "ResNet: expected 4 stage sizes, got ", layers.size());
  GRAFT_CHECK(num_classes > 0, "ResNet: num_classes must be positive, got ", num_classes);
  conv1 = std::make_shared<Conv2d>(3, 64, 7, 2, 3, 1, 1, /*bias=*/false);
  bn1 = std::make_shared<BatchNorm2d>(64);
  relu = std::make_shared<ReLU>(true);
  maxpool = std::make_shared<MaxPool2d>(3, 2, 1);
  layer1 = make_layer(64, layers[0], 1);
  layer2 = make_layer(128, layers[1], 2);
  layer3 = make_layer(256, layers[2], 2);
  layer4 = make_layer(512, layers[3], 2);
  avgpool = std::make_shared<AdaptiveAvgPool2d>(1, 1);
  fc = std::make_shared<Linear>(512 * expansion_, num_classes);
  register_module("conv1", &conv1);
  register_module("bn1", &bn1);
  register_module("relu", &relu);
  register_module("maxpool", &maxpool);
  register_module("layer1", &layer1);
  register_module("layer2", &layer2);
  register_module("layer3", &layer3);
  register_module("layer4", &layer4);
  register_module("avgpool", &avgpool);
  register_module("fc", &fc);

  // torchvision: convs kaiming_normal_(fan_out, relu), BN weight 1 / bias 0
  // (already BatchNorm2d's defaults); the Linear keeps its own default init.
  apply([](Module& m) {
    if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
      init::kaiming_normal_(conv->weight, 0, init::FanMode::FanOut, init::Nonlinearity::ReLU);
    } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) {
      init::ones_(bn->weight);
      init::zeros_(bn->bias);
    }
  });
  // Zero the last BN of each residual branch so every block starts as the
  // identity (https://arxiv.org/abs/1706.02677).
  if (zero_init_residual) {
    apply([](Module& m) {
      if (auto* b = dynamic_cast<Bottleneck*>(&m))
        init::zeros_(b->bn3->weight);
      else if (auto* bb = dynamic_cast<BasicBlock*>(&m))
        init::zeros_(bb->bn2->weight);
    });
  }
}

std::shared_ptr<Sequential> ResNet::make_layer(int64_t planes, int64_t blocks, int64_t stride) {
  GRAFT_CHECK(blocks > 0, "ResNet: every stage needs at least one block, got ", blocks);
  std::shared_ptr<Module> ds;
  if (stride != 1 || inplanes_ != planes * expansion_) {
    ds = std::make_shared<Sequential>(
        std::initializer_list<ModulePtr>{conv1x1(inplanes_, planes * expansion_, stride),
                                         std::make_shared<BatchNorm2d>(planes * expansion_)});
  }
  auto seq = std::make_shared<Sequential>();
  auto make_block = [&](int64_t in, int64_t s, std::shared_ptr<Module> d) -> ModulePtr {
    if (block_ == BlockKind::Basic)
      return std::make_shared<BasicBlock>(in, planes, s, std::move(d));
    return std::make_shared<Bottleneck>(in, planes, s, std::move(d));
  };
  seq->push_back(make_block(inplanes_, stride, ds));
  inplanes_ = planes * expansion_;
  for (int64_t i = 1; i < blocks; ++i) seq->push_back(make_block(inplanes_, 1, nullptr));
  return seq;
}

Tensor ResNet::features(const Tensor& x) {
  GRAFT_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet: expected an input batch [N, 3, H, W], got ",
              shape_str(x.sizes()));
  Tensor y = (*maxpool)((*relu)((*bn1)((*conv1)(x))));
  y = (*layer4)((*layer3)((*layer2)((*layer1)(y))));
  return (*avgpool)(y).flatten(1);
}

Tensor ResNet::forward(const Tensor& x) {
  GRAFT_CHECK(fc != nullptr, "ResNet: the classifier head 'fc' is not set");
  return (*fc)(features(x));
}

void ResNet::replace_classifier(int64_t num_classes, Generator* gen) {
  GRAFT_CHECK(num_classes > 0, "ResNet::replace_head: num_classes must be positive, got ",
              num_classes);
  fc = std::make_shared<Linear>(feature_width(), num_classes, true, gen);
  fc->train(is_training());
}

// ---------------------------------------------------------------- factories

namespace {

struct Layout {
  const char* name;
  BlockKind block;
  std::array<int64_t, 4> layers;
};
constexpr std::array<Layout, 5> kLayouts = {{
    {"resnet18", BlockKind::Basic, {2, 2, 2, 2}},
    {"resnet34", BlockKind::Basic, {3, 4, 6, 3}},
    {"resnet50", BlockKind::Bottleneck, {3, 4, 6, 3}},
    {"resnet101", BlockKind::Bottleneck, {3, 4, 23, 3}},
    {"resnet152", BlockKind::Bottleneck, {3, 8, 36, 3}},
}};

std::shared_ptr<ResNet> build(const Layout& l, int64_t num_classes, bool zero_init_residual) {
  return std::make_shared<ResNet>(l.block, std::vector<int64_t>(l.layers.begin(), l.layers.end()),
                                  num_classes, zero_init_residual);
}

// Blocks per stage and block kind of a state_dict's "layerS.B...." keys.
bool has_layout(const Named<Tensor>& sd, const Layout& l) {
  std::array<int64_t, 4> blocks{};
  bool bottleneck = false;
  for (const auto& [k, t] : sd) {
    if (k.size() < 8 || k.rfind("layer", 0) != 0 || k[6] != '.') continue;
    const int layer = k[5] - '1';
    if (layer < 0 || layer > 3) continue;
    const int64_t block = std::atoll(k.c_str() + 7);
    blocks[static_cast<size_t>(layer)] = std::max(blocks[static_cast<size_t>(layer)], block + 1);
    bottleneck = bottleneck || k.find(".conv3.") != std::string::npos;
  }
  return blocks == l.layers && bottleneck == (l.block == BlockKind::Bottleneck);
}

#define GRAFT_RESNET(I)                                                                        \
  GRAFT_MODEL({.name = kLayouts[I].name,                                                       \
               .family = "ResNet",                                                             \
               .head_linear = "fc",                                                            \
               .build = [](int64_t n) { return build(kLayouts[I], n, false); },                \
               .matches = [](const Named<Tensor>& sd) { return has_layout(sd, kLayouts[I]); }, \
               .types = {typeid(ResNet), typeid(BasicBlock), typeid(Bottleneck)}})
GRAFT_RESNET(0);
GRAFT_RESNET(1);
GRAFT_RESNET(2);
GRAFT_RESNET(3);
GRAFT_RESNET(4);
#undef GRAFT_RESNET

}  // namespace

std::shared_ptr<ResNet> resnet18(int64_t n, bool z) { return build(kLayouts[0], n, z); }
std::shared_ptr<ResNet> resnet34(int64_t n, bool z) { return build(kLayouts[1], n, z); }
std::shared_ptr<ResNet> resnet50(int64_t n, bool z) { return build(kLayouts[2], n, z); }
std::shared_ptr<ResNet> resnet101(int64_t n, bool z) { return build(kLayouts[3], n, z); }
std::shared_ptr<ResNet> resnet152(int64_t n, bool z) { return build(kLayouts[4], n, z); }

const std::vector<std::string>& resnet_archs() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Layout& l : kLayouts) v.emplace_back(l.name);
    return v;
  }();
  return names;
}

std::shared_ptr<ResNet> make_resnet(const std::string& arch, int64_t num_classes,
                                    bool zero_init_residual) {
  for (const Layout& l : kLayouts)
    if (arch == l.name) return build(l, num_classes, zero_init_residual);
  std::string known;
  for (const auto& n : resnet_archs()) known += (known.empty() ? "" : ", ") + n;
  GRAFT_FAIL("unknown ResNet '", arch, "' (known: ", known, ")");
}

}  // namespace graft::nn
