#include "optim/params.h"

#include <sstream>

namespace graft::optim {

namespace {

void fail_no_match(const char* what, const NamedParams& named, const std::string& pattern) {
  std::ostringstream os;
  os << what << ": pattern '" << pattern << "' matches none of the " << named.size()
     << " parameters";
  if (!named.empty()) {
    os << " (e.g. ";
    for (size_t i = 0; i < named.size() && i < 4; ++i) os << (i ? ", " : "") << named[i].first;
    os << (named.size() > 4 ? ", ...)" : ")");
  }
  throw Error(os.str());
}

NamedParams filter(const char* what, const NamedParams& named, const std::string& pattern,
                   bool keep_matches) {
  NamedParams out;
  bool any = false;
  for (const auto& np : named) {
    const bool m = glob_match(pattern, np.first);
    any = any || m;
    if (m == keep_matches) out.push_back(np);
  }
  if (!any) fail_no_match(what, named, pattern);
  return out;
}

int64_t set_requires_grad(const char* what, const NamedParams& named, const std::string& pattern,
                          bool value) {
  int64_t n = 0;
  for (const auto& [name, p] : named) {
    if (!glob_match(pattern, name)) continue;
    p.set_requires_grad(value);
    if (!value) p.zero_grad();
    ++n;
  }
  if (n == 0) fail_no_match(what, named, pattern);
  return n;
}

}  // namespace

NamedParams select_by_glob(const NamedParams& named, const std::string& pattern) {
  return filter("select_by_glob", named, pattern, true);
}

NamedParams exclude_by_glob(const NamedParams& named, const std::string& pattern) {
  return filter("exclude_by_glob", named, pattern, false);
}

NamedParams select_range(const NamedParams& named, int64_t begin, int64_t end) {
  const int64_t n = static_cast<int64_t>(named.size());
  if (begin < 0) begin += n;
  if (end < 0) end += n;
  GRAFT_CHECK(begin >= 0 && begin <= end && end <= n, "select_range: range [", begin, ", ", end,
              ") is not within the ", n, " parameters");
  return NamedParams(named.begin() + begin, named.begin() + end);
}

int64_t freeze_by_glob(const NamedParams& named, const std::string& pattern) {
  return set_requires_grad("freeze_by_glob", named, pattern, false);
}

int64_t unfreeze_by_glob(const NamedParams& named, const std::string& pattern) {
  return set_requires_grad("unfreeze_by_glob", named, pattern, true);
}

void freeze_all(const NamedParams& named) {
  for (const auto& [name, p] : named) {
    p.set_requires_grad(false);
    p.zero_grad();
  }
}

NamedParams trainable(const NamedParams& named) {
  NamedParams out;
  for (const auto& np : named)
    if (np.second.requires_grad()) out.push_back(np);
  return out;
}

int64_t count_elements(const NamedParams& named) {
  int64_t n = 0;
  for (const auto& [name, p] : named) n += p.numel();
  return n;
}

std::string params_to_learn(const Optimizer& opt) {
  std::ostringstream os;
  os << "Params to learn:\n";
  const auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups.size() > 1)
      os << "group " << g << " (lr " << groups[g].lr() << "): " << groups[g].params.size()
         << " tensors, " << count_elements(groups[g].params) << " elements\n";
    for (const auto& [name, p] : groups[g].params) os << "\t " << name << "\n";
  }
  return os.str();
}

std::string params_to_learn(const NamedParams& named) {
  std::ostringstream os;
  const NamedParams t = trainable(named);
  os << "Params to learn (" << t.size() << " tensors, " << count_elements(t) << " elements):\n";
  for (const auto& [name, p] : t) os << "\t " << name << "\n";
  return os.str();
}

}  // namespace graft::optim
