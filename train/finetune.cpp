#include "train/finetune.h"

#include <cmath>
#include <sstream>

#include "nn/layers.h"
#include "optim/params.h"

namespace graft::train {

BnPolicy parse_bn_policy(const std::string& s) {
  if (s == "train") return BnPolicy::Train;
  if (s == "frozen") return BnPolicy::Frozen;
  GRAFT_FAIL("unknown BatchNorm policy '", s, "' (expected train or frozen)");
}

namespace {

double parse_number(const std::string& key, const std::string& text, const std::string& spec) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  GRAFT_CHECK(used == text.size() && !text.empty(), "--param-group '", spec, "': value '", text,
              "' of ", key, " is not a number");
  GRAFT_CHECK(std::isfinite(v) && v >= 0, "--param-group '", spec, "': ", key,
              " must be finite and >= 0, got ", text);
  return v;
}

}  // namespace

GroupSpec parse_group_spec(const std::string& spec) {
  const size_t colon = spec.rfind(':');
  GRAFT_CHECK(colon != std::string::npos && colon > 0, "--param-group '", spec,
              "': expected GLOB:key=value[,key=value...], e.g. 'layer4.*:lr=0.001'");
  GroupSpec g;
  g.glob = spec.substr(0, colon);
  std::stringstream ss(spec.substr(colon + 1));
  std::string item;
  bool any = false;
  while (std::getline(ss, item, ',')) {
    const size_t eq = item.find('=');
    GRAFT_CHECK(eq != std::string::npos, "--param-group '", spec, "': '", item,
                "' is not key=value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    const double v = parse_number(key, value, spec);
    // The optimizer's numeric group options (optim::GRAFT_PARAM_GROUP_OPTIONS).
    bool known = false;
    std::vector<std::string> names;
    optim::for_each_group_option([&](const char* option, auto member) {
      if constexpr (std::is_same_v<optim::GroupOptionType<decltype(member)>, double>) {
        names.emplace_back(option);
        if (key == option) g.options.*member = v, known = true;
      }
    });
    if (!known) {
      std::string expected = names.front();
      for (size_t i = 1; i < names.size(); ++i)
        expected += (i + 1 < names.size() ? ", " : " or ") + names[i];
      GRAFT_FAIL("--param-group '", spec, "': unknown option '", key, "' (expected ", expected,
                 ")");
    }
    any = true;
  }
  GRAFT_CHECK(any, "--param-group '", spec, "': no options given");
  return g;
}

void apply_freeze(nn::Module& model, const FinetuneOptions& o) {
  const auto named = model.named_parameters();
  for (const auto& glob : o.freeze) optim::freeze_by_glob(named, glob);
}

std::vector<optim::ParamGroup> build_param_groups(const nn::Module& model, const FinetuneOptions& o,
                                                  double base_lr) {
  const optim::NamedParams params = optim::trainable(model.named_parameters());
  GRAFT_CHECK(!params.empty(), "every parameter is frozen: nothing to train");
  std::vector<optim::ParamGroup> groups;
  if (!o.groups.empty()) {
    // Explicit groups: first matching spec wins; leftovers form the default group.
    std::vector<optim::NamedParams> members(o.groups.size());
    optim::NamedParams rest;
    std::vector<bool> matched_any(o.groups.size(), false);
    for (const auto& p : params) {
      bool placed = false;
      for (size_t g = 0; g < o.groups.size() && !placed; ++g) {
        if (glob_match(o.groups[g].glob, p.first)) {
          members[g].push_back(p);
          matched_any[g] = true;
          placed = true;
        }
      }
      if (!placed) rest.push_back(p);
    }
    for (size_t g = 0; g < o.groups.size(); ++g) {
      GRAFT_CHECK(matched_any[g], "--param-group '", o.groups[g].glob,
                  "' matches no trainable parameter");
      groups.emplace_back(members[g], o.groups[g].options);
    }
    if (!rest.empty()) groups.emplace_back(rest);
    return groups;
  }
  if (o.backbone_lr_mult == 1.0 && o.head_lr_mult == 1.0) {
    groups.emplace_back(params);
    return groups;
  }
  GRAFT_CHECK(!o.head_glob.empty(),
              "build_param_groups: a backbone or head lr multiplier needs head_glob");
  optim::NamedParams backbone, head;
  for (const auto& p : params) (glob_match(o.head_glob, p.first) ? head : backbone).push_back(p);
  if (!backbone.empty()) {
    optim::ParamGroupOptions bo;
    bo.lr = base_lr * o.backbone_lr_mult;
    groups.emplace_back(backbone, bo);
  }
  if (!head.empty()) {
    optim::ParamGroupOptions ho;
    ho.lr = base_lr * o.head_lr_mult;
    groups.emplace_back(head, ho);
  }
  return groups;
}

void apply_bn_policy(nn::Module& model, BnPolicy policy) {
  for (const auto& [name, m] : model.named_modules()) {
    auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(m);
    if (!bn) continue;
    bool all_frozen = true;
    for (const auto& p : bn->parameters(false)) all_frozen = all_frozen && !p.requires_grad();
    bn->force_eval = policy == BnPolicy::Frozen && all_frozen;
  }
}

}  // namespace graft::train
