#include "io/state_dict.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>
#include <unordered_map>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/zip.h"

namespace graft::io {

std::string LoadReport::str() const {
  std::ostringstream os;
  os << (dry_run ? "load_state_dict (dry run): " : "load_state_dict: ") << loaded.size()
     << " loaded, " << missing.size() << " missing, " << unexpected.size() << " unexpected, "
     << shape_mismatch.size() << " shape mismatches, " << skipped.size() << " skipped\n";
  auto list = [&](const char* title, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << "  " << title << ":";
    for (const auto& s : v) os << " " << s;
    os << "\n";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  for (const auto& m : shape_mismatch)
    os << "  shape mismatch: " << m.name << ": checkpoint " << shape_str(m.got) << ", model "
       << shape_str(m.expected) << "\n";
  list("skipped", skipped);
  return os.str();
}

namespace {

std::string apply_rules(std::string name, const std::vector<RemapRule>& rules,
                        const std::vector<std::regex>& regexes) {
  size_t ri = 0;
  for (const auto& r : rules) {
    switch (r.kind) {
      case RemapRule::Kind::StripPrefix:
        if (name.rfind(r.pattern, 0) == 0) name.erase(0, r.pattern.size());
        break;
      case RemapRule::Kind::AddPrefix:
        name = r.pattern + name;
        break;
      case RemapRule::Kind::Regex:
        name = std::regex_replace(name, regexes[ri++], r.replacement);
        break;
    }
  }
  return name;
}

bool skipped_name(const std::string& n, const std::vector<std::string>& globs) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& g) { return glob_match(g, n); });
}

}  // namespace

LoadReport load_state_dict(const NamedTensors& target, const NamedTensors& src,
                           const LoadOptions& opts) {
  LoadReport rep;
  rep.dry_run = opts.dry_run;
  std::vector<std::regex> regexes;
  for (const auto& r : opts.remap) {
    if (r.kind != RemapRule::Kind::Regex) continue;
    try {
      regexes.emplace_back(r.pattern);
    } catch (const std::regex_error& e) {
      GRAFT_FAIL("load_state_dict: bad rename regex '", r.pattern, "': ", e.what());
    }
  }
  std::unordered_map<std::string, size_t> tindex;
  for (size_t i = 0; i < target.size(); ++i)
    GRAFT_CHECK(tindex.emplace(target[i].first, i).second, "load_state_dict: target has '",
                target[i].first, "' twice");
  std::vector<const Tensor*> chosen(target.size(), nullptr);
  std::unordered_map<std::string, std::string> origin;  // target name -> source name
  for (const auto& [sname, t] : src) {
    std::string name = apply_rules(sname, opts.remap, regexes);
    if (name != sname) rep.renamed.emplace_back(sname, name);
    if (skipped_name(name, opts.skips) || skipped_name(sname, opts.skips)) {
      rep.skipped.push_back(name);
      continue;
    }
    auto it = tindex.find(name);
    if (it == tindex.end()) {
      rep.unexpected.push_back(name);
      continue;
    }
    auto [o, fresh] = origin.emplace(name, sname);
    GRAFT_CHECK(fresh, "load_state_dict: checkpoint entries '", o->second, "' and '", sname,
                "' both map to '", name, "'");
    const Tensor& dst = target[it->second].second;
    if (dst.sizes() != t.sizes()) {
      rep.shape_mismatch.push_back({name, dst.sizes(), t.sizes()});
      continue;
    }
    chosen[it->second] = &t;
  }
  for (size_t i = 0; i < target.size(); ++i) {
    const std::string& name = target[i].first;
    if (chosen[i])
      rep.loaded.push_back(name);
    else if (skipped_name(name, opts.skips)) {
      if (!origin.count(name)) rep.skipped.push_back(name);
    } else if (!origin.count(name))
      rep.missing.push_back(name);
  }
  // A name can be skipped on both sides; list it once.
  std::vector<std::string> uniq;
  for (auto& n : rep.skipped)
    if (std::find(uniq.begin(), uniq.end(), n) == uniq.end()) uniq.push_back(std::move(n));
  rep.skipped = std::move(uniq);
  if (opts.strict && !rep.ok()) GRAFT_FAIL(rep.str(), "(strict loading: nothing was loaded)");
  if (opts.dry_run) return rep;
  NoGradGuard no_grad;
  for (size_t i = 0; i < target.size(); ++i) {
    if (!chosen[i]) continue;
    Tensor dst = target[i].second;
    copy_(dst, *chosen[i]);
  }
  return rep;
}

bool strip_data_parallel(NamedTensors& sd) {
  const std::string prefix = "module.";
  const bool all = !sd.empty() && std::all_of(sd.begin(), sd.end(), [&](const auto& kv) {
    return kv.first.rfind(prefix, 0) == 0;
  });
  if (all)
    for (auto& kv : sd) kv.first.erase(0, prefix.size());
  return all;
}

std::string diagnose_load(const LoadReport& r, const std::string& head) {
  if (r.ok()) return "";
  std::ostringstream os;
  if (r.missing.empty() && r.unexpected.empty()) {
    const bool head_only =
        !head.empty() &&
        std::all_of(r.shape_mismatch.begin(), r.shape_mismatch.end(),
                    [&](const ShapeMismatch& m) { return m.name.rfind(head + ".", 0) == 0; });
    const ShapeMismatch& m = r.shape_mismatch.front();
    if (head_only && m.got.size() == 2 && m.expected.size() == 2) {
      os << "a different head size: the file's " << head << " has " << m.got[0]
         << " classes, the model's " << m.expected[0];
      return os.str();
    }
    os << "mis-shaped tensors, e.g. " << m.name << ": " << shape_str(m.got) << " in the file, "
       << shape_str(m.expected) << " in the model (another architecture?)";
    return os.str();
  }
  // A prefix: stripping the first component of the unexpected names gives missing ones.
  if (!r.unexpected.empty()) {
    const std::string& u = r.unexpected.front();
    const std::string prefix = u.substr(0, u.find('.') + 1);
    size_t hits = 0;
    for (const auto& n : r.unexpected)
      if (n.rfind(prefix, 0) == 0 &&
          std::find(r.missing.begin(), r.missing.end(), n.substr(prefix.size())) != r.missing.end())
        ++hits;
    if (!prefix.empty() && hits * 2 >= r.unexpected.size()) {
      os << "the file's keys carry a '" << prefix << "' prefix (e.g. " << u << ")";
      return os.str();
    }
  }
  if (r.missing.size() + r.unexpected.size() > r.loaded.size() / 4) {
    os << "another architecture: " << r.missing.size() << " tensors missing (e.g. "
       << (r.missing.empty() ? std::string("none") : r.missing.front()) << "), "
       << r.unexpected.size() << " unexpected (e.g. "
       << (r.unexpected.empty() ? std::string("none") : r.unexpected.front()) << ")";
    return os.str();
  }
  os << r.missing.size() << " tensors missing"
     << (r.missing.empty() ? std::string("") : " (e.g. " + r.missing.front() + ")") << ", "
     << r.unexpected.size() << " unexpected"
     << (r.unexpected.empty() ? std::string("") : " (e.g. " + r.unexpected.front() + ")");
  return os.str();
}

std::string detect_weights_format(const MappedFile& file) {
  std::string_view head = file.bytes().substr(0, 16);
  if (looks_like_zip(head)) return "pth-zip";
  if (head.size() >= 6 && head.substr(0, 6) == "\x93NUMPY") return "npy";
  if (looks_like_safetensors(head, file.size())) return "safetensors";
  if (looks_like_pickle(head)) return "pth-legacy";
  return "";
}

NamedTensors load_weights_file(const std::string& path, const std::string& sub_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    GRAFT_CHECK(!files.empty(), path, ": directory holds no .npy files");
    NamedTensors sd;
    for (const auto& f : files) sd.emplace_back(f.stem().string(), load_npy(f.string()));
    return sd;
  }
  auto file = MappedFile::open(path);
  std::string fmt = detect_weights_format(*file);
  if (fmt == "pth-zip" || fmt == "pth-legacy")
    return extract_state_dict(load_pth(file).root, sub_path);
  if (fmt == "safetensors") return load_safetensors(file).tensors;
  if (fmt == "npy") return {{fs::path(path).stem().string(), parse_npy(file->bytes(), path)}};
  GRAFT_FAIL(path, ": unrecognised weights file (expected a PyTorch .pth, .safetensors or .npy)");
}

}  // namespace graft::io
