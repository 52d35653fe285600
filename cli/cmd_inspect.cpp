// `graft inspect FILE`: lists what a checkpoint holds — every tensor (name,
// dtype, shape, bytes), the non-tensor entries (epoch, arch, ...) and totals —
// for PyTorch .pth (zip or legacy), .safetensors and .npy files. Nothing in the
// file is executed (see io/pickle.h).
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <unordered_set>

#include "cli/command.h"
#include "io/npy.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "train/checkpoint.h"

namespace {

using graft::io::Value;

struct Listing {
  std::vector<std::pair<std::string, graft::Tensor>> tensors;
  std::vector<std::pair<std::string, std::string>> others;  // path -> repr
};

// Walks dicts, lists and tuples; tensors are named by their dotted path.
void walk(const Value& v, const std::string& path, Listing& out) {
  auto child = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
  switch (v.kind) {
    case Value::Kind::Tensor:
      out.tensors.emplace_back(path, v.tensor);
      return;
    case Value::Kind::Dict:
      for (const auto& [k, x] : v.entries)
        walk(*x, child(k->kind == Value::Kind::Str ? k->str : k->repr(40)), out);
      if (v.entries.empty()) out.others.emplace_back(path, "{}");
      return;
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      bool nested = false;
      for (const auto& x : v.items) nested |= x->is_container() || x->is(Value::Kind::Tensor);
      if (!nested) {  // a plain list of numbers/strings prints on one line
        out.others.emplace_back(path, v.repr(120));
        return;
      }
      for (size_t i = 0; i < v.items.size(); ++i) walk(*v.items[i], child(std::to_string(i)), out);
      return;
    }
    default:
      out.others.emplace_back(path.empty() ? "<root>" : path, v.repr(120));
      return;
  }
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  std::ostringstream os;
  os << std::fixed << std::setprecision(u ? 1 : 0) << b << " " << units[u];
  return os.str();
}

int run_inspect(const std::string& path) {
  using namespace graft;
  Listing l;
  std::string format;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    format = "npy directory";
    l.tensors = io::load_weights_file(path);
  } else {
    auto file = io::MappedFile::open(path);
    format = io::detect_weights_format(*file);
    if (format == "pth-zip" || format == "pth-legacy") {
      walk(*io::load_pth(file).root, "", l);
    } else if (format == "safetensors") {
      io::SafetensorsFile f = io::load_safetensors(file);
      l.tensors = std::move(f.tensors);
      for (auto& [k, v] : f.metadata) l.others.emplace_back("__metadata__." + k, "'" + v + "'");
    } else if (format == "npy") {
      l.tensors.emplace_back(std::filesystem::path(path).stem().string(),
                             io::parse_npy(file->bytes(), path));
    } else {
      GRAFT_FAIL(path, ": unrecognised file (expected a PyTorch .pth, .safetensors or .npy)");
    }
  }
  size_t name_w = 4;
  for (const auto& [n, t] : l.tensors) name_w = std::max(name_w, n.size());
  name_w = std::min<size_t>(name_w, 60);
  std::cout << path << ": " << format << "\n";
  std::cout << std::left << std::setw(static_cast<int>(name_w)) << "name"
            << "  " << std::setw(9) << "dtype"
            << "  " << std::setw(20) << "shape"
            << "  bytes\n";
  int64_t numel = 0;
  uint64_t bytes = 0, storage_bytes = 0;
  std::unordered_set<const StorageImpl*> storages;
  for (const auto& [n, t] : l.tensors) {
    std::cout << std::left << std::setw(static_cast<int>(name_w)) << n << "  " << std::setw(9)
              << dtype_name(t.dtype()) << "  " << std::setw(20) << shape_str(t.sizes()) << "  "
              << t.nbytes() << "\n";
    numel += t.numel();
    bytes += t.nbytes();
    if (storages.insert(t.storage().get()).second) storage_bytes += t.storage()->nbytes();
  }
  if (!l.others.empty()) {
    std::cout << "\nnon-tensor entries:\n";
    for (const auto& [k, v] : l.others) std::cout << "  " << k << " = " << v << "\n";
  }
  std::cout << "\n"
            << l.tensors.size() << " tensors, " << numel << " elements (total parameter count), "
            << human_bytes(static_cast<double>(bytes)) << " of tensor data in " << storages.size()
            << " storages (" << human_bytes(static_cast<double>(storage_bytes)) << ")\n";
  return 0;
}

struct PlanArgs {
  std::string weights, arch;
  int64_t num_classes = 0;
};

// The dry-run load report of a weights file into a ResNet: what
// train/eval/predict/forward would load, miss or reject, and why.
int run_plan(const PlanArgs& a) {
  using namespace graft;
  const train::TrainingCheckpoint ck = train::load_checkpoint(a.weights);
  const std::string arch =
      !a.arch.empty() ? a.arch : (!ck.arch.empty() ? ck.arch : train::infer_arch(ck.model));
  GRAFT_CHECK(!arch.empty(), "--plan ", a.weights,
              ": the file does not say which ResNet it is and its keys fit none; pass --arch");
  const int64_t rows = train::head_classes(ck.model);
  const int64_t classes = a.num_classes > 0 ? a.num_classes : (rows > 0 ? rows : 1000);
  const io::LoadReport rep = train::plan_load(ck.model, arch, classes);
  std::cout << a.weights << " into " << arch << " with " << classes << " classes\n" << rep.str();
  if (!rep.ok()) std::cout << "likely cause: " << io::diagnose_load(rep) << "\n";
  return rep.ok() ? 0 : 1;
}

GRAFT_COMMAND(
    "inspect",
    "List the tensors and other entries of a .pth, .safetensors or .npy file, or (--plan) "
    "dry-run loading it into a ResNet",
    [](CLI::App& sub) {
      auto path = std::make_shared<std::string>();
      auto plan = std::make_shared<PlanArgs>();
      sub.add_option("file", *path, "checkpoint file (or a directory of .npy files)");
      sub.add_option("--plan", plan->weights,
                     "print the load report of this file into --arch with --num-classes");
      sub.add_option("--arch", plan->arch, "with --plan (default: from the file)");
      sub.add_option("--num-classes", plan->num_classes,
                     "with --plan (default: rows of the file's fc.weight)");
      return std::function<int()>([path, plan] {
        if (!plan->weights.empty()) {
          GRAFT_CHECK(path->empty(), "give either FILE or --plan FILE, not both");
          return run_plan(*plan);
        }
        GRAFT_CHECK(!path->empty(), "inspect: give a FILE (or --plan FILE)");
        GRAFT_CHECK(plan->arch.empty() && plan->num_classes == 0,
                    "--arch and --num-classes only apply with --plan");
        return run_inspect(*path);
      });
    });

}  // namespace
