// Loading a state_dict into destination tensors, torch.nn.Module.load_state_dict
// style, with the renaming and skipping that fine-tuning needs, and a report.
//
//   io::LoadOptions o;
//   o.strip_prefix("module.").skip("fc.*");
//   io::LoadReport r = io::load_state_dict(model_params, io::load_weights_file(path), o);
//   std::cout << r.str();
//
// The target is a list of named destination tensors (parameters and buffers);
// values are copied into them in place (copy_, dtype converted as torch does)
// under NoGradGuard. Nothing is copied unless every check passes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/glob.h"
#include "io/pth.h"

namespace graft::io {

struct ShapeMismatch {
  std::string name;
  Shape expected;  // target's
  Shape got;       // source's
};

struct LoadReport {
  std::vector<std::string> loaded;      // target names filled
  std::vector<std::string> missing;     // in the target, absent from the source
  std::vector<std::string> unexpected;  // in the source (after renaming), not in the target
  std::vector<std::string> skipped;     // names (after renaming) matching a skip pattern
  std::vector<ShapeMismatch> shape_mismatch;
  std::vector<std::pair<std::string, std::string>> renamed;  // source name -> target name
  bool dry_run = false;
  bool ok() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
  std::string str() const;
};

struct RemapRule {
  enum class Kind { StripPrefix, AddPrefix, Regex };
  Kind kind;
  std::string pattern;      // prefix, or ECMAScript regex
  std::string replacement;  // added prefix, or regex replacement ($1 ...)
};

struct LoadOptions {
  // Strict: missing, unexpected or mis-shaped entries throw graft::Error with
  // the report text and nothing is loaded. Non-strict: matching entries load,
  // the rest are reported (mis-shaped ones are left untouched).
  bool strict = true;
  bool dry_run = false;            // check and report only; copy nothing
  std::vector<RemapRule> remap;    // applied in order to each source name
  std::vector<std::string> skips;  // glob patterns ('*' matches dots too, '?' one char)

  LoadOptions& strip_prefix(std::string p) {
    remap.push_back({RemapRule::Kind::StripPrefix, std::move(p), ""});
    return *this;
  }
  LoadOptions& add_prefix(std::string p) {
    remap.push_back({RemapRule::Kind::AddPrefix, std::move(p), ""});
    return *this;
  }
  LoadOptions& rename(std::string regex, std::string replacement) {
    remap.push_back({RemapRule::Kind::Regex, std::move(regex), std::move(replacement)});
    return *this;
  }
  LoadOptions& skip(std::string glob) {
    skips.push_back(std::move(glob));
    return *this;
  }
};

LoadReport load_state_dict(const NamedTensors& target, const NamedTensors& src,
                           const LoadOptions& opts = {});

// Strips the 'module.' prefix that DataParallel puts on every key; returns
// whether it did (then every key had it).
bool strip_data_parallel(NamedTensors& sd);

// When a load does not fit: the likely cause, in one phrase ("" when the
// report is ok): a prefix on the file's keys, a different head size, or
// another architecture (most keys missing and unexpected). `head` names the
// model's classifier Linear ("fc", "classifier.1"; "" when it has none): when
// only its tensors are mis-shaped, the cause is a different number of classes.
std::string diagnose_load(const LoadReport& r, const std::string& head = "");

// io::glob_match is core/glob.h's (one matcher for state_dict keys and
// parameter groups).
using graft::glob_match;

// Reads the tensors of any supported weights file, chosen by content, not name:
// zip or legacy .pth (state_dict found as in extract_state_dict, or `sub_path`),
// .safetensors, a single .npy (one tensor named after the file stem), or a
// directory of .npy files (one tensor per file, named by stem, sorted).
NamedTensors load_weights_file(const std::string& path, const std::string& sub_path = "");

// "pth-zip", "pth-legacy", "safetensors", "npy" or "" (unknown), from the first bytes.
std::string detect_weights_format(const MappedFile& file);

}  // namespace graft::io
