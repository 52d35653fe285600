#include "io/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace graft::io {
namespace {

using json = nlohmann::ordered_json;
constexpr uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kNames[] = {{"F64", DType::Float64}, {"F32", DType::Float32},
                                {"F16", DType::Float16}, {"BF16", DType::BFloat16},
                                {"I64", DType::Int64},   {"I32", DType::Int32},
                                {"I16", DType::Int16},   {"I8", DType::Int8},
                                {"U8", DType::UInt8},    {"BOOL", DType::Bool}};

DType parse_dtype(const std::string& s, const std::string& where) {
  for (const auto& n : kNames)
    if (s == n.name) return n.dtype;
  GRAFT_FAIL(where, ": unsupported safetensors dtype '", s, "'");
}

const char* dtype_code(DType d) {
  for (const auto& n : kNames)
    if (n.dtype == d) return n.name;
  GRAFT_FAIL("safetensors: no code for dtype ", dtype_name(d));
}

}  // namespace

bool looks_like_safetensors(std::string_view head, uint64_t file_size) {
  if (head.size() < 9) return false;
  uint64_t n = rd_u64(reinterpret_cast<const uint8_t*>(head.data()));
  return n >= 2 && n <= kMaxHeader && n <= file_size - 8 && head[8] == '{';
}

SafetensorsFile load_safetensors(const std::string& path) {
  return load_safetensors(MappedFile::open(path));
}

SafetensorsFile load_safetensors(MappedFilePtr file) {
  const std::string& name = file->path();
  GRAFT_CHECK(file->size() >= 8, name, ": not a safetensors file (too small)");
  uint64_t n = rd_u64(file->data());
  GRAFT_CHECK(n <= kMaxHeader && n <= file->size() - 8, name, ": safetensors header length ", n,
              " is invalid for a file of ", file->size(), " bytes");
  std::string_view header = file->bytes().substr(8, n);
  json h;
  try {
    // Only {name: {dtype, shape: [..], data_offsets: [..]}} is valid: depth 3 at most.
    h = json::parse(header, [](int depth, json::parse_event_t, json&) {
      if (depth > 4) throw Error("nesting too deep");
      return true;
    });
  } catch (const std::exception& e) {
    GRAFT_FAIL(name, ": bad safetensors header: ", e.what());
  }
  GRAFT_CHECK(h.is_object(), name, ": safetensors header is not a JSON object");
  const uint64_t data_start = 8 + n, data_size = file->size() - data_start;
  SafetensorsFile out;
  out.file = file;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    std::string where = name + ": tensor '" + key + "'";
    if (key == "__metadata__") {
      GRAFT_CHECK(v.is_object(), name, ": __metadata__ must be an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        GRAFT_CHECK(m.value().is_string(), name, ": __metadata__ values must be strings");
        out.metadata.emplace_back(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    GRAFT_CHECK(v.is_object() && v.contains("dtype") && v["dtype"].is_string() &&
                    v.contains("shape") && v["shape"].is_array() && v.contains("data_offsets") &&
                    v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
                where, ": needs dtype, shape and data_offsets");
    DType dt = parse_dtype(v["dtype"].get<std::string>(), where);
    Shape shape;
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      GRAFT_CHECK(d.is_number_unsigned() && shape.size() < 64, where, ": bad shape ",
                  v["shape"].dump());
      uint64_t s = d.get<uint64_t>();
      GRAFT_CHECK(checked_mul(numel, s, data_size, &numel), where, ": shape ", v["shape"].dump(),
                  " exceeds the data section");
      shape.push_back(static_cast<int64_t>(s));
    }
    if (shape_numel(shape) == 0) numel = 0;
    const json& off = v["data_offsets"];
    GRAFT_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(), where,
                ": data_offsets must be non-negative integers");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    GRAFT_CHECK(begin <= end && end <= data_size, where, ": data_offsets [", begin, ", ", end,
                "] outside the data section of ", data_size, " bytes");
    GRAFT_CHECK(end - begin == numel * itemsize(dt), where, ": ", end - begin,
                " bytes do not hold ", dtype_name(dt), shape_str(shape));
    Storage s = storage_view(file, data_start + begin, end - begin);
    if (reinterpret_cast<uintptr_t>(s->data()) % itemsize(dt) != 0) {  // unaligned: copy
      auto c = std::make_shared<StorageImpl>(end - begin, Device::cpu());
      if (end > begin) std::memcpy(c->data(), s->data(), end - begin);
      s = c;
    }
    out.tensors.emplace_back(key, make_tensor(s, shape, contiguous_strides(shape), 0, dt));
  }
  return out;
}

void save_safetensors(const NamedTensors& tensors, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& metadata) {
  json h = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = m;
  }
  std::vector<Tensor> data;
  uint64_t offset = 0;
  for (const auto& [k, t] : tensors) {
    GRAFT_CHECK(k != "__metadata__" && !h.contains(k),
                "save_safetensors: duplicate or reserved name '", k, "'");
    Tensor c = t.cpu().contiguous();
    h[k] = {{"dtype", dtype_code(c.dtype())},
            {"shape", c.sizes()},
            {"data_offsets", {offset, offset + c.nbytes()}}};
    offset += c.nbytes();
    data.push_back(std::move(c));
  }
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  AtomicFileWriter w(path);
  std::string len;
  put_u64(len, hs.size());
  w.write(len);
  w.write(hs);
  for (const Tensor& c : data) w.write(c.raw_data(), c.nbytes());
  w.commit();
}

}  // namespace graft::io
