#include "io/pickle.h"

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "io/file.h"

namespace graft::io {

__extension__ typedef __int128 int128;  // exact bounds arithmetic on untrusted sizes

// ---------------------------------------------------------------- values ----

namespace {
ValuePtr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}
}  // namespace

ValuePtr Value::none() { return make(Kind::None); }
ValuePtr Value::from_bool(bool b) {
  auto v = make(Kind::Bool);
  v->boolean = b;
  return v;
}
ValuePtr Value::from_int(int64_t i) {
  auto v = make(Kind::Int);
  v->integer = i;
  return v;
}
ValuePtr Value::from_float(double d) {
  auto v = make(Kind::Float);
  v->real = d;
  return v;
}
ValuePtr Value::from_str(std::string s) {
  auto v = make(Kind::Str);
  v->str = std::move(s);
  return v;
}
ValuePtr Value::from_tensor(Tensor t) {
  auto v = make(Kind::Tensor);
  v->tensor = std::move(t);
  return v;
}
ValuePtr Value::list(std::vector<ValuePtr> items) {
  auto v = make(Kind::List);
  v->items = std::move(items);
  return v;
}
ValuePtr Value::tuple(std::vector<ValuePtr> items) {
  auto v = make(Kind::Tuple);
  v->items = std::move(items);
  return v;
}
ValuePtr Value::dict() { return make(Kind::Dict); }

ValuePtr Value::get(std::string_view key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : entries)
    if (k->kind == Kind::Str && k->str == key) return v;
  return nullptr;
}

const char* Value::kind_name() const {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::BigInt:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Dict:
      return "dict";
    case Kind::Tensor:
      return "tensor";
    case Kind::Storage:
      return "storage";
    case Kind::Global:
      return "global";
  }
  return "?";
}

namespace {
void repr_into(const Value& v, std::string& out, size_t max_len) {
  if (out.size() > max_len) return;
  switch (v.kind) {
    case Value::Kind::None:
      out += "None";
      break;
    case Value::Kind::Bool:
      out += v.boolean ? "True" : "False";
      break;
    case Value::Kind::Int:
      out += std::to_string(v.integer);
      break;
    case Value::Kind::BigInt:
      out += "<int of " + std::to_string(v.str.size()) + " bytes>";
      break;
    case Value::Kind::Float: {
      std::ostringstream os;
      os.precision(17);
      os << v.real;
      out += os.str();
      break;
    }
    case Value::Kind::Str:
      out += "'" + v.str.substr(0, max_len) + "'";
      break;
    case Value::Kind::Bytes:
      out += "b<" + std::to_string(v.str.size()) + " bytes>";
      break;
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      bool list = v.kind == Value::Kind::List;
      out += list ? "[" : "(";
      for (size_t i = 0; i < v.items.size() && out.size() <= max_len; ++i) {
        if (i) out += ", ";
        repr_into(*v.items[i], out, max_len);
      }
      if (!list && v.items.size() == 1) out += ",";
      out += list ? "]" : ")";
      break;
    }
    case Value::Kind::Dict: {
      out += "{";
      for (size_t i = 0; i < v.entries.size() && out.size() <= max_len; ++i) {
        if (i) out += ", ";
        repr_into(*v.entries[i].first, out, max_len);
        out += ": ";
        repr_into(*v.entries[i].second, out, max_len);
      }
      out += "}";
      break;
    }
    case Value::Kind::Tensor:
      out +=
          "tensor(" + std::string(dtype_name(v.tensor.dtype())) + shape_str(v.tensor.sizes()) + ")";
      break;
    case Value::Kind::Storage:
      out += "storage('" + v.storage_key + "')";
      break;
    case Value::Kind::Global:
      out += "<" + v.str + ">";
      break;
  }
}
}  // namespace

std::string Value::repr(size_t max_len) const {
  std::string out;
  repr_into(*this, out, max_len);
  if (out.size() > max_len) out = out.substr(0, max_len) + "...";
  return out;
}

// ------------------------------------------------------- storage classes ----

namespace {
struct StorageTypeName {
  const char* name;
  DType dtype;
};
constexpr StorageTypeName kStorageTypes[] = {
    {"FloatStorage", DType::Float32}, {"DoubleStorage", DType::Float64},
    {"HalfStorage", DType::Float16},  {"BFloat16Storage", DType::BFloat16},
    {"LongStorage", DType::Int64},    {"IntStorage", DType::Int32},
    {"ShortStorage", DType::Int16},   {"CharStorage", DType::Int8},
    {"ByteStorage", DType::UInt8},    {"BoolStorage", DType::Bool},
};
}  // namespace

DType storage_type_dtype(std::string_view name) {
  if (name.substr(0, 6) == "torch.") name.remove_prefix(6);
  for (const auto& s : kStorageTypes)
    if (name == s.name) return s.dtype;
  GRAFT_FAIL("unsupported storage type '", name, "'");
}

std::string storage_type_name(DType dtype) {
  for (const auto& s : kStorageTypes)
    if (s.dtype == dtype) return s.name;
  GRAFT_FAIL("no torch storage type for dtype ", dtype_name(dtype));
}

// ---------------------------------------------------------------- reader ----

namespace {

bool allowed_global(const std::string& g) {
  static const char* const kAllowed[] = {
      "collections.OrderedDict",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
  };
  for (const char* a : kAllowed)
    if (g == a) return true;
  if (g.rfind("torch.", 0) == 0) {
    std::string_view rest(g);
    rest.remove_prefix(6);
    for (const auto& s : kStorageTypes)
      if (rest == s.name) return true;
  }
  return false;
}

class Unpickler {
 public:
  Unpickler(std::string_view data, const PersistentLoad& pl, const std::string& name,
            const PickleLimits& limits)
      : d_(reinterpret_cast<const uint8_t*>(data.data())),
        n_(data.size()),
        pl_(pl),
        name_(name),
        lim_(limits) {}

  ValuePtr run(size_t* consumed) {
    while (true) {
      size_t op_pos = pos_;
      uint8_t op = u8();
      if (op == static_cast<uint8_t>(PickleOp::Stop)) {
        GRAFT_CHECK(stack_.size() == 1 && marks_.empty(), name_, ": pickle ends with ",
                    stack_.size(), " values on the stack");
        if (consumed)
          *consumed = pos_;
        else
          GRAFT_CHECK(pos_ == n_, name_, ": ", n_ - pos_, " trailing bytes after the pickle");
        return stack_.back();
      }
      step(op, op_pos);
      GRAFT_CHECK(stack_.size() <= lim_.max_stack, name_, ": pickle stack exceeds ", lim_.max_stack,
                  " values");
    }
  }

 private:
  [[noreturn]] void fail_at(size_t pos, const std::string& msg) const {
    GRAFT_FAIL(name_, ": ", msg, " (pickle byte ", pos, ")");
  }
  void need(size_t k) const {
    if (k > n_ - pos_) fail_at(pos_, "truncated pickle");
  }
  uint8_t u8() {
    need(1);
    return d_[pos_++];
  }
  uint64_t uint_le(size_t k) {
    need(k);
    uint64_t v = 0;
    for (size_t i = 0; i < k; ++i) v |= static_cast<uint64_t>(d_[pos_ + i]) << (8 * i);
    pos_ += k;
    return v;
  }
  std::string bytes(uint64_t k) {
    if (k > n_ - pos_) fail_at(pos_, "truncated pickle (a " + std::to_string(k) + "-byte string)");
    std::string s(reinterpret_cast<const char*>(d_ + pos_), k);
    pos_ += k;
    return s;
  }
  std::string line() {  // text opcodes: up to '\n'
    size_t start = pos_;
    while (pos_ < n_ && d_[pos_] != '\n') ++pos_;
    if (pos_ >= n_) fail_at(start, "truncated pickle (unterminated line)");
    ++pos_;
    return std::string(reinterpret_cast<const char*>(d_ + start), pos_ - start - 1);
  }

  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail_at(pos_ - 1, "pickle stack underflow");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail_at(pos_ - 1, "pickle stack underflow");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail_at(pos_ - 1, "pickle MARK missing");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(m)),
                                std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }

  // Containers are frozen once they become children: together with the check
  // in mutable_container this rules out reference cycles.
  void adopt(Value& parent, const ValuePtr& child) {
    child->frozen = true;
    if (child->depth + 1 > parent.depth) parent.depth = child->depth + 1;
    if (parent.depth > lim_.max_depth)
      fail_at(pos_ - 1, "pickle nesting deeper than " + std::to_string(lim_.max_depth));
  }
  ValuePtr make_seq(Value::Kind k, std::vector<ValuePtr> items) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    for (auto& c : items) adopt(*v, c);
    v->items = std::move(items);
    return v;
  }
  Value& mutable_container(Value::Kind k, const char* op) {
    Value& c = *top();
    if (c.kind != k)
      fail_at(pos_ - 1, std::string(op) + " applied to a " + c.kind_name() + ", expected a " +
                            (k == Value::Kind::List ? "list" : "dict"));
    if (c.frozen)
      fail_at(pos_ - 1, std::string(op) + " on a container already in use (cyclic pickle)");
    return c;
  }
  void set_items(std::vector<ValuePtr> kv) {
    if (kv.size() % 2) fail_at(pos_ - 1, "SETITEMS with an odd number of values");
    for (auto& v : kv) v->frozen = true;  // before the check: d[k] = d must fail
    Value& dict = mutable_container(Value::Kind::Dict, "SETITEMS");
    for (size_t i = 0; i < kv.size(); i += 2) {
      adopt(dict, kv[i]);
      adopt(dict, kv[i + 1]);
      // Python dict semantics: a repeated str/int key replaces the value in place.
      const Value& k = *kv[i];
      if (k.kind == Value::Kind::Str || k.kind == Value::Kind::Int) {
        // (append, not operator+: GCC 12 warns falsely on "s" + str)
        std::string hk(1, k.kind == Value::Kind::Str ? 's' : 'i');
        hk.append(k.kind == Value::Kind::Str ? k.str : std::to_string(k.integer));
        auto& slot = dict_index_[&dict];
        if (!slot.first) slot.first = top();  // keeps the address from being reused
        auto [it, fresh] = slot.second.emplace(std::move(hk), dict.entries.size());
        if (!fresh) {
          dict.entries[it->second].second = kv[i + 1];
          continue;
        }
      }
      dict.entries.emplace_back(kv[i], kv[i + 1]);
    }
  }
  void memo_put(uint64_t idx) {
    if (stack_.empty()) fail_at(pos_ - 1, "memo put with an empty stack");
    if (memo_.size() >= lim_.max_memo && !memo_.count(idx))
      fail_at(pos_ - 1, "pickle memo exceeds " + std::to_string(lim_.max_memo) + " entries");
    memo_[idx] = stack_.back();
  }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail_at(pos_ - 1, "pickle memo has no entry " + std::to_string(idx));
    push(it->second);
  }
  ValuePtr global(std::string module, std::string qualname, size_t at) {
    std::string g = module + "." + qualname;
    if (!allowed_global(g))
      fail_at(at, "refusing to load global '" + g +
                      "': not on the allow-list of types a checkpoint may contain "
                      "(the file may be malicious or not a plain state_dict)");
    auto v = std::make_shared<Value>();
    v->kind = Value::Kind::Global;
    v->str = std::move(g);
    return v;
  }
  int64_t as_int(const ValuePtr& v, const char* what) const {
    if (v->kind == Value::Kind::Int) return v->integer;
    if (v->kind == Value::Kind::Bool) return v->boolean;
    GRAFT_FAIL(name_, ": ", what, " must be an int, got ", v->kind_name());
  }
  std::vector<int64_t> as_int_tuple(const ValuePtr& v, const char* what) const {
    GRAFT_CHECK(v->kind == Value::Kind::Tuple || v->kind == Value::Kind::List, name_, ": ", what,
                " must be a tuple, got ", v->kind_name());
    std::vector<int64_t> out;
    for (const auto& x : v->items) out.push_back(as_int(x, what));
    return out;
  }

  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& a) {
    GRAFT_CHECK(a.size() >= 4, name_, ": _rebuild_tensor_v2 expects at least 4 arguments, got ",
                a.size());
    GRAFT_CHECK(a[0]->kind == Value::Kind::Storage, name_,
                ": _rebuild_tensor_v2's first argument must be a storage, got ", a[0]->kind_name());
    const Value& st = *a[0];
    int64_t offset = as_int(a[1], "storage offset");
    Shape sizes = as_int_tuple(a[2], "tensor size");
    Shape strides = as_int_tuple(a[3], "tensor stride");
    GRAFT_CHECK(sizes.size() == strides.size() && sizes.size() <= 64, name_, ": tensor size ",
                shape_str(sizes), " and stride ", shape_str(strides), " do not match");
    // The highest element index reached must lie inside the storage.
    GRAFT_CHECK(offset >= 0 && offset <= st.storage_numel, name_, ": storage offset ", offset,
                " outside storage '", st.storage_key, "' of ", st.storage_numel, " elements");
    bool empty = false;
    int128 last = offset;
    for (size_t i = 0; i < sizes.size(); ++i) {
      GRAFT_CHECK(sizes[i] >= 0 && strides[i] >= 0, name_, ": negative size or stride in ",
                  shape_str(sizes), " / ", shape_str(strides));
      if (sizes[i] == 0)
        empty = true;
      else
        last += static_cast<int128>(sizes[i] - 1) * strides[i];
    }
    GRAFT_CHECK(empty || last < st.storage_numel, name_, ": tensor of size ", shape_str(sizes),
                " stride ", shape_str(strides), " offset ", offset,
                " reads past the end of storage '", st.storage_key, "' (", st.storage_numel,
                " elements)");
    if (empty) offset = 0;
    // requires_grad (a[4]) is not restored: loaded tensors are plain data.
    return Value::from_tensor(make_tensor(st.storage, sizes, strides, offset, st.storage_dtype));
  }

  ValuePtr reduce(const Value& fn, const ValuePtr& args_v, size_t at) {
    if (args_v->kind != Value::Kind::Tuple) fail_at(at, "REDUCE arguments must be a tuple");
    const auto& a = args_v->items;
    if (fn.str == "collections.OrderedDict") {
      if (!a.empty()) fail_at(at, "OrderedDict(...) with arguments is not supported");
      return Value::dict();
    }
    if (fn.str == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a);
    if (fn.str == "torch._utils._rebuild_parameter" ||
        fn.str == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != Value::Kind::Tensor)
        fail_at(at, fn.str + " expects a tensor as its first argument");
      return a[0];  // a Parameter is its data; the hooks and state are ignored
    }
    fail_at(at, "'" + fn.str + "' cannot be called");
  }

  void step(uint8_t op, size_t at) {
    using K = Value::Kind;
    switch (static_cast<PickleOp>(op)) {
      case PickleOp::Proto: {
        uint8_t p = u8();
        if (p > 5) fail_at(at, "unsupported pickle protocol " + std::to_string(p));
        return;
      }
      case PickleOp::Frame:
        uint_le(8);
        return;  // a hint only
      case PickleOp::Mark:
        marks_.push_back(stack_.size());
        return;
      case PickleOp::EmptyTuple:
        push(Value::tuple());
        return;
      case PickleOp::Tuple:
        push(make_seq(K::Tuple, pop_mark()));
        return;
      case PickleOp::Tuple1: {
        auto a = pop();
        push(make_seq(K::Tuple, {a}));
        return;
      }
      case PickleOp::Tuple2: {
        auto b = pop(), a = pop();
        push(make_seq(K::Tuple, {a, b}));
        return;
      }
      case PickleOp::Tuple3: {
        auto c = pop(), b = pop(), a = pop();
        push(make_seq(K::Tuple, {a, b, c}));
        return;
      }
      case PickleOp::EmptyList:
        push(Value::list());
        return;
      case PickleOp::List:
        push(make_seq(K::List, pop_mark()));
        return;
      case PickleOp::Append: {
        auto v = pop();
        v->frozen = true;  // before the check: l.append(l) must fail
        Value& l = mutable_container(K::List, "APPEND");
        adopt(l, v);
        l.items.push_back(std::move(v));
        return;
      }
      case PickleOp::Appends: {
        auto items = pop_mark();
        for (auto& v : items) v->frozen = true;
        Value& l = mutable_container(K::List, "APPENDS");
        for (auto& v : items) adopt(l, v);
        l.items.insert(l.items.end(), items.begin(), items.end());
        return;
      }
      case PickleOp::EmptyDict:
        push(Value::dict());
        return;
      case PickleOp::Dict: {
        auto kv = pop_mark();
        push(Value::dict());
        set_items(std::move(kv));
        return;
      }
      case PickleOp::SetItem: {
        auto v = pop(), k = pop();
        set_items({k, v});
        return;
      }
      case PickleOp::SetItems:
        set_items(pop_mark());
        return;
      case PickleOp::None:
        push(Value::none());
        return;
      case PickleOp::NewTrue:
        push(Value::from_bool(true));
        return;
      case PickleOp::NewFalse:
        push(Value::from_bool(false));
        return;
      case PickleOp::BinInt:
        push(Value::from_int(static_cast<int32_t>(uint_le(4))));
        return;
      case PickleOp::BinInt1:
        push(Value::from_int(static_cast<int64_t>(uint_le(1))));
        return;
      case PickleOp::BinInt2:
        push(Value::from_int(static_cast<int64_t>(uint_le(2))));
        return;
      case PickleOp::Long1:
        push(long_value(uint_le(1), at));
        return;
      case PickleOp::Long4:
        push(long_value(uint_le(4), at));
        return;
      case PickleOp::Int: {  // text int; "I00\n"/"I01\n" are False/True
        std::string s = line();
        if (s == "00" || s == "01") return push(Value::from_bool(s == "01"));
        push(Value::from_int(parse_int(s, at)));
        return;
      }
      case PickleOp::Long: {
        std::string s = line();
        if (!s.empty() && s.back() == 'L') s.pop_back();
        push(Value::from_int(parse_int(s, at)));
        return;
      }
      case PickleOp::BinFloat: {
        uint64_t bits = 0;
        need(8);
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | d_[pos_ + i];  // big-endian
        pos_ += 8;
        double x;
        std::memcpy(&x, &bits, 8);
        push(Value::from_float(x));
        return;
      }
      case PickleOp::Float: {
        std::string s = line();
        char* end = nullptr;
        double x = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') fail_at(at, "bad float literal");
        push(Value::from_float(x));
        return;
      }
      case PickleOp::BinUnicode:
        push(str_value(K::Str, uint_le(4)));
        return;
      case PickleOp::ShortBinUnicode:
        push(str_value(K::Str, uint_le(1)));
        return;
      case PickleOp::BinUnicode8:
        push(str_value(K::Str, uint_le(8)));
        return;
      // Python 2 str: torch loads these as str (encoding='ascii'/'latin1').
      case PickleOp::BinString:
        push(str_value(K::Str, uint_le(4)));
        return;
      case PickleOp::ShortBinString:
        push(str_value(K::Str, uint_le(1)));
        return;
      case PickleOp::BinBytes:
        push(str_value(K::Bytes, uint_le(4)));
        return;
      case PickleOp::ShortBinBytes:
        push(str_value(K::Bytes, uint_le(1)));
        return;
      case PickleOp::BinBytes8:
        push(str_value(K::Bytes, uint_le(8)));
        return;
      case PickleOp::ByteArray8:
        push(str_value(K::Bytes, uint_le(8)));
        return;
      case PickleOp::Global: {
        std::string module = line(), qual = line();
        push(global(std::move(module), std::move(qual), at));
        return;
      }
      case PickleOp::StackGlobal: {
        auto q = pop(), m = pop();
        if (m->kind != K::Str || q->kind != K::Str) fail_at(at, "STACK_GLOBAL needs two strings");
        push(global(m->str, q->str, at));
        return;
      }
      case PickleOp::Reduce: {
        auto args = pop();
        auto fn = pop();
        if (fn->kind != K::Global) fail_at(at, std::string("REDUCE on a ") + fn->kind_name());
        args->frozen = true;
        push(reduce(*fn, args, at));
        return;
      }
      case PickleOp::Build: {
        auto state = pop();
        state->frozen = true;
        Value& obj = *top();
        if (obj.kind == K::Dict && !obj.frozen && state->kind == K::Dict && !obj.attrs) {
          adopt(obj, state);
          obj.attrs = state;  // OrderedDict.__dict__, e.g. state_dict._metadata
          return;
        }
        if (obj.kind == K::Tensor &&
            (state->kind == K::None || (state->kind == K::Tuple && state->items.size() == 4 &&
                                        state->items[3]->kind == K::Dict))) {
          return;  // Parameter.__setstate__ with no tensor-changing state
        }
        fail_at(at, std::string("BUILD on a ") + obj.kind_name() + " is not supported");
      }
      case PickleOp::BinPersId:
        push(persistent(pop(), at));
        return;
      case PickleOp::PersId:
        push(persistent(Value::from_str(line()), at));
        return;
      case PickleOp::BinPut:
        memo_put(uint_le(1));
        return;
      case PickleOp::LongBinPut:
        memo_put(uint_le(4));
        return;
      case PickleOp::Put:
        memo_put(static_cast<uint64_t>(parse_int(line(), at)));
        return;
      case PickleOp::Memoize:
        memo_put(memo_.size());
        return;
      case PickleOp::BinGet:
        memo_get(uint_le(1));
        return;
      case PickleOp::LongBinGet:
        memo_get(uint_le(4));
        return;
      case PickleOp::Get:
        memo_get(static_cast<uint64_t>(parse_int(line(), at)));
        return;
      case PickleOp::Pop:
        pop();
        return;
      case PickleOp::PopMark:
        pop_mark();
        return;
      case PickleOp::Dup:
        push(top());
        return;
      default:
        break;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x", op);
    fail_at(at, buf);
  }

  int64_t parse_int(const std::string& s, size_t at) const {
    if (s.empty() || s.size() > 19) fail_at(at, "bad int literal");
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == s.size()) fail_at(at, "bad int literal");
    int64_t v = 0;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') fail_at(at, "bad int literal");
      v = v * 10 + (s[i] - '0');
    }
    return s[0] == '-' ? -v : v;
  }
  ValuePtr long_value(uint64_t len, size_t at) {
    if (len > 1 << 16) fail_at(at, "integer literal of " + std::to_string(len) + " bytes");
    std::string b = bytes(len);
    if (len <= 8) {
      uint64_t u = 0;
      for (size_t i = 0; i < len; ++i)
        u |= static_cast<uint64_t>(static_cast<uint8_t>(b[i])) << (8 * i);
      if (len > 0 && len < 8 && (static_cast<uint8_t>(b[len - 1]) & 0x80))
        u |= ~uint64_t{0} << (8 * len);
      return Value::from_int(static_cast<int64_t>(u));
    }
    auto v = std::make_shared<Value>();
    v->kind = Value::Kind::BigInt;
    v->str = std::move(b);
    return v;
  }
  ValuePtr str_value(Value::Kind k, uint64_t len) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    v->str = bytes(len);
    return v;
  }
  ValuePtr persistent(const ValuePtr& pid, size_t at) {
    if (!pl_) fail_at(at, "persistent id in a pickle that may not reference storages");
    ValuePtr v = pl_(*pid);
    if (!v) fail_at(at, "persistent id " + pid->repr() + " was not resolved");
    return v;
  }

  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
  const PersistentLoad& pl_;
  const std::string& name_;
  PickleLimits lim_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  // Key -> entry index per dict under construction (the ValuePtr pins the dict).
  std::unordered_map<const Value*, std::pair<ValuePtr, std::unordered_map<std::string, size_t>>>
      dict_index_;
};

}  // namespace

bool looks_like_pickle(std::string_view head) {
  return head.size() >= 2 && static_cast<uint8_t>(head[0]) == static_cast<uint8_t>(PickleOp::Proto);
}

ValuePtr unpickle(std::string_view data, const PersistentLoad& persistent_load,
                  const std::string& name, const PickleLimits& limits, size_t* consumed) {
  return Unpickler(data, persistent_load, name, limits).run(consumed);
}

// ---------------------------------------------------------------- writer ----

namespace {

class Pickler {
 public:
  explicit Pickler(const std::function<StorageId(const Tensor&)>& sid) : sid_(sid) {}
  std::string finish(const Value& root) {
    op(PickleOp::Proto);
    out_ += '\x02';  // protocol 2
    write(root, 0);
    op(PickleOp::Stop);
    return std::move(out_);
  }

 private:
  void op(PickleOp o) { out_ += static_cast<char>(o); }
  void str(const std::string& s) {
    op(PickleOp::BinUnicode);
    put_u32(out_, static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op(PickleOp::BinInt1);
      out_ += static_cast<char>(v);
    } else if (v >= 0 && v < 65536) {
      op(PickleOp::BinInt2);
      put_u16(out_, static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op(PickleOp::BinInt);
      put_u32(out_, static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {  // LONG1: minimal little-endian two's complement
      std::string b;
      put_u64(b, static_cast<uint64_t>(v));
      while (b.size() > 1) {
        auto last = static_cast<uint8_t>(b.back()), prev = static_cast<uint8_t>(b[b.size() - 2]);
        if ((last == 0 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80)))
          b.pop_back();
        else
          break;
      }
      op(PickleOp::Long1);
      out_ += static_cast<char>(b.size());
      out_ += b;
    }
  }
  void shape_tuple(const Shape& s) {
    op(PickleOp::Mark);
    for (int64_t x : s) integer(x);
    op(PickleOp::Tuple);
  }
  void global(const char* module, const std::string& name) {
    op(PickleOp::Global);
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
  }
  void ordered_dict_empty() {
    global("collections", "OrderedDict");
    op(PickleOp::EmptyTuple);
    op(PickleOp::Reduce);
  }
  void tensor(const Tensor& t) {
    GRAFT_CHECK(t.defined(), "pickle: undefined tensor");
    StorageId id = sid_(t);
    global("torch._utils", "_rebuild_tensor_v2");
    op(PickleOp::Mark);
    // persistent id: ('storage', torch.<Type>Storage, key, 'cpu', numel)
    op(PickleOp::Mark);
    str("storage");
    global("torch", storage_type_name(t.dtype()));
    str(id.key);
    str("cpu");
    integer(id.numel);
    op(PickleOp::Tuple);
    op(PickleOp::BinPersId);
    integer(t.storage_offset());
    shape_tuple(t.sizes());
    shape_tuple(t.strides());
    op(t.requires_grad() ? PickleOp::NewTrue : PickleOp::NewFalse);
    ordered_dict_empty();  // backward hooks
    op(PickleOp::Tuple);
    op(PickleOp::Reduce);
  }
  void write(const Value& v, int depth) {
    GRAFT_CHECK(depth < 512, "pickle: value nested too deeply");
    using K = Value::Kind;
    switch (v.kind) {
      case K::None:
        op(PickleOp::None);
        return;
      case K::Bool:
        op(v.boolean ? PickleOp::NewTrue : PickleOp::NewFalse);
        return;
      case K::Int:
        integer(v.integer);
        return;
      case K::Float: {
        op(PickleOp::BinFloat);
        uint64_t bits;
        std::memcpy(&bits, &v.real, 8);
        for (int i = 7; i >= 0; --i) out_ += static_cast<char>((bits >> (8 * i)) & 0xff);
        return;
      }
      case K::Str:
        str(v.str);
        return;
      case K::Bytes:
        op(PickleOp::BinBytes);
        put_u32(out_, static_cast<uint32_t>(v.str.size()));
        out_ += v.str;
        return;
      case K::Tuple:
        op(PickleOp::Mark);
        for (const auto& x : v.items) write(*x, depth + 1);
        op(PickleOp::Tuple);
        return;
      case K::List:
        op(PickleOp::EmptyList);
        if (v.items.empty()) return;
        op(PickleOp::Mark);
        for (const auto& x : v.items) write(*x, depth + 1);
        op(PickleOp::Appends);
        return;
      case K::Dict:
        ordered_dict_empty();
        if (v.entries.empty()) return;
        op(PickleOp::Mark);
        for (const auto& [k, x] : v.entries) {
          write(*k, depth + 1);
          write(*x, depth + 1);
        }
        op(PickleOp::SetItems);
        return;
      case K::Tensor:
        tensor(v.tensor);
        return;
      case K::BigInt:
      case K::Storage:
      case K::Global:
        break;
    }
    GRAFT_FAIL("pickle: cannot write a value of kind ", v.kind_name());
  }

  const std::function<StorageId(const Tensor&)>& sid_;
  std::string out_;
};

}  // namespace

std::string pickle_dumps(const Value& root,
                         const std::function<StorageId(const Tensor&)>& storage_id) {
  return Pickler(storage_id).finish(root);
}

}  // namespace graft::io
