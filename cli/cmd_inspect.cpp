// `graft inspect FILE`: lists what a checkpoint holds — every tensor (name,
// dtype, shape, bytes), the non-tensor entries (epoch, arch, ...) and totals —
// for PyTorch .pth (zip or legacy), .safetensors and .npy files. Nothing in the
// file is executed (see io/pickle.h).
// `graft inspect --plan FILE`: the dry-run load report of FILE into a model.
// `graft inspect --graph [FILE]`: the module tree with output shapes (from a
// forward pass on a dummy image) and parameter counts, and which parameters
// train under `graft train`'s freeze flags.
#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <unordered_set>

#include "cli/command.h"
#include "cli/freeze_flags.h"
#include "core/autograd.h"
#include "core/ops.h"
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

// The dry-run load report of a weights file into a model: what
// train/eval/predict/forward would load, miss or reject, and why.
int run_plan(const PlanArgs& a) {
  using namespace graft;
  const train::TrainingCheckpoint ck = train::load_checkpoint(a.weights);
  const std::string arch =
      !a.arch.empty() ? a.arch : (!ck.arch.empty() ? ck.arch : nn::infer_arch(ck.model));
  GRAFT_CHECK(!arch.empty(), "--plan ", a.weights,
              ": the file does not say which model it is and its keys fit none; pass --arch (",
              nn::model_names(), ")");
  const int64_t rows = nn::head_classes(ck.model, arch);
  const int64_t classes = a.num_classes > 0 ? a.num_classes : (rows > 0 ? rows : 1000);
  const io::LoadReport rep = train::plan_load(ck.model, arch, classes);
  std::cout << a.weights << " into " << arch << " with " << classes << " classes\n" << rep.str();
  if (!rep.ok())
    std::cout << "likely cause: " << io::diagnose_load(rep, nn::model_spec(arch).head_linear)
              << "\n";
  return rep.ok() ? 0 : 1;
}

// 11181642 -> "11,181,642"
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

struct GraphArgs {
  bool on = false;
  int64_t image_size = 0;
  graft::train::TrainConfig flags;  // --mode, --freeze as `graft train` takes them
};

// The module tree of the model that FILE (or --arch/--num-classes) describes:
// each module's type, output shape for one dummy image of --image-size (the
// checkpoint's eval crop, else 224), parameters and how many of them train
// under the freeze flags.
int run_graph(const std::string& file, const PlanArgs& p, GraphArgs& g) {
  using namespace graft;
  std::string arch = p.arch;
  int64_t classes = p.num_classes, size = g.image_size;
  if (!file.empty()) {
    const train::TrainingCheckpoint ck = train::load_checkpoint(file, /*quiet=*/true);
    if (arch.empty()) arch = !ck.arch.empty() ? ck.arch : nn::infer_arch(ck.model);
    GRAFT_CHECK(!arch.empty(), "--graph ", file,
                ": the file does not say which model it is and its keys fit none; pass --arch (",
                nn::model_names(), ")");
    if (classes <= 0)
      classes = ck.num_classes > 0 ? ck.num_classes : nn::head_classes(ck.model, arch);
    if (size <= 0 && ck.transform && ck.transform->crop > 0) size = ck.transform->crop;
  }
  if (arch.empty()) arch = "resnet18";
  if (classes <= 0) classes = 1000;
  if (size <= 0) size = 224;
  GRAFT_CHECK(size >= 1, "--image-size must be positive, got ", size);

  auto model = nn::build_model(arch, classes);
  g.flags.arch = arch;
  train::apply_freeze_flags(g.flags, *model);

  // Each module's first output (a shared ReLU runs more than once per block).
  std::map<const nn::Module*, Shape> shapes;
  std::vector<HookHandle> hooks;
  const auto modules = model->named_modules();
  for (const auto& [name, m] : modules)
    hooks.push_back(
        m->register_forward_hook([&shapes](nn::Module& mod, const Tensor&, const Tensor& out) {
          shapes.emplace(&mod, out.sizes());
          return Tensor();
        }));
  model->eval();
  {
    NoGradGuard no_grad;
    (void)(*model)(zeros({1, 3, size, size}));
  }
  for (auto& h : hooks) h.remove();

  std::vector<std::string> names;
  size_t name_w = 6, type_w = 4;
  for (const auto& [name, m] : modules) {
    const size_t depth = name.empty() ? 0 : 1 + std::count(name.begin(), name.end(), '.');
    names.push_back(std::string(2 * depth, ' ') + (name.empty() ? "(model)" : name));
    name_w = std::max(name_w, names.back().size());
    type_w = std::max(type_w, m->type_name().size());
  }
  std::string freeze = g.flags.mode.empty() ? "" : "--mode " + g.flags.mode;
  for (const auto& f : g.flags.freeze) freeze += (freeze.empty() ? "" : " ") + ("--freeze " + f);
  std::cout << arch << ", " << classes << " classes, input 1x3x" << size << "x" << size
            << ", trainable under: " << (freeze.empty() ? "(no freeze flags)" : freeze) << "\n";
  std::cout << std::left << std::setw(static_cast<int>(name_w)) << "module"
            << "  " << std::setw(static_cast<int>(type_w)) << "type"
            << "  " << std::setw(16) << "output" << std::right << "  " << std::setw(12) << "params"
            << "  " << std::setw(12) << "trainable"
            << "\n";
  for (size_t i = 0; i < modules.size(); ++i) {
    const nn::Module& m = *modules[i].second;
    const auto it = shapes.find(&m);
    std::string out = it == shapes.end() ? "-" : "";  // 1x512x7x7
    if (it != shapes.end())
      for (size_t d = 0; d < it->second.size(); ++d)
        out += (d ? "x" : "") + std::to_string(it->second[d]);
    std::cout << std::left << std::setw(static_cast<int>(name_w)) << names[i] << "  "
              << std::setw(static_cast<int>(type_w)) << m.type_name() << "  " << std::setw(16)
              << out << std::right << "  " << std::setw(12) << grouped(m.num_parameters()) << "  "
              << std::setw(12) << grouped(m.num_parameters(/*trainable_only=*/true)) << "\n";
  }
  const int64_t total = model->num_parameters(), trainable = model->num_parameters(true);
  std::cout << "\nparameters: " << grouped(total) << " total, " << grouped(trainable)
            << " trainable, " << grouped(total - trainable) << " frozen\n";
  // The shorter list: the trainable tensors, or the frozen ones.
  std::vector<std::string> on, off;
  for (const auto& [name, t] : model->named_parameters())
    (t.requires_grad() ? on : off).push_back(name);
  const bool list_on = on.size() <= off.size();
  std::cout << (list_on ? "trainable" : "frozen") << " tensors:";
  const auto& listed = list_on ? on : off;
  if (listed.empty()) std::cout << " (none)";
  for (size_t i = 0; i < listed.size(); ++i) std::cout << (i ? ", " : " ") << listed[i];
  std::cout << "\n";
  return 0;
}

GRAFT_COMMAND(
    "inspect",
    "List the tensors and other entries of a .pth, .safetensors or .npy file, (--plan) "
    "dry-run loading it into a model, or (--graph) show the model's module tree with "
    "shapes, parameter counts and what trains",
    [](CLI::App& sub) {
      auto path = std::make_shared<std::string>();
      auto plan = std::make_shared<PlanArgs>();
      auto graph = std::make_shared<GraphArgs>();
      sub.add_option("file", *path,
                     "checkpoint file (or a directory of .npy files); with --graph, optional: "
                     "the arch, classes and image size come from it");
      sub.add_option("--plan", plan->weights,
                     "print the load report of this file into --arch with --num-classes");
      sub.add_flag("--graph", graph->on,
                   "print the module tree of FILE's model (or --arch, default resnet18) with "
                   "each module's output shape, parameters and trainable parameters under "
                   "--mode/--freeze");
      sub.add_option("--arch", plan->arch, "with --plan or --graph (default: from the file)");
      sub.add_option("--num-classes", plan->num_classes,
                     "with --plan or --graph (default: rows of the file's head weight; 1000)");
      sub.add_option("--image-size", graph->image_size,
                     "with --graph: the dummy input's size (default: the checkpoint's, else 224)");
      graft::cli::add_freeze_flags(sub, graph->flags);  // --mode, --freeze
      return std::function<int()>([path, plan, graph, &sub] {
        const bool freeze_flags = sub.count("--mode") > 0 || sub.count("--freeze") > 0;
        GRAFT_CHECK(graph->on || (!freeze_flags && graph->image_size == 0),
                    "--mode, --freeze and --image-size only apply with --graph");
        if (graph->on) {
          GRAFT_CHECK(plan->weights.empty(), "give either --plan or --graph, not both");
          return run_graph(*path, *plan, *graph);
        }
        if (!plan->weights.empty()) {
          GRAFT_CHECK(path->empty(), "give either FILE or --plan FILE, not both");
          return run_plan(*plan);
        }
        GRAFT_CHECK(!path->empty(), "inspect: give a FILE (or --plan FILE, or --graph)");
        GRAFT_CHECK(plan->arch.empty() && plan->num_classes == 0,
                    "--arch and --num-classes only apply with --plan or --graph");
        return run_inspect(*path);
      });
    });

}  // namespace
