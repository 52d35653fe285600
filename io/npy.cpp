#include "io/npy.h"

#include <cstring>

#include "core/ops.h"
#include "io/file.h"

namespace graft::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

// Parser for the Python dict literal in the header, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// Only the three keys NumPy writes are accepted.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& name) : s_(s), name_(name) {}

  void parse(std::string* descr, bool* fortran, Shape* shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = string_lit();
      expect(':');
      skip_ws();
      if (key == "descr") {
        *descr = string_lit();
        have_descr = true;
      } else if (key == "fortran_order") {
        *fortran = bool_lit();
        have_order = true;
      } else if (key == "shape") {
        *shape = tuple_lit();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() != '}') fail("expected ',' or '}'");
    }
    if (!have_descr || !have_order || !have_shape)
      fail("header lacks one of 'descr', 'fortran_order', 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    GRAFT_FAIL(name_, ": bad .npy header (", what, " at byte ", i_, "): ", s_);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_lit() {
    skip_ws();
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a string");
    ++i_;
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) fail("unterminated string");
    return std::string(s_.substr(start, i_++ - start));
  }
  bool bool_lit() {
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  Shape tuple_lit() {
    expect('(');
    Shape shape;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return shape;
      }
      if (peek() < '0' || peek() > '9') fail("expected a dimension");
      uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        v = v * 10 + static_cast<uint64_t>(peek() - '0');
        if (v > (uint64_t{1} << 62)) fail("dimension too large");
        ++i_;
      }
      if (peek() == 'L') ++i_;  // Python 2 long suffix
      if (shape.size() >= 64) fail("too many dimensions");
      shape.push_back(static_cast<int64_t>(v));
      skip_ws();
      if (peek() == ',')
        ++i_;
      else if (peek() != ')')
        fail("expected ',' or ')'");
    }
  }

  std::string_view s_;
  const std::string& name_;
  size_t i_ = 0;
};

DType dtype_from_descr(const std::string& d, const std::string& name) {
  GRAFT_CHECK(d.size() >= 2, name, ": unsupported .npy dtype '", d, "'");
  char order = d[0];
  std::string code = d.substr(1);
  GRAFT_CHECK(order != '>' || code == "u1" || code == "i1" || code == "b1", name,
              ": big-endian .npy data ('", d, "') is not supported; save it little-endian");
  GRAFT_CHECK(order == '<' || order == '|' || order == '=' || order == '>', name,
              ": unsupported .npy dtype '", d, "'");
  if (code == "f4") return DType::Float32;
  if (code == "f8") return DType::Float64;
  if (code == "f2") return DType::Float16;
  if (code == "i8") return DType::Int64;
  if (code == "i4") return DType::Int32;
  if (code == "i2") return DType::Int16;
  if (code == "i1") return DType::Int8;
  if (code == "u1") return DType::UInt8;
  if (code == "b1") return DType::Bool;
  GRAFT_FAIL(name, ": unsupported .npy dtype '", d,
             "' (supported: float16/32/64, int8/16/32/64, uint8, bool)");
}

}  // namespace

std::string npy_descr(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "<f4";
    case DType::Float64:
      return "<f8";
    case DType::Float16:
      return "<f2";
    case DType::Int64:
      return "<i8";
    case DType::Int32:
      return "<i4";
    case DType::Int16:
      return "<i2";
    case DType::Int8:
      return "|i1";
    case DType::UInt8:
      return "|u1";
    case DType::Bool:
      return "|b1";
    case DType::BFloat16:
      break;
  }
  GRAFT_FAIL("npy: dtype ", dtype_name(dtype), " has no NumPy equivalent");
}

Tensor parse_npy(std::string_view bytes, const std::string& name) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  GRAFT_CHECK(bytes.size() >= 10 && std::memcmp(p, kMagic, 6) == 0, name,
              ": not a .npy file (bad magic)");
  uint8_t major = p[6];
  size_t header_len, header_start;
  if (major == 1) {
    header_len = rd_u16(p + 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    GRAFT_CHECK(bytes.size() >= 12, name, ": truncated .npy header");
    header_len = rd_u32(p + 8);
    header_start = 12;
  } else {
    GRAFT_FAIL(name, ": unsupported .npy format version ", int(major), ".", int(p[7]));
  }
  GRAFT_CHECK(header_len <= bytes.size() - header_start, name, ": truncated .npy header (",
              header_len, " bytes declared, file is ", bytes.size(), " bytes)");
  std::string descr;
  bool fortran = false;
  Shape shape;
  HeaderParser(bytes.substr(header_start, header_len), name).parse(&descr, &fortran, &shape);
  DType dtype = dtype_from_descr(descr, name);

  size_t data_start = header_start + header_len;
  uint64_t avail = bytes.size() - data_start;
  // `extent` counts 0-sized dims as 1: an empty array's strides must fit int64 too.
  uint64_t numel = 1, extent = 1;
  for (int64_t s : shape) {
    GRAFT_CHECK(checked_mul(numel, static_cast<uint64_t>(s), avail + 1, &numel), name, ": shape ",
                shape_str(shape), " needs more data than the file holds");
    GRAFT_CHECK(checked_mul(extent, static_cast<uint64_t>(std::max<int64_t>(s, 1)),
                            static_cast<uint64_t>(INT64_MAX), &extent),
                name, ": shape ", shape_str(shape), " is too large");
  }
  uint64_t nbytes = numel * itemsize(dtype);
  GRAFT_CHECK(nbytes <= avail, name, ": truncated .npy data: shape ", shape_str(shape), " ",
              dtype_name(dtype), " needs ", nbytes, " bytes, file has ", avail);
  if (dtype == DType::Bool) {
    for (uint64_t i = 0; i < nbytes; ++i)
      GRAFT_CHECK(p[data_start + i] <= 1, name, ": bool array holds a byte other than 0/1");
  }

  Tensor out = from_buffer(p + data_start, Shape{static_cast<int64_t>(numel)}, dtype);
  if (!fortran) return out.view(shape);
  // Column-major: the first index varies fastest.
  Shape strides(shape.size());
  int64_t st = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    strides[d] = st;
    st *= std::max<int64_t>(shape[d], 1);
  }
  return make_tensor(out.storage(), shape, strides, 0, dtype);
}

Tensor load_npy(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_npy(file->bytes(), path);
}

std::string npy_bytes(const Tensor& t) {
  GRAFT_CHECK(t.defined(), "save_npy: undefined tensor");
  std::string descr = npy_descr(t.dtype());
  Tensor c = t.cpu().contiguous();
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (int64_t s : c.sizes()) dict += std::to_string(s) + ", ";
  if (c.dim() > 0) dict.resize(dict.size() - 2);
  if (c.dim() == 1) dict += ",";
  dict += "), }";
  // Pad with spaces and a newline so the data starts 64-byte aligned (NumPy >= 1.14 does this).
  size_t prefix = 10;
  if (dict.size() + 1 + prefix > 65535) prefix = 12;
  size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, 6);
  out.push_back(prefix == 10 ? 1 : 2);
  out.push_back(0);
  if (prefix == 10)
    put_u16(out, static_cast<uint16_t>(dict.size()));
  else
    put_u32(out, static_cast<uint32_t>(dict.size()));
  out += dict;
  out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  return out;
}

void save_npy(const std::string& path, const Tensor& t) {
  std::string bytes = npy_bytes(t);
  AtomicFileWriter w(path);
  w.write(bytes);
  w.commit();
}

}  // namespace graft::io
