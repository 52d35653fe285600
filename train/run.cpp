#include "train/run.h"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/parallel.h"
#include "data/dataset.h"
#include "io/state_dict.h"
#include "nn/models/resnet.h"
#include "optim/params.h"
#include "train/checkpoint.h"
#include "train/finetune.h"
#include "train/plot.h"
#include "train/telemetry.h"

namespace graft::train {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// ---------------------------------------------------------------- config

#define GRAFT_CONFIG_FIELDS(X)                                                                   \
  X(arch)                                                                                        \
  X(weights)                                                                                     \
  X(num_classes) X(mode) X(train_npy) X(train_labels) X(val_npy) X(val_labels) X(data_dir)       \
      X(val_data) X(dataset) X(image_size) X(augment) X(workers) X(skip_bad_images) X(optimizer) \
          X(lr) X(momentum) X(dampening) X(weight_decay) X(eps) X(nesterov) X(amsgrad) X(betas)  \
              X(freeze) X(param_groups) X(bn) X(backbone_lr_mult) X(head_lr_mult) X(scheduler)   \
                  X(step_size) X(gamma) X(milestones) X(warmup_epochs) X(batch_size) X(epochs)   \
                      X(max_steps) X(val_every) X(shuffle) X(seed) X(label_smoothing)            \
                          X(clip_grad_norm) X(save) X(out) X(device) X(threads)

std::string config_json(const TrainConfig& c) {
  json j;
  j["graft_version"] = GRAFT_VERSION;
#define X(f) j[#f] = c.f;
  GRAFT_CONFIG_FIELDS(X)
#undef X
  return j.dump(2) + "\n";
}

TrainConfig load_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream f(path);
  GRAFT_CHECK(f.good(), "--resume ", dir,
              ": no config.json there (is it a graft train --out folder?)");
  TrainConfig c;
  try {
    const json j = json::parse(f);
#define X(f) \
  if (j.contains(#f)) j.at(#f).get_to(c.f);
    GRAFT_CONFIG_FIELDS(X)
#undef X
  } catch (const json::exception& e) {
    GRAFT_FAIL("--resume ", dir, ": config.json is not valid: ", e.what());
  }
  return c;
}

namespace {

// ---------------------------------------------------------------- Ctrl-C

std::atomic<bool> g_stop{false};
void on_sigint(int) { g_stop.store(true); }

struct SigintScope {
  using Handler = void (*)(int);
  Handler previous;
  SigintScope() : previous(std::signal(SIGINT, on_sigint)) { g_stop.store(false); }
  ~SigintScope() { std::signal(SIGINT, previous); }
};

// ---------------------------------------------------------------- data

struct Data {
  data::DatasetPtr train, val;
  std::vector<std::string> classes;
};

bool exists_dir(const std::string& p) { return !p.empty() && fs::is_directory(p); }

data::DatasetPtr image_folder(const std::string& root, bool train, const TrainConfig& c,
                              std::vector<std::string>* classes) {
  GRAFT_CHECK(exists_dir(root), "data folder '", root, "' does not exist");
  data::ImageFolder::Options o;
  const int64_t size = c.image_size > 0 ? c.image_size : 224;
  const int64_t resize = size * 256 / 224;
  o.transform =
      train && c.augment == "default"
          ? std::static_pointer_cast<const data::Transform>(data::imagenet_train_transform(size))
          : std::static_pointer_cast<const data::Transform>(
                data::imagenet_eval_transform(resize, size));
  o.skip_bad_images = c.skip_bad_images;
  auto ds = std::make_shared<data::ImageFolder>(root, o);
  if (classes) *classes = ds->classes();
  return ds;
}

Data load_data(const TrainConfig& c) {
  Data d;
  const int sources = !c.train_npy.empty() + !c.data_dir.empty() + !c.dataset.empty();
  GRAFT_CHECK(sources == 1, sources == 0
                                ? "no training data: give --train-npy X.npy --train-labels Y.npy, "
                                  "--data DIR or --dataset fashion-mnist"
                                : "give only one of --train-npy, --data and --dataset");
  if (!c.train_npy.empty()) {
    GRAFT_CHECK(!c.train_labels.empty(), "--train-npy needs --train-labels Y.npy (int64 labels)");
    auto ds = data::TensorDataset::from_npy(c.train_npy, c.train_labels);
    d.train = ds;
    for (int64_t i = 0; i < ds->num_classes(); ++i) d.classes.push_back(std::to_string(i));
    if (!c.val_npy.empty()) {
      GRAFT_CHECK(!c.val_labels.empty(), "--val-npy needs --val-labels Y.npy");
      d.val = data::TensorDataset::from_npy(c.val_npy, c.val_labels);
    }
  } else if (!c.data_dir.empty()) {
    GRAFT_CHECK(exists_dir(c.data_dir), "data folder '", c.data_dir, "' does not exist");
    const std::string train_dir =
        exists_dir(c.data_dir + "/train") ? c.data_dir + "/train" : c.data_dir;
    d.train = image_folder(train_dir, true, c, &d.classes);
    std::string val_dir = c.val_data;
    if (val_dir.empty() && exists_dir(c.data_dir + "/val")) val_dir = c.data_dir + "/val";
    if (val_dir.empty() && exists_dir(c.data_dir + "/test")) val_dir = c.data_dir + "/test";
    if (!val_dir.empty()) {
      std::vector<std::string> val_classes;
      d.val = image_folder(val_dir, false, c, &val_classes);
      GRAFT_CHECK(val_classes == d.classes, "the validation folder '", val_dir,
                  "' has other classes than the training folder '", train_dir, "'");
    }
  } else {
    GRAFT_CHECK(c.dataset == "fashion-mnist", "unknown --dataset '", c.dataset,
                "' (expected fashion-mnist)");
    for (bool train : {true, false}) {
      data::FashionMNIST::Options fo;
      fo.train = train;
      fo.demo_size = c.image_size > 0 ? c.image_size : 32;
      data::FashionMNIST ds(fo);
      auto t = std::make_shared<data::TensorDataset>(ds.preprocess(ds.images()), ds.labels());
      (train ? d.train : d.val) = t;
      d.classes = ds.classes();
    }
  }
  if (!c.val_data.empty() && c.data_dir.empty()) {
    std::vector<std::string> val_classes;
    d.val = image_folder(c.val_data, false, c, &val_classes);
  }
  return d;
}

// ---------------------------------------------------------------- model

int64_t head_classes(const io::StateDict& sd) {
  const Tensor* w = io::find_tensor(sd, "fc.weight");
  return w && w->dim() == 2 ? w->size(0) : 0;
}

io::StateDict strip_data_parallel(io::StateDict sd) {
  bool all = !sd.empty();
  for (const auto& [k, t] : sd) all = all && k.rfind("module.", 0) == 0;
  if (all)
    for (auto& kv : sd) kv.first = kv.first.substr(7);
  return sd;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c,
                                                 std::vector<optim::ParamGroup> groups) {
  if (c.optimizer == "sgd") {
    optim::SGDOptions o;
    o.lr = c.lr;
    o.momentum = c.momentum;
    o.dampening = c.dampening;
    o.weight_decay = c.weight_decay;
    o.nesterov = c.nesterov;
    return std::make_unique<optim::SGD>(std::move(groups), o);
  }
  auto adam_like = [&](auto o) {
    o.lr = c.lr;
    o.betas = c.betas;
    o.eps = c.eps;
    o.weight_decay = c.weight_decay;
    o.amsgrad = c.amsgrad;
    return o;
  };
  if (c.optimizer == "adam")
    return std::make_unique<optim::Adam>(std::move(groups), adam_like(optim::AdamOptions{}));
  if (c.optimizer == "adamw")
    return std::make_unique<optim::AdamW>(std::move(groups), adam_like(optim::AdamWOptions{}));
  GRAFT_FAIL("unknown --optimizer '", c.optimizer, "' (expected sgd, adam or adamw)");
}

std::unique_ptr<optim::LRScheduler> make_scheduler(const TrainConfig& c, optim::Optimizer& opt) {
  if (c.scheduler == "none") return nullptr;
  if (c.scheduler == "step") return std::make_unique<optim::StepLR>(opt, c.step_size, c.gamma);
  if (c.scheduler == "multistep")
    return std::make_unique<optim::MultiStepLR>(opt, c.milestones, c.gamma);
  if (c.scheduler == "cosine") return std::make_unique<optim::CosineAnnealingLR>(opt, c.epochs);
  if (c.scheduler == "warmup")
    return std::make_unique<optim::LinearLR>(opt, 1.0 / 3, 1.0, c.warmup_epochs);
  if (c.scheduler == "onecycle") {
    optim::OneCycleOptions o;
    o.max_lr = {c.lr};
    o.total_steps = c.epochs;  // stepped once per epoch by fit()
    return std::make_unique<optim::OneCycleLR>(opt, o);
  }
  GRAFT_FAIL("unknown --scheduler '", c.scheduler,
             "' (expected none, step, multistep, cosine, warmup or onecycle)");
}

void validate(const TrainConfig& c) {
  GRAFT_CHECK(std::isfinite(c.lr) && c.lr >= 0, "--lr must be a finite number >= 0, got ", c.lr);
  GRAFT_CHECK(c.batch_size > 0, "--batch-size must be positive, got ", c.batch_size);
  GRAFT_CHECK(c.epochs > 0, "--epochs must be positive, got ", c.epochs);
  GRAFT_CHECK(c.momentum >= 0 && c.weight_decay >= 0, "--momentum and --weight-decay must be >= 0");
  GRAFT_CHECK(c.augment == "default" || c.augment == "none", "--augment must be default or none");
  GRAFT_CHECK(std::isfinite(c.backbone_lr_mult) && c.backbone_lr_mult >= 0 &&
                  std::isfinite(c.head_lr_mult) && c.head_lr_mult >= 0,
              "--backbone-lr-mult and --head-lr-mult must be >= 0");
  if (c.mode == "scratch")
    GRAFT_CHECK(c.weights.empty(), "--mode scratch trains from random weights; drop --weights");
  if (c.mode == "finetune" || c.mode == "feature-extract")
    GRAFT_CHECK(!c.weights.empty(), "--mode ", c.mode, " needs pretrained --weights W.pth");
  GRAFT_CHECK(
      c.mode.empty() || c.mode == "scratch" || c.mode == "finetune" || c.mode == "feature-extract",
      "unknown --mode '", c.mode, "' (expected scratch, finetune or feature-extract)");
}

void check_writable(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string probe = dir + "/.graft-write-test";
  std::ofstream f(probe);
  GRAFT_CHECK(!ec && f.good(), "cannot write to the output folder '", dir,
              "'; choose another --out or fix its permissions");
  f.close();
  fs::remove(probe, ec);
}

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    GRAFT_CHECK(f.good(), "cannot write '", path, "'");
  }
  fs::rename(tmp, path);
}

}  // namespace

TrainSummary run_training(TrainConfig c) {
  if (!c.resume.empty()) {
    TrainConfig saved = load_config(c.resume);
    // Only the length of the run, the workers, threads, verbosity and where
    // the final weights go may change.
    saved.epochs = c.epochs > saved.epochs ? c.epochs : saved.epochs;
    if (!c.save.empty()) saved.save = c.save;
    saved.workers = c.workers;
    saved.threads = c.threads;
    saved.quiet = c.quiet;
    saved.resume = c.resume;
    saved.out = c.resume;
    c = saved;
  }
  validate(c);
  if (c.threads > 0) set_num_threads(c.threads);
  const Device device = require_device(c.device);
  if (!c.out.empty()) check_writable(c.out);
  manual_seed(c.seed);

  // Data.
  Data d = load_data(c);

  // Model, weights and head.
  io::StateDict weights;
  int64_t ckpt_classes = 0;
  if (!c.weights.empty()) {
    weights = strip_data_parallel(io::load_weights_file(c.weights));
    ckpt_classes = head_classes(weights);
  }
  const int64_t data_classes = d.train->num_classes();
  int64_t classes =
      c.num_classes > 0 ? c.num_classes : (ckpt_classes > 0 ? ckpt_classes : data_classes);
  GRAFT_CHECK(data_classes <= classes, "the training labels need ", data_classes,
              " classes but the model has ", classes, "; pass --num-classes ", data_classes,
              " to replace the head");
  auto model = nn::make_resnet(c.arch, ckpt_classes > 0 ? ckpt_classes : classes);
  if (!weights.empty()) {
    io::LoadOptions lo;
    const io::LoadReport rep = io::load_state_dict(model->state_dict(), weights, lo);
    if (!c.quiet)
      std::cerr << "loaded " << rep.loaded.size() << " tensors from " << c.weights << "\n";
    if (ckpt_classes != classes) {
      model->replace_head(classes);
      if (!c.quiet)
        std::cerr << "replaced the head: fc " << ckpt_classes << " -> " << classes
                  << " classes (fc.weight, fc.bias freshly initialised)\n";
    }
  }
  if (static_cast<int64_t>(d.classes.size()) != classes) {
    d.classes.resize(static_cast<size_t>(classes));
    for (int64_t i = 0; i < classes; ++i)
      if (d.classes[i].empty()) d.classes[i] = std::to_string(i);
  }

  // Fine-tuning recipe.
  FinetuneOptions ft;
  ft.freeze = c.freeze;
  for (const auto& spec : c.param_groups) ft.groups.push_back(parse_group_spec(spec));
  ft.backbone_lr_mult = c.backbone_lr_mult;
  ft.head_lr_mult = c.head_lr_mult;
  ft.bn = parse_bn_policy(c.bn);
  if (c.mode == "feature-extract") {
    model->requires_grad_(false);
    model->fc->requires_grad_(true);
    ft.bn = BnPolicy::Frozen;
  }
  apply_freeze(*model, ft);
  apply_bn_policy(*model, ft.bn);
  model->to(device);
  auto opt = make_optimizer(c, build_param_groups(*model, ft, c.lr));
  if (!c.quiet) std::cerr << optim::params_to_learn(*opt);

  data::DataLoader::Options lo;
  lo.batch_size = c.batch_size;
  lo.shuffle = c.shuffle;
  lo.seed = c.seed;
  lo.num_workers = c.workers;
  data::DataLoader train_loader(d.train, lo);
  std::unique_ptr<data::DataLoader> val_loader;
  if (d.val) {
    data::DataLoader::Options vo = lo;
    vo.shuffle = false;
    val_loader = std::make_unique<data::DataLoader>(d.val, vo);
  }
  auto scheduler = make_scheduler(c, *opt);

  // Resume.
  int64_t start_epoch = 0;
  std::vector<EpochRecord> history;
  if (!c.resume.empty()) {
    const TrainingCheckpoint ck = load_checkpoint(c.resume + "/last.pth");
    io::load_state_dict(model->state_dict(), ck.model);
    opt->load_state_dict(ck.optimizer);
    start_epoch = ck.epoch;
    for (int64_t e = 0; e < start_epoch && scheduler; ++e) scheduler->step();
    if (!c.quiet) std::cerr << "resuming " << c.resume << " after epoch " << start_epoch << "\n";
  }

  TrainSummary summary;
  std::string metrics_csv;
  if (!c.out.empty()) {
    write_text(c.out + "/config.json", config_json(c));
    std::string names;
    for (const auto& n : d.classes) names += n + "\n";
    write_text(c.out + "/classes.txt", names);
    std::ifstream old(c.out + "/metrics.csv");
    if (start_epoch > 0 && old.good()) {
      std::string line;
      int64_t kept = -1;  // header + completed epochs only
      while (std::getline(old, line) && kept < start_epoch) {
        metrics_csv += line + "\n";
        ++kept;
      }
    }
  }
  if (metrics_csv.empty()) {
    metrics_csv = "epoch,train_loss,train_acc,val_loss,val_acc,seconds,images_per_sec";
    for (size_t g = 0; g < opt->param_groups().size(); ++g)
      metrics_csv += ",lr_group" + std::to_string(g);
    metrics_csv += "\n";
  }

  FitOptions fo;
  fo.epochs = c.epochs;
  fo.start_epoch = start_epoch;
  fo.val_every = c.val_every;
  fo.hflip = false;  // image folders flip inside their transform; tensors are not augmented
  fo.seed = c.seed;
  fo.max_steps = c.max_steps;
  fo.device = device;
  fo.num_classes = classes;
  fo.label_smoothing = c.label_smoothing;
  if (c.clip_grad_norm > 0) fo.clip_grad_norm = c.clip_grad_norm;
  fo.quiet = c.quiet;
  fo.stop = &g_stop;
  std::vector<Series> curves(4);
  fo.on_epoch_end = [&](const EpochRecord& r) {
    history.push_back(r);
    if (c.out.empty()) return;
    char row[256];
    std::snprintf(row, sizeof row, "%lld,%.6f,%.6f,%s,%s,%.3f,%.2f",
                  static_cast<long long>(r.epoch), r.train_loss, r.train_acc,
                  r.val_loss ? std::to_string(*r.val_loss).c_str() : "",
                  r.val_acc ? std::to_string(*r.val_acc).c_str() : "", r.seconds, r.images_per_sec);
    metrics_csv += row;
    for (double lr : r.lrs) metrics_csv += "," + std::to_string(lr);
    metrics_csv += "\n";
    write_text(c.out + "/metrics.csv", metrics_csv);
    TrainingCheckpoint ck;
    ck.arch = c.arch;
    ck.num_classes = classes;
    ck.classes = d.classes;
    ck.epoch = r.epoch;
    ck.model = model->state_dict();
    ck.optimizer = opt->state_dict();
    save_checkpoint(c.out + "/last.pth", ck);
    const double score = r.val_acc ? *r.val_acc : r.train_acc;
    if (score > summary.best_val_acc) {
      summary.best_val_acc = score;
      ck.optimizer.clear();
      save_checkpoint(c.out + "/best.pth", ck);
    }
    // Curves over the whole run (resumed epochs come from metrics.csv).
    Chart loss{"loss", "epoch", "loss", {}}, acc{"accuracy", "epoch", "accuracy", {}};
    Series tl{"train", {}, {}, false}, vl{"validation", {}, {}, true};
    Series ta{"train", {}, {}, false}, va{"validation", {}, {}, true};
    std::istringstream rows(metrics_csv);
    std::string line;
    std::getline(rows, line);  // header
    while (std::getline(rows, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string cell;
      while (std::getline(ss, cell, ',')) f.push_back(cell);
      if (f.size() < 5) continue;
      const double e = std::stod(f[0]);
      tl.x.push_back(e);
      tl.y.push_back(std::stod(f[1]));
      ta.x.push_back(e);
      ta.y.push_back(std::stod(f[2]));
      if (!f[3].empty()) {
        vl.x.push_back(e);
        vl.y.push_back(std::stod(f[3]));
        va.x.push_back(e);
        va.y.push_back(std::stod(f[4]));
      }
    }
    loss.series = {tl, vl};
    acc.series = {ta, va};
    write_svg(c.out + "/curves.svg", {loss, acc});
  };

  std::unique_ptr<Telemetry> telemetry;  // --telemetry N
  if (c.telemetry > 0) {
    GRAFT_CHECK(!c.out.empty(), "--telemetry needs --out: telemetry.csv goes into the run folder");
    telemetry = std::make_unique<Telemetry>(*model, *opt, TelemetryOptions{.every = c.telemetry});
    fo.on_step = [&](const StepRecord& s) { telemetry->on_step(s); };
  }

  SigintScope sigint;
  summary.epochs = fit(*model, *opt, scheduler.get(), train_loader, val_loader.get(), fo);
  if (telemetry) {
    telemetry->write_csv(c.out + "/telemetry.csv");
    telemetry->write_svg(c.out + "/telemetry.svg");
  }
  summary.interrupted = g_stop.load();
  if (summary.interrupted && !c.quiet) {
    std::cerr << "\ninterrupted after " << start_epoch + static_cast<int64_t>(summary.epochs.size())
              << " completed epochs";
    if (!c.out.empty()) std::cerr << "; continue with: graft train --resume " << c.out;
    std::cerr << "\n";
  }
  if (!c.save.empty()) {
    model->to(Device::cpu());
    io::save_pth(model->state_dict(), c.save);
  }
  return summary;
}

}  // namespace graft::train
