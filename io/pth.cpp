#include "io/pth.h"

#include <cstring>
#include <map>
#include <unordered_map>

#include "core/error.h"
#include "core/ops.h"
#include "io/zip.h"

namespace graft::io {

const Tensor* find_tensor(const NamedTensors& sd, const std::string& name) {
  for (const auto& [k, t] : sd)
    if (k == name) return &t;
  return nullptr;
}

namespace {

// Fields of a storage persistent id: ('storage', <type>, key, location, numel[, view]).
struct StoragePid {
  DType dtype;
  std::string key;
  int64_t numel;
  ValuePtr view;  // legacy only: (view_key, offset, view_numel) or None
};

StoragePid parse_pid(const Value& pid, const std::string& name) {
  GRAFT_CHECK(pid.kind == Value::Kind::Tuple && pid.items.size() >= 5 &&
                  pid.items[0]->kind == Value::Kind::Str && pid.items[0]->str == "storage",
              name, ": unsupported persistent id ", pid.repr());
  const auto& it = pid.items;
  GRAFT_CHECK(it[1]->kind == Value::Kind::Global, name, ": storage type must be a global, got ",
              it[1]->repr());
  GRAFT_CHECK(it[2]->kind == Value::Kind::Str, name, ": storage key must be a str, got ",
              it[2]->repr());
  GRAFT_CHECK(it[4]->kind == Value::Kind::Int && it[4]->integer >= 0, name,
              ": storage size must be a non-negative int, got ", it[4]->repr());
  StoragePid p{storage_type_dtype(it[1]->str), it[2]->str, it[4]->integer, nullptr};
  if (it.size() >= 6 && it[5]->kind != Value::Kind::None) p.view = it[5];
  return p;
}

ValuePtr storage_value(const StoragePid& p, Storage s) {
  auto v = std::make_shared<Value>();
  v->kind = Value::Kind::Storage;
  v->storage = std::move(s);
  v->storage_dtype = p.dtype;
  v->storage_numel = p.numel;
  v->storage_key = p.key;
  return v;
}

// Tensors read elements through typed pointers: keep them aligned. Zip records
// written by torch (and by us) are 64-byte aligned, so this copies only for
// odd writers.
Storage aligned(Storage s, DType dtype) {
  if (reinterpret_cast<uintptr_t>(s->data()) % itemsize(dtype) == 0) return s;
  auto c = std::make_shared<StorageImpl>(s->nbytes(), Device::cpu());
  if (s->nbytes() > 0) std::memcpy(c->data(), s->data(), s->nbytes());  // empty: data() may be null
  return c;
}

Checkpoint load_zip(MappedFilePtr file) {
  const std::string& name = file->path();
  ZipReader zip(file);
  // torch names the top folder after the file ("archive" for streams); find it via data.pkl.
  std::string prefix;
  const ZipEntry* pkl = nullptr;
  for (const auto& e : zip.entries()) {
    size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      GRAFT_CHECK(!pkl, name, ": archive holds more than one data.pkl");
      pkl = &e;
      prefix = e.name.substr(0, slash + 1);
    }
  }
  GRAFT_CHECK(pkl, name, ": zip archive has no <folder>/data.pkl: not a torch.save file");
  if (const ZipEntry* bo = zip.find(prefix + "byteorder")) {
    std::string order = zip.read(*bo, 64);
    GRAFT_CHECK(order == "little", name, ": checkpoint byte order '", order,
                "' is not supported (only little-endian)");
  }
  std::string pickle = zip.read(*pkl, uint64_t{1} << 31);
  std::unordered_map<std::string, ValuePtr> loaded;
  PersistentLoad pl = [&](const Value& pid) -> ValuePtr {
    StoragePid p = parse_pid(pid, name);
    if (auto it = loaded.find(p.key); it != loaded.end()) {
      GRAFT_CHECK(it->second->storage_dtype == p.dtype, name, ": storage '", p.key,
                  "' used with two dtypes");
      return it->second;
    }
    const ZipEntry& e = zip.at(prefix + "data/" + p.key);
    uint64_t need = 0;
    GRAFT_CHECK(checked_mul(static_cast<uint64_t>(p.numel), itemsize(p.dtype), e.size, &need), name,
                ": storage '", p.key, "' claims ", p.numel, " elements of ", dtype_name(p.dtype),
                " but its record holds only ", e.size, " bytes");
    Storage s = zip.storage(e);
    if (need < s->nbytes()) s = storage_view(zip.file(), e.data_offset, need);
    ValuePtr v = storage_value(p, aligned(std::move(s), p.dtype));
    loaded.emplace(p.key, v);
    return v;
  };
  ValuePtr root = unpickle(pickle, pl, name + ":" + pkl->name);
  return {root, "zip", file};
}

// The pre-1.6 format: pickles of the magic number, the protocol version and
// sys_info, then the object pickle, then a pickle of the storage keys, then
// each storage as <int64 element count><raw little-endian bytes>.
Checkpoint load_legacy(MappedFilePtr file) {
  const std::string& name = file->path();
  std::string_view rest = file->bytes();
  size_t used = 0;
  auto next = [&](const PersistentLoad& pl, const char* what) {
    ValuePtr v = unpickle(rest, pl, name + " (" + what + ")", {}, &used);
    rest.remove_prefix(used);
    return v;
  };
  ValuePtr magic = next(nullptr, "magic number");
  static const unsigned char kMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19};
  GRAFT_CHECK(magic->kind == Value::Kind::BigInt &&
                  magic->str == std::string(reinterpret_cast<const char*>(kMagic), sizeof kMagic),
              name, ": not a PyTorch checkpoint (bad legacy magic number)");
  ValuePtr proto = next(nullptr, "protocol version");
  GRAFT_CHECK(proto->kind == Value::Kind::Int && proto->integer == 1001, name,
              ": unsupported legacy protocol version ", proto->repr());
  ValuePtr sys_info = next(nullptr, "sys_info");
  if (ValuePtr le = sys_info->get("little_endian"))
    GRAFT_CHECK(le->kind == Value::Kind::Bool && le->boolean, name,
                ": big-endian legacy checkpoints are not supported");

  // Pass 1 finds where the object pickle ends and which storages it needs; the
  // storage bytes come after it.
  std::string_view object_pickle = rest;
  std::map<std::string, StoragePid> roots;
  // Pass-1 tensors view no data and are discarded; their bounds are checked
  // against the real storages in pass 2.
  PersistentLoad scan = [&](const Value& pid) -> ValuePtr {
    StoragePid p = parse_pid(pid, name);
    auto [it, fresh] = roots.emplace(p.key, p);
    GRAFT_CHECK(fresh || (it->second.dtype == p.dtype && it->second.numel == p.numel), name,
                ": storage '", p.key, "' declared twice with different types or sizes");
    ValuePtr v = storage_value(p, nullptr);
    v->storage_numel = INT64_MAX / 2;
    return v;
  };
  next(scan, "object");
  object_pickle = object_pickle.substr(0, object_pickle.size() - rest.size());
  ValuePtr keys = next(nullptr, "storage keys");
  GRAFT_CHECK(keys->kind == Value::Kind::List, name, ": storage key list expected, got ",
              keys->kind_name());
  std::unordered_map<std::string, Storage> data;
  size_t offset = file->size() - rest.size();
  for (const auto& k : keys->items) {
    GRAFT_CHECK(k->kind == Value::Kind::Str, name, ": storage key must be a str");
    auto it = roots.find(k->str);
    GRAFT_CHECK(it != roots.end(), name, ": storage '", k->str, "' is not used by the checkpoint");
    GRAFT_CHECK(file->size() - offset >= 8, name, ": truncated legacy storage '", k->str, "'");
    uint64_t numel = rd_u64(file->data() + offset);
    offset += 8;
    GRAFT_CHECK(numel == static_cast<uint64_t>(it->second.numel), name, ": storage '", k->str,
                "' holds ", numel, " elements, the pickle says ", it->second.numel);
    uint64_t nbytes = 0;
    GRAFT_CHECK(checked_mul(numel, itemsize(it->second.dtype), file->size() - offset, &nbytes),
                name, ": truncated legacy storage '", k->str, "'");
    GRAFT_CHECK(
        data.emplace(k->str, aligned(storage_view(file, offset, nbytes), it->second.dtype)).second,
        name, ": storage '", k->str, "' stored twice");
    offset += nbytes;
  }
  std::unordered_map<std::string, ValuePtr> built;
  PersistentLoad pl = [&](const Value& pid) -> ValuePtr {
    StoragePid p = parse_pid(pid, name);
    std::string id = p.key;
    if (p.view) id.append("/").append(p.view->repr());
    if (auto it = built.find(id); it != built.end()) return it->second;
    auto d = data.find(p.key);
    GRAFT_CHECK(d != data.end(), name, ": storage '", p.key, "' has no data in the file");
    Storage s = d->second;
    if (p.view) {  // (view_key, offset, size) into the root storage, in elements
      const auto& vi = p.view->items;
      GRAFT_CHECK(p.view->kind == Value::Kind::Tuple && vi.size() == 3 &&
                      vi[1]->kind == Value::Kind::Int && vi[2]->kind == Value::Kind::Int &&
                      vi[1]->integer >= 0 && vi[2]->integer >= 0 && vi[1]->integer <= p.numel &&
                      vi[2]->integer <= p.numel - vi[1]->integer,
                  name, ": bad storage view ", p.view->repr());
      size_t isz = itemsize(p.dtype);
      auto view = std::make_shared<StorageImpl>(
          static_cast<uint8_t*>(s->data()) + vi[1]->integer * isz, vi[2]->integer * isz,
          Device::cpu(), [s](void*) mutable { s.reset(); });
      p.numel = vi[2]->integer;
      s = view;
    }
    ValuePtr v = storage_value(p, s);
    built.emplace(id, v);
    return v;
  };
  ValuePtr root = unpickle(object_pickle, pl, name + " (object)");
  return {root, "legacy", file};
}

void flatten_into(const Value& d, const std::string& prefix, NamedTensors& out, int depth) {
  GRAFT_CHECK(depth < 64, "extract_state_dict: dicts nested too deeply");
  for (const auto& [k, v] : d.entries) {
    if (k->kind != Value::Kind::Str) continue;
    std::string name = prefix.empty() ? k->str : prefix + "." + k->str;
    if (v->kind == Value::Kind::Tensor)
      out.emplace_back(name, v->tensor);
    else if (v->kind == Value::Kind::Dict)
      flatten_into(*v, name, out, depth + 1);
  }
}

bool holds_tensors(const Value& v) {
  if (v.kind != Value::Kind::Dict) return false;
  for (const auto& e : v.entries)
    if (e.second->kind == Value::Kind::Tensor) return true;
  return false;
}

}  // namespace

Checkpoint load_pth(MappedFilePtr file) {
  std::string_view head = file->bytes().substr(0, 4);
  if (looks_like_zip(head)) return load_zip(std::move(file));
  if (looks_like_pickle(head)) return load_legacy(std::move(file));
  GRAFT_FAIL(file->path(), ": not a PyTorch checkpoint (neither a zip archive nor a legacy pickle",
             "; tar-format files from torch < 0.1.10 are not supported)");
}

Checkpoint load_pth(const std::string& path) { return load_pth(MappedFile::open(path)); }

NamedTensors extract_state_dict(const ValuePtr& root, const std::string& sub_path) {
  GRAFT_CHECK(root, "extract_state_dict: null checkpoint");
  const Value* d = root.get();
  if (!sub_path.empty()) {
    size_t start = 0;
    while (start <= sub_path.size()) {
      size_t dot = sub_path.find('.', start);
      std::string key =
          sub_path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      ValuePtr next = d->get(key);
      GRAFT_CHECK(next, "checkpoint has no entry '", key, "' (path '", sub_path,
                  "'); top level: ", root->repr(300));
      d = next.get();
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    GRAFT_CHECK(d->kind == Value::Kind::Dict, "checkpoint entry '", sub_path, "' is a ",
                d->kind_name(), ", not a dict of tensors");
  } else if (!holds_tensors(*d)) {
    const Value* found = nullptr;
    for (const char* k : {"state_dict", "model_state_dict", "model", "net", "module"}) {
      ValuePtr v = d->get(k);
      if (v && holds_tensors(*v)) {
        found = v.get();
        break;
      }
    }
    GRAFT_CHECK(found, "checkpoint holds no state_dict: top level is ", root->repr(300));
    d = found;
  }
  NamedTensors out;
  flatten_into(*d, "", out, 0);
  return out;
}

ValuePtr state_dict_value(const NamedTensors& sd) {
  ValuePtr d = Value::dict();
  for (const auto& [k, t] : sd) d->entries.emplace_back(Value::from_str(k), Value::from_tensor(t));
  return d;
}

void save_pth(const NamedTensors& sd, const std::string& path) {
  save_pth(*state_dict_value(sd), path);
}

void save_pth(const Value& root, const std::string& path) {
  // Assign storage keys in first-use order; tensors sharing a StorageImpl share a key.
  struct Entry {
    std::string key;
    Tensor whole;  // the full storage as a 1-D CPU tensor
  };
  std::unordered_map<const StorageImpl*, size_t> index;
  std::vector<Entry> storages;
  auto sid = [&](const Tensor& t) -> StorageId {
    const Storage& s = t.storage();
    GRAFT_CHECK(s, "save_pth: tensor without storage");
    int64_t numel = static_cast<int64_t>(s->nbytes() / t.itemsize());
    auto [it, fresh] = index.emplace(s.get(), storages.size());
    if (fresh) {
      Tensor whole = make_tensor(s, {numel}, {1}, 0, t.dtype());
      storages.push_back({std::to_string(storages.size()), whole.cpu()});
    } else {
      GRAFT_CHECK(storages[it->second].whole.dtype() == t.dtype(),
                  "save_pth: one storage viewed with two dtypes");
    }
    return {storages[it->second].key, numel};
  };
  std::string pickle = pickle_dumps(root, sid);
  AtomicFileWriter out(path);
  ZipWriter zip(out);
  zip.add("archive/data.pkl", pickle);
  zip.add("archive/byteorder", std::string_view("little"));
  for (const Entry& e : storages)
    zip.add("archive/data/" + e.key, e.whole.raw_data(), e.whole.nbytes());
  zip.add("archive/version", std::string_view("3\n"));
  zip.finish();
  out.commit();
}

}  // namespace graft::io
