#include "nn/models/mobilenet_v2.h"

#include <algorithm>
#include <array>

#include "core/ops.h"
#include "core/ops_nn.h"
#include "nn/init.h"

namespace graft::nn {

namespace {

// torchvision's _make_divisible: v rounded to the nearest multiple of
// `divisor`, never below 90% of v (with width_mult 1.0 every channel count
// here is already a multiple of 8 and comes back unchanged).
int64_t make_divisible(double v, int64_t divisor) {
  int64_t r = std::max(divisor, (static_cast<int64_t>(v + divisor / 2.0) / divisor) * divisor);
  if (static_cast<double>(r) < 0.9 * v) r += divisor;
  return r;
}

struct Stage {
  int64_t t, c, n, s;  // expansion, output channels, blocks, first stride
};
constexpr std::array<Stage, 7> kStages = {{{1, 16, 1, 1},
                                           {6, 24, 2, 2},
                                           {6, 32, 3, 2},
                                           {6, 64, 4, 2},
                                           {6, 96, 3, 1},
                                           {6, 160, 3, 2},
                                           {6, 320, 1, 1}}};
constexpr int64_t kRoundNearest = 8;
// features.0 plus one entry per block plus the last 1x1 conv: features.18.
constexpr int64_t kFeatureModules = 19;

}  // namespace

Conv2dNormActivation::Conv2dNormActivation(int64_t in, int64_t out, int64_t kernel_size,
                                           int64_t stride, int64_t groups)
    : Sequential("Conv2dNormActivation",
                 {std::make_shared<Conv2d>(in, out, kernel_size, stride, (kernel_size - 1) / 2,
                                           /*dilation=*/1, groups, /*bias=*/false),
                  std::make_shared<BatchNorm2d>(out), std::make_shared<ReLU6>(true)}) {}

InvertedResidual::InvertedResidual(int64_t inp, int64_t oup, int64_t stride, int64_t expand_ratio)
    : Module("InvertedResidual"), use_res_connect(stride == 1 && inp == oup) {
  GRAFT_CHECK(stride == 1 || stride == 2, "InvertedResidual: stride must be 1 or 2, got ", stride);
  const int64_t hidden = inp * expand_ratio;
  conv = std::make_shared<Sequential>();
  if (expand_ratio != 1) conv->push_back(std::make_shared<Conv2dNormActivation>(inp, hidden, 1));
  conv->push_back(std::make_shared<Conv2dNormActivation>(hidden, hidden, 3, stride, hidden));
  conv->push_back(std::make_shared<Conv2d>(hidden, oup, 1, 1, 0, 1, 1, /*bias=*/false));
  conv->push_back(std::make_shared<BatchNorm2d>(oup));
  register_module("conv", &conv);
}

Tensor InvertedResidual::forward(const Tensor& x) {
  return use_res_connect ? add(x, (*conv)(x)) : (*conv)(x);
}

MobileNetV2::MobileNetV2(int64_t num_classes, double dropout) : Classifier("MobileNetV2") {
  GRAFT_CHECK(num_classes > 0, "MobileNetV2: num_classes must be positive, got ", num_classes);
  int64_t input_channel = make_divisible(32, kRoundNearest);
  features_ = std::make_shared<Sequential>();
  features_->push_back(std::make_shared<Conv2dNormActivation>(3, input_channel, 3, 2));
  for (const Stage& st : kStages) {
    const int64_t out = make_divisible(static_cast<double>(st.c), kRoundNearest);
    for (int64_t i = 0; i < st.n; ++i) {
      features_->push_back(
          std::make_shared<InvertedResidual>(input_channel, out, i == 0 ? st.s : 1, st.t));
      input_channel = out;
    }
  }
  features_->push_back(std::make_shared<Conv2dNormActivation>(input_channel, last_channel, 1));
  GRAFT_CHECK(static_cast<int64_t>(features_->size()) == kFeatureModules, "MobileNetV2: built ",
              features_->size(), " feature modules");
  classifier_ = std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<Dropout>(dropout), std::make_shared<Linear>(last_channel, num_classes)});
  register_module("features", &features_);
  register_module("classifier", &classifier_);

  // torchvision: convs kaiming_normal_(fan_out) (leaky_relu with a=0: the
  // ReLU gain sqrt(2)) and zero bias, BN weight 1 / bias 0, Linear
  // normal(0, 0.01) and zero bias.
  apply([](Module& m) {
    if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
      init::kaiming_normal_(conv->weight, 0, init::FanMode::FanOut, init::Nonlinearity::ReLU);
      if (conv->bias.defined()) init::zeros_(conv->bias);
    } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) {
      init::ones_(bn->weight);
      init::zeros_(bn->bias);
    } else if (auto* fc = dynamic_cast<Linear*>(&m)) {
      init::normal_(fc->weight, 0, 0.01);
      init::zeros_(fc->bias);
    }
  });
}

Tensor MobileNetV2::features(const Tensor& x) {
  GRAFT_CHECK(x.dim() == 4 && x.size(1) == 3,
              "MobileNetV2: expected an input batch [N, 3, H, W], got ", shape_str(x.sizes()));
  return F::adaptive_avg_pool2d((*features_)(x), 1, 1).flatten(1);
}

Tensor MobileNetV2::forward(const Tensor& x) {
  GRAFT_CHECK(classifier_ != nullptr, "MobileNetV2: the classifier is not set");
  return (*classifier_)(features(x));
}

void MobileNetV2::replace_classifier(int64_t num_classes, Generator* gen) {
  GRAFT_CHECK(num_classes > 0,
              "MobileNetV2::replace_classifier: num_classes must be positive, got ", num_classes);
  auto fc = std::make_shared<Linear>(last_channel, num_classes, true, gen);
  fc->train(is_training());
  classifier_->replace_module("1", fc);
}

std::shared_ptr<MobileNetV2> mobilenet_v2(int64_t num_classes, double dropout) {
  return std::make_shared<MobileNetV2>(num_classes, dropout);
}

namespace {

// torchvision's key layout: features.0 ... features.18 and classifier.1.
bool is_mobilenet_v2(const Named<Tensor>& sd) {
  bool last = false, head = false, past = false;
  for (const auto& [k, t] : sd) {
    last = last || k == "features.18.0.weight";
    head = head || k == "classifier.1.weight";
    past = past || k.rfind("features.19.", 0) == 0;
  }
  return last && head && !past;
}

GRAFT_MODEL({.name = "mobilenet_v2",
             .family = "MobileNetV2",
             .head_linear = "classifier.1",
             .build = [](int64_t n) { return mobilenet_v2(n); },
             .matches = is_mobilenet_v2,
             .types = {typeid(MobileNetV2), typeid(InvertedResidual),
                       typeid(Conv2dNormActivation)}});

}  // namespace

}  // namespace graft::nn
