#include "train/checkpoint.h"

#include <filesystem>
#include <iostream>
#include <map>

#include "core/ops.h"
#include "data/transforms.h"

namespace graft::train {

namespace {

using io::Value;
using io::ValuePtr;

void put(const ValuePtr& dict, const std::string& key, ValuePtr value) {
  dict->entries.emplace_back(Value::from_str(key), std::move(value));
}

ValuePtr f64(double v) { return Value::from_tensor(scalar_tensor(v, opts(DType::Float64))); }
ValuePtr f64s(const std::vector<double>& v) { return Value::from_tensor(tensor<double>(v)); }

ValuePtr flat_dict(const optim::FlatState& sd) {
  ValuePtr d = Value::dict();
  for (const auto& [k, t] : sd) put(d, k, Value::from_tensor(t));
  return d;
}

ValuePtr strings(const std::vector<std::string>& v) {
  std::vector<ValuePtr> items;
  for (const auto& s : v) items.push_back(Value::from_str(s));
  return Value::list(std::move(items));
}

// Typed reads of the metadata; a present entry of the wrong type is an error.
struct Reader {
  const std::string& path;

  ValuePtr get(const ValuePtr& d, const char* key, Value::Kind kind, const char* what) const {
    if (!d || !d->is(Value::Kind::Dict)) return nullptr;
    ValuePtr v = d->get(key);
    GRAFT_CHECK(!v || v->is(kind), "checkpoint '", path, "': '", key, "' must be ", what);
    return v;
  }
  void str(const ValuePtr& d, const char* key, std::string& out) const {
    if (auto v = get(d, key, Value::Kind::Str, "a string")) out = v->str;
  }
  void integer(const ValuePtr& d, const char* key, int64_t& out) const {
    if (auto v = get(d, key, Value::Kind::Int, "an int")) out = v->integer;
  }
  std::vector<double> doubles(const ValuePtr& d, const char* key) const {
    auto v = get(d, key, Value::Kind::Tensor, "a float64 tensor");
    return v ? v->tensor.to(DType::Float64).to_vector<double>() : std::vector<double>{};
  }
  void real(const ValuePtr& d, const char* key, double& out) const {
    const auto v = doubles(d, key);
    if (v.size() == 1) out = v[0];
  }
  optim::FlatState flat(const ValuePtr& d, const char* key) const {
    optim::FlatState out;
    if (auto v = get(d, key, Value::Kind::Dict, "a dict of tensors"))
      for (const auto& [k, t] : v->entries) {
        GRAFT_CHECK(k->is(Value::Kind::Str) && t->is(Value::Kind::Tensor), "checkpoint '", path,
                    "': '", key, "' must map names to tensors");
        out[k->str] = t->tensor;
      }
    return out;
  }
};

void read_metadata(const ValuePtr& root, const std::string& path, TrainingCheckpoint& ck) {
  const Reader r{path};
  r.str(root, "graft_version", ck.graft_version);
  r.str(root, "arch", ck.arch);
  r.integer(root, "num_classes", ck.num_classes);
  r.integer(root, "epoch", ck.epoch);
  if (auto v = r.get(root, "classes", Value::Kind::List, "a list of strings"))
    for (const auto& item : v->items) {
      GRAFT_CHECK(item->is(Value::Kind::Str), "checkpoint '", path,
                  "': 'classes' must be a list of strings");
      ck.classes.push_back(item->str);
    }
  if (auto t = r.get(root, "transform", Value::Kind::Dict, "a dict")) {
    EvalTransform e;
    r.integer(t, "resize", e.resize);
    r.integer(t, "crop", e.crop);
    e.mean = r.doubles(t, "mean");
    e.std = r.doubles(t, "std");
    GRAFT_CHECK(e.crop > 0 && e.resize >= e.crop && e.mean.size() == e.std.size(), "checkpoint '",
                path, "': 'transform' is inconsistent");
    ck.transform = e;
  }
  if (auto b = r.get(root, "best", Value::Kind::Dict, "a dict")) {
    r.str(b, "metric", ck.best.metric);
    r.real(b, "score", ck.best.score);
    r.integer(b, "epoch", ck.best.epoch);
  }
  if (auto p = r.get(root, "progress", Value::Kind::Dict, "a dict")) {
    r.integer(p, "epoch", ck.progress.epoch);
    r.integer(p, "batch", ck.progress.batch);
    r.integer(p, "steps", ck.progress.steps);
    r.integer(p, "correct", ck.progress.correct);
    r.integer(p, "seen", ck.progress.seen);
    r.real(p, "loss_sum", ck.progress.loss_sum);
  }
  ck.optimizer = r.flat(root, "optimizer");
  ck.scheduler = r.flat(root, "scheduler");
}

}  // namespace

EvalTransform imagenet_eval(int64_t size) {
  const auto& m = data::kImageNetMean;
  const auto& s = data::kImageNetStd;
  return {size * 256 / 224, size, {m.begin(), m.end()}, {s.begin(), s.end()}};
}

data::TransformPtr make_transform(const EvalTransform& t) {
  const std::vector<float> mean(t.mean.begin(), t.mean.end()), std(t.std.begin(), t.std.end());
  return std::make_shared<data::Compose>(std::vector<data::TransformPtr>{
      std::make_shared<data::Resize>(t.resize), std::make_shared<data::CenterCrop>(t.crop),
      std::make_shared<data::ToTensor>(), std::make_shared<data::Normalize>(mean, std)});
}

void save_checkpoint(const std::string& path, const TrainingCheckpoint& ck) {
  ValuePtr root = Value::dict();
  put(root, "graft_version", Value::from_str(GRAFT_VERSION));
  put(root, "arch", Value::from_str(ck.arch));
  put(root, "num_classes", Value::from_int(ck.num_classes));
  put(root, "classes", strings(ck.classes));
  if (ck.transform) {
    ValuePtr t = Value::dict();
    put(t, "resize", Value::from_int(ck.transform->resize));
    put(t, "crop", Value::from_int(ck.transform->crop));
    put(t, "mean", f64s(ck.transform->mean));
    put(t, "std", f64s(ck.transform->std));
    put(root, "transform", t);
  }
  put(root, "epoch", Value::from_int(ck.epoch));
  ValuePtr best = Value::dict();
  put(best, "metric", Value::from_str(ck.best.metric));
  put(best, "score", f64(ck.best.score));
  put(best, "epoch", Value::from_int(ck.best.epoch));
  put(root, "best", best);
  const EpochProgress& p = ck.progress;
  ValuePtr prog = Value::dict();
  for (const auto& [k, v] : std::map<std::string, int64_t>{{"epoch", p.epoch},
                                                           {"batch", p.batch},
                                                           {"steps", p.steps},
                                                           {"correct", p.correct},
                                                           {"seen", p.seen}})
    put(prog, k, Value::from_int(v));
  put(prog, "loss_sum", f64(p.loss_sum));
  put(root, "progress", prog);
  put(root, "state_dict", io::state_dict_value(ck.model));
  if (!ck.optimizer.empty()) put(root, "optimizer", flat_dict(ck.optimizer));
  if (!ck.scheduler.empty()) put(root, "scheduler", flat_dict(ck.scheduler));
  io::save_pth(*root, path);  // atomic (io::AtomicFileWriter)
}

TrainingCheckpoint load_checkpoint(const std::string& path, bool quiet) {
  TrainingCheckpoint ck;
  GRAFT_CHECK(std::filesystem::exists(path), "weights file '", path, "' does not exist");
  std::string format;
  if (!std::filesystem::is_directory(path))
    format = io::detect_weights_format(*io::MappedFile::open(path));
  if (format == "pth-zip" || format == "pth-legacy") {
    const io::Checkpoint file = io::load_pth(path);
    ck.model = io::extract_state_dict(file.root);
    read_metadata(file.root, path, ck);
  } else {
    ck.model = io::load_weights_file(path);
  }
  if (io::strip_data_parallel(ck.model) && !quiet)
    std::cerr << "note: " << path
              << ": every key started with 'module.' (DataParallel); the prefix was stripped\n";
  return ck;
}

io::LoadReport plan_load(const io::NamedTensors& sd, const std::string& arch, int64_t num_classes) {
  auto model = nn::build_model(arch, num_classes);
  io::LoadOptions o;
  o.strict = false;
  o.dry_run = true;
  return io::load_state_dict(model->state_dict(), sd, o);
}

LoadedModel load_model(const ModelRequest& req) {
  LoadedModel m;
  m.ckpt = load_checkpoint(req.weights, req.quiet);
  const TrainingCheckpoint& ck = m.ckpt;
  const std::string inferred = nn::infer_arch(ck.model);
  m.arch = !ck.arch.empty() ? ck.arch : inferred;
  if (!req.arch.empty() && req.arch != m.arch) {
    GRAFT_CHECK(m.arch.empty() || req.override_meta, "--arch ", req.arch, " contradicts '",
                req.weights, "', which holds a ", m.arch,
                " (drop --arch, or pass --override to use the flag)");
    m.arch = req.arch;
  }
  GRAFT_CHECK(!m.arch.empty(), "'", req.weights,
              "' does not say which model it is and its keys fit none; pass --arch (",
              nn::model_names(), ")");
  const std::string head = nn::model_spec(m.arch).head_linear + ".weight";
  int64_t rows = nn::head_classes(ck.model, m.arch);
  for (const auto& [k, t] : ck.model)  // under a prefix: the load plan below names it
    if (rows == 0 && t.dim() == 2 && k.ends_with("." + head)) rows = t.size(0);
  GRAFT_CHECK(rows > 0, "'", req.weights, "' has no 2-D ", head, ": not a ", m.arch,
              " classifier's weights");
  GRAFT_CHECK(req.num_classes <= 0 || req.num_classes == rows, "--num-classes ", req.num_classes,
              " contradicts '", req.weights, "', whose ", head, " has ", rows,
              " rows (classes); drop --num-classes");
  m.num_classes = rows;
  const io::LoadReport rep = plan_load(ck.model, m.arch, m.num_classes);
  if (!rep.ok()) {
    std::string hint = io::diagnose_load(rep, nn::model_spec(m.arch).head_linear);
    if (!inferred.empty() && inferred != m.arch) hint += "; the file looks like a " + inferred;
    GRAFT_FAIL("'", req.weights, "' does not fit ", m.arch, " with ", m.num_classes,
               " classes: ", hint, " (full report: graft inspect --plan ", req.weights, " --arch ",
               m.arch, ")");
  }
  m.model = nn::build_model(m.arch, m.num_classes);
  io::load_state_dict(m.model->state_dict(), ck.model);
  return m;
}

}  // namespace graft::train
