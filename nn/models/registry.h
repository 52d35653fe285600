// The model registry: every image classifier graft can build, by name
// ("resnet18", "mobilenet_v2"), with one interface for the callers that
// fine-tune, cache features, load checkpoints and print help.
//
// A model family registers its architectures from its own .cpp file with
// GRAFT_MODEL (as cli/command.h registers sub-commands), so adding a model is
// its header, its .cpp and its tests: no caller names a family.
//
// Every registered model is a Classifier: a backbone (features()) followed by
// one replaceable head module whose last layer is a Linear (its weight rows
// are the classes). The names of both follow torchvision's state_dict keys.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <vector>

#include "core/generator.h"
#include "nn/module.h"

namespace graft::nn {

class Classifier : public Module {
 public:
  using Module::Module;

  // Everything before the head: [N, feature_width()] (what the head sees,
  // and what train::FeatureCache caches).
  virtual Tensor features(const Tensor& x) = 0;
  // Input width of the head (512 for resnet18, 1280 for mobilenet_v2).
  virtual int64_t feature_width() const = 0;

  // The head module ("fc": a Linear; "classifier": Dropout + Linear) and its
  // registered name; the head may be any module mapping features to logits.
  virtual ModulePtr classifier() const = 0;
  virtual std::string classifier_name() const = 0;
  // Swaps the head for a fresh one with `num_classes` outputs and PyTorch's
  // default Linear initialisation; parameter names do not change.
  virtual void replace_classifier(int64_t num_classes, Generator* gen = nullptr) = 0;

  // The glob of the head's parameters ("fc.*"), for parameter groups and freezing.
  std::string head_glob() const { return classifier_name() + ".*"; }
  // Whether the dotted parameter or module name lies in the head.
  bool in_head(const std::string& name) const;
};

struct ModelSpec {
  std::string name;    // "resnet18"
  std::string family;  // "ResNet", "MobileNetV2"
  // The head's Linear as a dotted module name ("fc", "classifier.1"):
  // `<head_linear>.weight` has one row per class.
  std::string head_linear;
  std::function<std::shared_ptr<Classifier>(int64_t num_classes)> build;
  // Whether a state_dict's keys have exactly this architecture's layout
  // (which block counts, which block kind): infer_arch's test.
  std::function<bool(const Named<Tensor>& sd)> matches;
  // The C++ types the family builds, the model class first, then its own
  // blocks. Each one's forward() is a fixed function of its input, its state
  // and its children's outputs: train::FeatureCache relies on that.
  std::vector<std::type_index> types;
};

// Every registered model, in name order with digit runs compared as numbers
// ("mobilenet_v2", "resnet18", "resnet34", ..., "resnet152").
std::vector<const ModelSpec*> model_specs();
// "mobilenet_v2, resnet18, resnet34, resnet50, resnet101, resnet152".
std::string model_names();
// The spec of `arch`; an unknown name is an error listing the known ones.
const ModelSpec& model_spec(const std::string& arch);
// model_spec(arch).build(num_classes).
std::shared_ptr<Classifier> build_model(const std::string& arch, int64_t num_classes);
// The registered architecture whose layout the keys have ("" when none fits).
std::string infer_arch(const Named<Tensor>& sd);
// Rows of `arch`'s head weight in `sd` (0 when absent or not 2-D).
int64_t head_classes(const Named<Tensor>& sd, const std::string& arch);
// Whether `t` is a registered model class (exactly: a subclass may override
// forward()), and whether it is a registered model's or block's class.
bool is_model_type(const std::type_info& t);
bool is_model_or_block_type(const std::type_info& t);

struct ModelRegistrar {
  explicit ModelRegistrar(ModelSpec spec);
};

}  // namespace graft::nn

#define GRAFT_MODEL_CONCAT2(a, b) a##b
#define GRAFT_MODEL_CONCAT(a, b) GRAFT_MODEL_CONCAT2(a, b)
// GRAFT_MODEL({.name = "resnet18", ...}) at namespace scope in the model's .cpp.
#define GRAFT_MODEL(...)                                 \
  static ::graft::nn::ModelRegistrar GRAFT_MODEL_CONCAT( \
      graft_model_, __LINE__)(::graft::nn::ModelSpec __VA_ARGS__)
