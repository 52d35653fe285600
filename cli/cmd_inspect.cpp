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
    case Value::Kind::Tensor: out.tensors.emplace_back(path, v.tensor); return;
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
    default: out.others.emplace_back(path.empty() ? "<root>" : path, v.repr(120)); return;
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
  std::cout << std::left << std::setw(static_cast<int>(name_w)) << "name" << "  " << std::setw(9)
            << "dtype" << "  " << std::setw(20) << "shape" << "  bytes\n";
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
  std::cout << "\n" << l.tensors.size() << " tensors, " << numel << " elements (total parameter count), "
            << human_bytes(static_cast<double>(bytes)) << " of tensor data in " << storages.size()
            << " storages (" << human_bytes(static_cast<double>(storage_bytes)) << ")\n";
  return 0;
}

GRAFT_COMMAND("inspect", "List the tensors and other entries of a .pth, .safetensors or .npy file",
              [](CLI::App& sub) {
                auto path = std::make_shared<std::string>();
                sub.add_option("file", *path, "checkpoint file (or a directory of .npy files)")
                    ->required();
                return std::function<int()>([path] { return run_inspect(*path); });
              });

}  // namespace
