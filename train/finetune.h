// Fine-tuning recipes from the seed tutorials, as data: which parameters to
// freeze, how to split the trainable ones into optimizer groups, and what
// BatchNorm does with frozen layers. Used by `graft train`, `graft demo` and
// C++ callers alike.
//
//   scratch         random init, everything trains
//   finetune        pretrained weights, new head, everything trains
//   feature-extract pretrained weights, new head, only the head trains
//   backbone lr=0   everything in the optimizer, backbone group at lr 0
//   backbone 0.1x   backbone group at 0.1x the head's lr
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nn/module.h"
#include "optim/optimizer.h"

namespace graft::train {

enum class BnPolicy {
  Train,   // PyTorch's default: running stats follow the data even when frozen
  Frozen,  // BN layers whose parameters are all frozen stay in eval mode
};
BnPolicy parse_bn_policy(const std::string& s);

// One `--param-group 'GLOB:lr=F,momentum=F,weight_decay=F'`.
struct GroupSpec {
  std::string glob;
  optim::ParamGroupOptions options;
};
GroupSpec parse_group_spec(const std::string& spec);

struct FinetuneOptions {
  std::vector<std::string> freeze;  // globs; matching parameters get requires_grad=false
  std::vector<GroupSpec> groups;    // first match wins; the rest go to the default group
  // Multipliers of the base lr for the backbone (all but the head) and the
  // head. Either one != 1 splits the trainable parameters into two groups
  // (backbone first, then the head) unless explicit groups are given.
  double backbone_lr_mult = 1.0;
  double head_lr_mult = 1.0;
  // The head's parameters (nn::Classifier::head_glob(), e.g. "fc.*"); needed
  // when the multipliers split the groups.
  std::string head_glob;
  BnPolicy bn = BnPolicy::Train;
};

// Applies `freeze` to the model (errors for a pattern that matches nothing).
void apply_freeze(nn::Module& model, const FinetuneOptions& o);
// Builds the optimizer groups for the model's trainable parameters.
std::vector<optim::ParamGroup> build_param_groups(const nn::Module& model, const FinetuneOptions& o,
                                                  double base_lr);
// Marks BN layers per the policy (call after freezing; survives model.train()).
void apply_bn_policy(nn::Module& model, BnPolicy policy);

}  // namespace graft::train
