// An allow-list pickle reader and a small pickle writer, for PyTorch checkpoints.
//
// A .pth file is untrusted input: Python's pickle can call any global. This
// reader never executes anything. It builds a tree of plain values and
// recognises only the globals torch.save emits for tensors and state dicts:
//   collections.OrderedDict
//   torch._utils._rebuild_tensor_v2, _rebuild_parameter, _rebuild_parameter_with_state
//   torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
// Any other global (os.system, builtins.eval, ...) is rejected with an error
// naming it, as is every opcode outside the supported set (protocols 0-5).
// Resources are bounded: nesting depth, stack and memo sizes; containers
// become immutable once placed in another container, so no cycles can form.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace graft::io {

// Pickle opcodes, named as in Python's pickle.py (CamelCased): the ones
// unpickle() accepts; pickle_dumps() emits a subset of them.
enum class PickleOp : uint8_t {
  Mark = '(',
  Stop = '.',
  Pop = '0',
  PopMark = '1',
  Dup = '2',
  Float = 'F',
  Int = 'I',
  BinInt = 'J',
  BinInt1 = 'K',
  Long = 'L',
  BinInt2 = 'M',
  None = 'N',
  PersId = 'P',
  BinPersId = 'Q',
  Reduce = 'R',
  BinString = 'T',
  ShortBinString = 'U',
  BinUnicode = 'X',
  Append = 'a',
  Build = 'b',
  Global = 'c',
  Dict = 'd',
  EmptyDict = '}',
  Appends = 'e',
  Get = 'g',
  BinGet = 'h',
  LongBinGet = 'j',
  List = 'l',
  EmptyList = ']',
  Put = 'p',
  BinPut = 'q',
  LongBinPut = 'r',
  SetItem = 's',
  Tuple = 't',
  EmptyTuple = ')',
  SetItems = 'u',
  BinFloat = 'G',
  BinBytes = 'B',
  ShortBinBytes = 'C',
  Proto = 0x80,
  Tuple1 = 0x85,
  Tuple2 = 0x86,
  Tuple3 = 0x87,
  NewTrue = 0x88,
  NewFalse = 0x89,
  Long1 = 0x8a,
  Long4 = 0x8b,
  ShortBinUnicode = 0x8c,
  BinUnicode8 = 0x8d,
  BinBytes8 = 0x8e,
  StackGlobal = 0x93,
  Memoize = 0x94,
  Frame = 0x95,
  ByteArray8 = 0x96,
};

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind {
    None,
    Bool,
    Int,
    BigInt,
    Float,
    Str,
    Bytes,
    List,
    Tuple,
    Dict,
    Tensor,
    Storage,
    Global
  };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  // Str/Bytes: the bytes (Str is UTF-8); BigInt: little-endian two's complement
  // bytes; Global: "module.name".
  std::string str;
  std::vector<ValuePtr> items;                         // List, Tuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict, in insertion order
  ValuePtr attrs;  // Dict: the state set by BUILD (an OrderedDict's __dict__, e.g. _metadata)
  Tensor tensor;   // Tensor
  // Storage: a typed storage from a persistent id (torch's data/<key> record).
  Storage storage;
  DType storage_dtype = DType::Float32;
  int64_t storage_numel = 0;
  std::string storage_key;

  int depth = 0;        // height of the subtree (bounded)
  bool frozen = false;  // no further mutation once inside another container

  static ValuePtr none();
  static ValuePtr from_bool(bool b);
  static ValuePtr from_int(int64_t i);
  static ValuePtr from_float(double d);
  static ValuePtr from_str(std::string s);
  static ValuePtr from_tensor(Tensor t);
  static ValuePtr list(std::vector<ValuePtr> items = {});
  static ValuePtr tuple(std::vector<ValuePtr> items = {});
  static ValuePtr dict();

  bool is(Kind k) const { return kind == k; }
  bool is_container() const {
    return kind == Kind::List || kind == Kind::Tuple || kind == Kind::Dict;
  }
  // Dict lookup by string key; null when absent or not a dict.
  ValuePtr get(std::string_view key) const;
  // Short Python-like rendering for messages and `graft inspect` (tensors as
  // "tensor(float32[64, 3, 7, 7])"); truncated past max_len characters.
  std::string repr(size_t max_len = 200) const;
  const char* kind_name() const;
};

struct PickleLimits {
  int max_depth = 128;
  size_t max_stack = size_t{1} << 20;
  size_t max_memo = size_t{1} << 20;
};

// Maps a persistent id (torch: ('storage', <StorageType global>, key, location,
// numel[, view_metadata])) to a Storage value. Called once per occurrence; the
// callback caches by key so shared storages are loaded once.
using PersistentLoad = std::function<ValuePtr(const Value& pid)>;

// Unpickles `data`. `name` appears in error messages. Throws graft::Error.
// When `consumed` is given, parsing may stop before the end of `data` (legacy
// .pth files hold several pickles back to back) and the bytes used are stored.
ValuePtr unpickle(std::string_view data, const PersistentLoad& persistent_load,
                  const std::string& name, const PickleLimits& limits = {},
                  size_t* consumed = nullptr);

// Whether `head` (a file's first bytes) starts like a protocol-2+ pickle (a
// legacy, non-zip torch.save file).
bool looks_like_pickle(std::string_view head);

// Storage class name ("FloatStorage") <-> dtype.
DType storage_type_dtype(std::string_view global_name);  // accepts "torch.FloatStorage"
std::string storage_type_name(DType dtype);              // "FloatStorage"

// Writes a protocol-2 pickle that torch.load(weights_only=True) accepts. Tensors
// become _rebuild_tensor_v2 calls whose storage is a persistent id; `storage_id`
// assigns each tensor's storage its record key (called for every tensor; it
// should return the same key for tensors sharing a storage) and tells the
// storage's element count. Dicts are written as OrderedDicts.
struct StorageId {
  std::string key;
  int64_t numel;
};
std::string pickle_dumps(const Value& root,
                         const std::function<StorageId(const Tensor&)>& storage_id);

}  // namespace graft::io
