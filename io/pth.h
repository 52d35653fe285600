// PyTorch checkpoints (.pth/.pt): torch.save's zip format (1.6+) and the legacy
// pre-1.6 format, read without Python into a tree of values (io/pickle.h),
// and state_dicts written in the zip format that torch.load(weights_only=True)
// reads bit-exactly.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/file.h"
#include "io/pickle.h"

namespace graft::io {

// Tensors by name, in order: what a weights file holds (torch's flat
// state_dict()) and what the writers take. nn::ModuleState is the same type.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
const Tensor* find_tensor(const NamedTensors& sd, const std::string& name);

struct Checkpoint {
  ValuePtr root;
  std::string format;  // "zip" or "legacy"
  MappedFilePtr file;  // stored storages are zero-copy views of this mapping
};

// Loads a zip (any archive folder name) or legacy .pth file. Storages are
// mapped once and shared between the tensors that view them; stored zip
// records are not copied. Throws graft::Error on anything malformed or any
// global outside the allow-list (see io/pickle.h).
Checkpoint load_pth(const std::string& path);
Checkpoint load_pth(MappedFilePtr file);

// Extracts the tensors of a checkpoint as a flat state_dict. `sub_path` picks
// a nested dict ("state_dict", "model", or dotted "a.b"); empty means the
// root when it holds tensors, else the first of 'state_dict', 'model_state_dict',
// 'model', 'net', 'module' that does. Nested dicts of tensors flatten to dotted
// names; non-tensor entries are skipped.
NamedTensors extract_state_dict(const ValuePtr& root, const std::string& sub_path = "");

// Writes `sd` (an OrderedDict of tensors; tensors sharing a storage stay
// shared) or any value tree of dicts/lists/tuples/ints/strs/tensors, atomically.
void save_pth(const NamedTensors& sd, const std::string& path);
void save_pth(const Value& root, const std::string& path);
// Wraps a state_dict as an OrderedDict value.
ValuePtr state_dict_value(const NamedTensors& sd);

}  // namespace graft::io
