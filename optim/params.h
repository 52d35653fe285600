// Choosing what to fine-tune from a model's named parameters
// (Module::named_parameters() order): glob selection, index ranges, freezing,
// and the "Params to learn" summary the PyTorch fine-tuning tutorial prints.
//
//   auto named = model.named_parameters();
//   freeze_all(named);
//   unfreeze_by_glob(named, "fc.*");
//   SGD opt(trainable(named), {.lr = 0.001, .momentum = 0.9});
//   std::cout << params_to_learn(opt);
#pragma once

#include <cstdint>
#include <string>

#include "core/glob.h"  // glob_match, used by the group selection below
#include "optim/optimizer.h"

namespace graft::optim {

// Parameters whose name matches `pattern`, in order. Errors when none match
// (a typo in a pattern must not silently select nothing).
NamedParams select_by_glob(const NamedParams& named, const std::string& pattern);
// Parameters whose name does not match `pattern` (errors when the pattern matches nothing).
NamedParams exclude_by_glob(const NamedParams& named, const std::string& pattern);
// Parameters [begin, end) by position; negative indices count from the end
// (select_range(named, -2, n) = the last two).
NamedParams select_range(const NamedParams& named, int64_t begin, int64_t end);
inline NamedParams first_k(const NamedParams& named, int64_t k) {
  return select_range(named, 0, k);
}

// Sets requires_grad=false (freeze) or true (unfreeze) on matching parameters
// and returns how many matched; errors when the pattern matches nothing.
// Freezing drops any gradient already held.
int64_t freeze_by_glob(const NamedParams& named, const std::string& pattern);
int64_t unfreeze_by_glob(const NamedParams& named, const std::string& pattern);
void freeze_all(const NamedParams& named);

// The parameters that require grad (what an optimizer should receive).
NamedParams trainable(const NamedParams& named);
int64_t count_elements(const NamedParams& named);

// "Params to learn:" followed by every parameter name, per group with its lr,
// tensor count and element count.
std::string params_to_learn(const Optimizer& opt);
// The same for a plain list: the names that require grad.
std::string params_to_learn(const NamedParams& named);

}  // namespace graft::optim
