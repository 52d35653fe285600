#include "nn/models/registry.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "core/error.h"

namespace graft::nn {

namespace {

// Natural order: digit runs compare as numbers, so resnet18 < resnet101.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ei = i, ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      const std::string na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      if (na.size() != nb.size()) return na.size() < nb.size();  // no leading zeros in names
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

struct NaturalLess {
  bool operator()(const std::string& a, const std::string& b) const { return natural_less(a, b); }
};

std::map<std::string, ModelSpec, NaturalLess>& registry() {
  static std::map<std::string, ModelSpec, NaturalLess> r;
  return r;
}

}  // namespace

bool Classifier::in_head(const std::string& name) const {
  const std::string head = classifier_name();
  return name == head || name.rfind(head + ".", 0) == 0;
}

ModelRegistrar::ModelRegistrar(ModelSpec spec) {
  GRAFT_CHECK(!spec.name.empty() && spec.build && spec.matches && !spec.head_linear.empty() &&
                  !spec.types.empty(),
              "GRAFT_MODEL: '", spec.name, "' needs a name, head_linear, build, matches and types");
  const std::string name = spec.name;
  GRAFT_CHECK(registry().emplace(name, std::move(spec)).second, "GRAFT_MODEL: '", name,
              "' is registered twice");
}

std::vector<const ModelSpec*> model_specs() {
  std::vector<const ModelSpec*> out;
  for (const auto& [name, spec] : registry()) out.push_back(&spec);
  return out;
}

std::string model_names() {
  std::string s;
  for (const auto& [name, spec] : registry()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

const ModelSpec& model_spec(const std::string& arch) {
  const auto it = registry().find(arch);
  GRAFT_CHECK(it != registry().end(), "unknown architecture '", arch, "' (known: ", model_names(),
              ")");
  return it->second;
}

std::shared_ptr<Classifier> build_model(const std::string& arch, int64_t num_classes) {
  return model_spec(arch).build(num_classes);
}

std::string infer_arch(const Named<Tensor>& sd) {
  for (const auto& [name, spec] : registry())
    if (spec.matches(sd)) return name;
  return "";
}

int64_t head_classes(const Named<Tensor>& sd, const std::string& arch) {
  const std::string key = model_spec(arch).head_linear + ".weight";
  for (const auto& [k, t] : sd)
    if (k == key) return t.dim() == 2 ? t.size(0) : 0;
  return 0;
}

bool is_model_type(const std::type_info& t) {
  for (const auto& [name, spec] : registry())
    if (spec.types.front() == std::type_index(t)) return true;
  return false;
}

bool is_model_or_block_type(const std::type_info& t) {
  for (const auto& [name, spec] : registry())
    if (std::find(spec.types.begin(), spec.types.end(), std::type_index(t)) != spec.types.end())
      return true;
  return false;
}

}  // namespace graft::nn
