#include "train/checkpoint.h"

namespace graft::train {

namespace {

void put(const io::ValuePtr& dict, const std::string& key, io::ValuePtr value) {
  dict->entries.emplace_back(io::Value::from_str(key), std::move(value));
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainingCheckpoint& ckpt) {
  io::ValuePtr root = io::Value::dict();
  put(root, "arch", io::Value::from_str(ckpt.arch));
  put(root, "num_classes", io::Value::from_int(ckpt.num_classes));
  std::vector<io::ValuePtr> names;
  for (const auto& c : ckpt.classes) names.push_back(io::Value::from_str(c));
  put(root, "classes", io::Value::list(std::move(names)));
  put(root, "epoch", io::Value::from_int(ckpt.epoch));
  put(root, "state_dict", io::state_dict_value(ckpt.model));
  if (!ckpt.optimizer.empty()) {
    io::ValuePtr opt = io::Value::dict();
    for (const auto& [k, t] : ckpt.optimizer) put(opt, k, io::Value::from_tensor(t));
    put(root, "optimizer", opt);
  }
  io::save_pth(*root, path);
}

TrainingCheckpoint load_checkpoint(const std::string& path) {
  const io::Checkpoint file = io::load_pth(path);
  TrainingCheckpoint ckpt;
  const io::ValuePtr& root = file.root;
  ckpt.model = io::extract_state_dict(root);
  if (!root->is(io::Value::Kind::Dict)) return ckpt;
  if (auto v = root->get("arch"); v && v->is(io::Value::Kind::Str)) ckpt.arch = v->str;
  if (auto v = root->get("num_classes"); v && v->is(io::Value::Kind::Int))
    ckpt.num_classes = v->integer;
  if (auto v = root->get("epoch"); v && v->is(io::Value::Kind::Int)) ckpt.epoch = v->integer;
  if (auto v = root->get("classes"); v && v->is(io::Value::Kind::List)) {
    for (const auto& item : v->items) {
      GRAFT_CHECK(item->is(io::Value::Kind::Str), "checkpoint '", path,
                  "': 'classes' must be a list of strings");
      ckpt.classes.push_back(item->str);
    }
  }
  if (auto v = root->get("optimizer"); v && v->is(io::Value::Kind::Dict)) {
    for (const auto& [k, t] : v->entries) {
      GRAFT_CHECK(k->is(io::Value::Kind::Str) && t->is(io::Value::Kind::Tensor), "checkpoint '",
                  path, "': 'optimizer' must map names to tensors");
      ckpt.optimizer[k->str] = t->tensor;
    }
  }
  return ckpt;
}

}  // namespace graft::train
