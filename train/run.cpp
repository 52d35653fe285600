#include "train/run.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/env.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "dist/ddp.h"
#include "dist/sync_bn.h"
#include "io/state_dict.h"
#include "nn/models/registry.h"
#include "optim/params.h"
#include "optim/scheduler.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "train/finetune.h"
#include "train/plot.h"
#include "train/telemetry.h"

namespace graft::train {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// ---------------------------------------------------------------- config

// (clang-format 14 is not idempotent on this table)
// clang-format off
#define GRAFT_CONFIG_FIELDS(X)                                                                \
  X(arch) X(weights) X(num_classes) X(mode) X(train_npy) X(train_labels) X(val_npy)           \
  X(val_labels) X(data_dir) X(val_data) X(dataset) X(image_size) X(augment) X(workers)        \
  X(skip_bad_images) X(optimizer) X(lr) X(momentum) X(dampening) X(weight_decay) X(eps)       \
  X(nesterov) X(amsgrad) X(betas) X(freeze) X(param_groups) X(bn) X(backbone_lr_mult)         \
  X(head_lr_mult) X(scheduler) X(step_size) X(gamma) X(milestones) X(warmup_epochs)           \
  X(batch_size) X(epochs) X(max_steps) X(val_every) X(shuffle) X(seed) X(label_smoothing)     \
  X(clip_grad_norm) X(cache_features) X(save) X(out) X(device) X(threads) X(dtype) X(sync_bn) \
  X(world_size)
// clang-format on

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
  bool known_classes = false;              // the class list is the data's (not max label + 1)
  std::optional<EvalTransform> transform;  // how eval/predict must prepare images
};

bool exists_dir(const std::string& p) { return !p.empty() && fs::is_directory(p); }

data::DatasetPtr image_folder(const std::string& root, bool train, const TrainConfig& c,
                              std::vector<std::string>* classes) {
  GRAFT_CHECK(exists_dir(root), "data folder '", root, "' does not exist");
  data::ImageFolder::Options o;
  const int64_t size = c.image_size > 0 ? c.image_size : 224;
  o.transform =
      train && c.augment == "default"
          ? std::static_pointer_cast<const data::Transform>(data::imagenet_train_transform(size))
          : make_transform(imagenet_eval(size));
  o.skip_bad_images = c.skip_bad_images;
  auto ds = std::make_shared<data::ImageFolder>(root, o);
  GRAFT_CHECK(ds->size() > 0, "data folder '", root, "' holds no images");
  if (classes) *classes = ds->classes();
  return ds;
}

void load_npy_data(const TrainConfig& c, Data& d) {
  GRAFT_CHECK(!c.train_labels.empty(), "--train-npy needs --train-labels Y.npy (int64 labels)");
  auto ds = data::TensorDataset::from_npy(c.train_npy, c.train_labels);
  d.train = ds;
  for (int64_t i = 0; i < ds->num_classes(); ++i) d.classes.push_back(std::to_string(i));
  if (!c.val_npy.empty()) {
    GRAFT_CHECK(!c.val_labels.empty(), "--val-npy needs --val-labels Y.npy");
    d.val = data::TensorDataset::from_npy(c.val_npy, c.val_labels);
  }
}

// Decoding and the transform's leading deterministic steps, done once where
// they fit in memory (data::CachedDataset: the same examples bit for bit;
// random steps still run per epoch). `budget` is what is left of the
// run's data cache budget; returns `ds` itself when not cached.
data::DatasetPtr cache_prefix(const data::DatasetPtr& ds, const TrainConfig& c, const char* what,
                              int64_t& budget) {
  data::CachedDataset::Options o;
  o.max_bytes = budget;
  o.num_workers = c.workers;
  std::string why;
  const auto t0 = std::chrono::steady_clock::now();
  auto cached = data::CachedDataset::make(ds, o, &why);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!cached) {
    if (!c.quiet) std::cerr << what << " images not cached in memory: " << why << "\n";
    return ds;
  }
  budget -= cached->bytes();
  if (!c.quiet) {
    std::string rest;  // the per-epoch steps, by name
    if (const auto* comp = dynamic_cast<const data::Compose*>(cached->rest().get())) {
      for (const auto& t : comp->transforms())
        rest += (rest.empty() ? "" : ", ") + t->repr().substr(0, t->repr().find('('));
    } else if (cached->rest()) {
      rest = cached->rest()->repr().substr(0, cached->rest()->repr().find('('));
    }
    std::fprintf(stderr, "%s images decoded once (%lld MiB in memory, %.1f s); per epoch: %s\n",
                 what, static_cast<long long>(cached->bytes() >> 20), secs,
                 rest.empty() ? "nothing (the whole transform is deterministic)" : rest.c_str());
  }
  return cached;
}

// The memory all cached decoded images of a run may take.
constexpr int64_t kDataCacheBudget = int64_t{2} << 30;

void load_folder_data(const TrainConfig& c, Data& d) {
  GRAFT_CHECK(exists_dir(c.data_dir), "data folder '", c.data_dir, "' does not exist");
  const ImageSplits splits = resolve_image_splits(c.data_dir);
  d.train = image_folder(splits.train, true, c, &d.classes);
  d.known_classes = true;
  d.transform = imagenet_eval(c.image_size > 0 ? c.image_size : 224);
  const std::string val_dir = !c.val_data.empty() ? c.val_data : splits.val;
  int64_t budget = kDataCacheBudget;
  d.train = cache_prefix(d.train, c, "training", budget);
  if (val_dir.empty()) return;
  std::vector<std::string> val_classes;
  d.val = image_folder(val_dir, false, c, &val_classes);
  GRAFT_CHECK(val_classes == d.classes, "the validation folder '", val_dir,
              "' has other classes than the training folder '", splits.train, "'");
  d.val = cache_prefix(d.val, c, "validation", budget);
}

void load_fashion_mnist(const TrainConfig& c, Data& d) {
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
  d.known_classes = true;
}

Data load_data(const TrainConfig& c) {
  Data d;
  const int sources = !c.train_npy.empty() + !c.data_dir.empty() + !c.dataset.empty();
  GRAFT_CHECK(sources == 1, sources == 0
                                ? "no training data: give --train-npy X.npy --train-labels Y.npy, "
                                  "--data DIR or --dataset fashion-mnist"
                                : "give only one of --train-npy, --data and --dataset");
  if (!c.train_npy.empty())
    load_npy_data(c, d);
  else if (!c.data_dir.empty())
    load_folder_data(c, d);
  else
    load_fashion_mnist(c, d);
  if (!c.val_data.empty() && c.data_dir.empty()) {
    std::vector<std::string> val_classes;
    d.val = image_folder(c.val_data, false, c, &val_classes);
  }
  return d;
}

// ---------------------------------------------------------------- optimizer and schedule

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

int64_t warmup_length(const TrainConfig& c) {
  return c.scheduler == "warmup" ? std::max<int64_t>(c.warmup_epochs, 1) : c.warmup_epochs;
}

// The main schedule over `epochs` epochs (after any warmup); null for none/warmup.
std::shared_ptr<optim::LRScheduler> main_schedule(const TrainConfig& c, optim::Optimizer& opt,
                                                  int64_t epochs) {
  if (c.scheduler == "none" || c.scheduler == "warmup") return nullptr;
  if (c.scheduler == "step") return std::make_shared<optim::StepLR>(opt, c.step_size, c.gamma);
  if (c.scheduler == "multistep")
    return std::make_shared<optim::MultiStepLR>(opt, c.milestones, c.gamma);
  if (c.scheduler == "cosine") return std::make_shared<optim::CosineAnnealingLR>(opt, epochs);
  if (c.scheduler == "onecycle") {
    optim::OneCycleOptions o;
    o.max_lr = {c.lr};
    o.total_steps = epochs;  // stepped once per epoch by fit()
    return std::make_shared<optim::OneCycleLR>(opt, o);
  }
  GRAFT_FAIL("unknown --scheduler '", c.scheduler,
             "' (expected none, step, multistep, cosine, warmup or onecycle)");
}

// --warmup-epochs W composes with any scheduler as torchvision's reference
// does: LinearLR from lr/3 to lr over W epochs, then the main schedule over
// the remaining epochs (SequentialLR).
std::shared_ptr<optim::Schedule> make_schedule(const TrainConfig& c, optim::Optimizer& opt) {
  const int64_t warm = warmup_length(c);
  if (warm == 0) return main_schedule(c, opt, c.epochs);
  GRAFT_CHECK(warm < c.epochs || c.scheduler == "warmup", "--warmup-epochs ", warm,
              " leaves no epoch of --epochs ", c.epochs, " for --scheduler ", c.scheduler);
  auto linear = std::make_shared<optim::LinearLR>(opt, 1.0 / 3, 1.0, warm);
  auto main = main_schedule(c, opt, c.epochs - warm);
  if (!main) return linear;
  return std::make_shared<optim::SequentialLR>(
      opt, std::vector<std::shared_ptr<optim::LRScheduler>>{linear, main},
      std::vector<int64_t>{warm});
}

// ---------------------------------------------------------------- flags

void validate(const TrainConfig& c) {
  GRAFT_CHECK(std::isfinite(c.lr) && c.lr >= 0, "--lr must be a finite number >= 0, got ", c.lr);
  GRAFT_CHECK(c.batch_size > 0, "--batch-size must be positive, got ", c.batch_size);
  GRAFT_CHECK(c.epochs >= 0, "--epochs must be positive, got ", c.epochs);
  GRAFT_CHECK(c.max_steps == -1 || c.max_steps > 0, "--max-steps must be positive, got ",
              c.max_steps);
  GRAFT_CHECK(c.warmup_epochs >= 0, "--warmup-epochs must be >= 0, got ", c.warmup_epochs);
  GRAFT_CHECK(c.val_every > 0, "--val-every must be positive, got ", c.val_every);
  GRAFT_CHECK(c.momentum >= 0 && c.weight_decay >= 0, "--momentum and --weight-decay must be >= 0");
  GRAFT_CHECK(c.augment == "default" || c.augment == "none", "--augment must be default or none");
  GRAFT_CHECK(c.cache_features == "auto" || c.cache_features == "on" || c.cache_features == "off",
              "--cache-features must be auto, on or off, got '", c.cache_features, "'");
  GRAFT_CHECK(c.dtype == "float32" || c.dtype == "float64",
              "--dtype must be float32 or float64, got '", c.dtype, "'");
  GRAFT_CHECK(c.dist_timeout > 0, "--dist-timeout must be positive, got ", c.dist_timeout);
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

// A flag the user gave that would change nothing is an error saying why.
void refuse_idle_flags(const TrainConfig& c) {
  auto refuse = [&](const char* flag, const std::string& why) {
    GRAFT_CHECK(!c.given.count(flag), "--", flag, " has no effect ", why);
  };
  if (c.optimizer != "sgd")
    for (const char* f : {"momentum", "nesterov", "dampening"})
      refuse(f,
             "with --optimizer " + c.optimizer + " (SGD only; Adam's momentum terms are --betas)");
  else
    for (const char* f : {"betas", "eps", "amsgrad"})
      refuse(f, "with --optimizer sgd (Adam and AdamW only)");
  if (c.scheduler != "step") refuse("step-size", "without --scheduler step");
  if (c.scheduler != "step" && c.scheduler != "multistep")
    refuse("gamma", "without --scheduler step or multistep");
  if (c.scheduler != "multistep") refuse("milestones", "without --scheduler multistep");
  if (c.scheduler == "onecycle")
    refuse("warmup-epochs", "with --scheduler onecycle, which has its own warmup phase");
  if (!c.param_groups.empty())
    for (const char* f : {"backbone-lr-mult", "head-lr-mult"})
      refuse(f, "with --param-group, whose groups set their own lr");
  if (c.mode == "feature-extract") {
    refuse("backbone-lr-mult", "with --mode feature-extract: the backbone is frozen");
    if (c.bn != "frozen") refuse("bn", "with --mode feature-extract, which always freezes BN");
  }
  if (!c.train_npy.empty()) {
    const char* why =
        "with --train-npy: tensors are used as they are (no decoding, resizing or "
        "augmentation)";
    for (const char* f : {"image-size", "augment", "skip-bad-images"}) refuse(f, why);
  }
}

// --resume takes everything from the run folder; only the length of the run
// and where and how it runs may change, with a note.
TrainConfig resume_config(const TrainConfig& cli) {
  static const std::set<std::string> may_change = {
      "resume", "epochs", "max-steps",   "save",         "workers",       "threads",
      "quiet",  "device", "distributed", "dist-timeout", "cache-features"};
  for (const auto& f : cli.given)
    GRAFT_CHECK(may_change.count(f), "--", f,
                " cannot change on --resume: the run's settings come from ", cli.resume,
                "/config.json (start a new run with --weights ", cli.resume,
                "/last.pth to change them)");
  TrainConfig c = load_config(cli.resume);
  const bool fixed_length = c.scheduler == "cosine" || c.scheduler == "onecycle";
  if (cli.given.count("epochs") && cli.epochs != c.epochs) {
    GRAFT_CHECK(!fixed_length, "--epochs ", cli.epochs, " on --resume: the ", c.scheduler,
                " schedule of ", cli.resume, " was laid out for ", c.epochs,
                " epochs and cannot be stretched");
    if (!cli.quiet)
      std::cerr << "note: --epochs " << cli.epochs << " applied: the run now ends after epoch "
                << cli.epochs << " (was " << c.epochs << ")\n";
    c.epochs = cli.epochs;
  }
  if (cli.given.count("max-steps")) {
    if (!cli.quiet && cli.max_steps != c.max_steps)
      std::cerr << "note: --max-steps " << cli.max_steps << " applied (was " << c.max_steps
                << ")\n";
    c.max_steps = cli.max_steps;
  }
  if (cli.given.count("save")) c.save = cli.save;
  if (cli.given.count("device")) c.device = cli.device;
  c.workers = cli.workers;
  c.threads = cli.threads;
  // The same computation either way (up to the backbone's float rounding).
  if (cli.given.count("cache-features")) c.cache_features = cli.cache_features;
  c.distributed = cli.distributed;
  c.dist_timeout = cli.dist_timeout;
  c.quiet = cli.quiet;
  c.resume = c.out = fs::absolute(cli.resume).string();
  return c;
}

void make_paths_absolute(TrainConfig& c) {
  for (std::string* p : {&c.weights, &c.train_npy, &c.train_labels, &c.val_npy, &c.val_labels,
                         &c.data_dir, &c.val_data, &c.save, &c.out})
    if (!p->empty()) *p = fs::absolute(*p).lexically_normal().string();
}

// ---------------------------------------------------------------- run folder

const char* const kRunFiles[] = {"metrics.csv", "config.json", "classes.txt",
                                 "curves.svg",  "last.pth",    "best.pth"};

std::string timestamp() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// Checks (without leaving anything behind) that --out can be written, and
// refuses a folder that already holds files unless --overwrite.
void prepare_out(TrainConfig& c) {
  if (c.out.empty() && c.save.empty()) {
    const std::string base = "runs/" + c.arch + "-" + timestamp();
    std::string dir = base;
    for (int i = 2; fs::exists(dir); ++i) dir = base + "-" + std::to_string(i);
    c.out = fs::absolute(dir).string();
    if (!c.quiet) std::cerr << "writing the run to " << dir << " (choose with --out)\n";
  }
  if (c.out.empty() || !c.resume.empty()) return;
  std::error_code ec;
  if (fs::is_directory(c.out, ec) && !fs::is_empty(c.out, ec)) {
    GRAFT_CHECK(c.overwrite, "--out ", c.out,
                " already holds files; pass --overwrite to replace its run, or --resume ", c.out,
                " to continue it");
    for (const char* f : kRunFiles) fs::remove(c.out + "/" + f, ec);
  }
  // Probe, then remove what the probe created: nothing is written before
  // the first epoch completes.
  fs::path top = fs::absolute(c.out);
  while (!top.parent_path().empty() && top.parent_path() != top && !fs::exists(top.parent_path()))
    top = top.parent_path();
  const bool created = !fs::exists(top);
  fs::create_directories(c.out, ec);
  const std::string probe = c.out + "/.graft-write-test";
  bool ok = !ec && std::ofstream(probe).good();
  fs::remove(probe, ec);
  if (created) fs::remove_all(top, ec);
  GRAFT_CHECK(ok, "cannot write to the output folder '", c.out,
              "'; choose another --out or fix its permissions");
}

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    f.flush();
    GRAFT_CHECK(f.good(), "cannot write '", path, "'");
  }
  fs::rename(tmp, path);
}

std::string fmt_g17(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string metrics_row(const EpochRecord& r) {
  std::ostringstream row;
  row << r.epoch << "," << fmt_g(r.train_loss) << "," << fmt_g(r.train_acc) << ","
      << (r.val_loss ? fmt_g(*r.val_loss) : "") << "," << (r.val_acc ? fmt_g(*r.val_acc) : "")
      << "," << fmt_g(r.seconds) << "," << fmt_g(r.images_per_sec);
  for (double lr : r.lrs) row << "," << fmt_g(lr);
  row << "\n";
  return row.str();
}

// The curves of the whole run: loss and accuracy per epoch, training and
// validation.
void write_curves(const std::string& path, const std::vector<EpochRecord>& history) {
  Chart loss{"loss", "epoch", "loss", {}}, acc{"accuracy", "epoch", "accuracy", {}};
  Series tl{"train", {}, {}, false}, vl{"validation", {}, {}, true};
  Series ta{"train", {}, {}, false}, va{"validation", {}, {}, true};
  for (const EpochRecord& r : history) {
    const auto e = static_cast<double>(r.epoch);
    tl.x.push_back(e);
    tl.y.push_back(r.train_loss);
    ta.x.push_back(e);
    ta.y.push_back(r.train_acc);
    if (r.val_loss) {
      vl.x.push_back(e);
      vl.y.push_back(*r.val_loss);
    }
    if (r.val_acc) {
      va.x.push_back(e);
      va.y.push_back(*r.val_acc);
    }
  }
  loss.series = {tl, vl};
  acc.series = {ta, va};
  write_svg(path, {loss, acc});
}

// The epochs a resumed run has already done, as far as the curves need them,
// from the rows of metrics.csv it keeps (read once, at resume).
std::vector<EpochRecord> curve_history(const std::string& metrics_csv) {
  std::vector<EpochRecord> history;
  std::istringstream rows(metrics_csv);
  std::string line;
  std::getline(rows, line);  // header
  while (std::getline(rows, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    if (f.size() < 5) continue;
    EpochRecord r;
    r.epoch = std::stoll(f[0]);
    r.train_loss = std::stod(f[1]);
    r.train_acc = std::stod(f[2]);
    if (!f[3].empty()) r.val_loss = std::stod(f[3]);
    if (!f[4].empty()) r.val_acc = std::stod(f[4]);
    history.push_back(std::move(r));
  }
  return history;
}

// The rows of metrics.csv (header included) for the first `epochs` epochs.
std::string kept_metrics(const std::string& path, int64_t epochs) {
  std::ifstream old(path);
  std::string text, line;
  for (int64_t kept = -1; kept < epochs && std::getline(old, line); ++kept) text += line + "\n";
  return text;
}

// ---------------------------------------------------------------- model

struct Model {
  std::shared_ptr<nn::Classifier> net;
  int64_t classes = 0;
};

int64_t choose_classes(const TrainConfig& c, const Data& d, int64_t ckpt_classes) {
  const int64_t data_classes = d.train->num_classes();
  const std::string where = !c.data_dir.empty() ? " in " + c.data_dir : "";
  if (c.num_classes > 0 && d.known_classes)
    GRAFT_CHECK(c.num_classes == data_classes, "--num-classes ", c.num_classes, " but the data",
                where, " has ", data_classes,
                " classes: a wider head has outputs no label can train; drop --num-classes");
  const int64_t classes = c.num_classes > 0  ? c.num_classes
                          : d.known_classes  ? data_classes
                          : ckpt_classes > 0 ? ckpt_classes
                                             : data_classes;
  GRAFT_CHECK(data_classes <= classes, "the training labels need ", data_classes,
              " classes but the model has ", classes, "; pass --num-classes ", data_classes,
              " to replace the head");
  return classes;
}

// Loads `sd` into `net` (strict), or fails in one line with the likely cause.
void load_or_explain(nn::Classifier& net, const io::NamedTensors& sd, const std::string& what,
                     const std::string& arch) {
  io::LoadOptions dry;
  dry.strict = false;
  dry.dry_run = true;
  const io::LoadReport rep = io::load_state_dict(net.state_dict(), sd, dry);
  if (!rep.ok()) {
    std::string hint = io::diagnose_load(rep, nn::model_spec(arch).head_linear);
    const std::string looks = nn::infer_arch(sd);
    if (!looks.empty() && looks != arch) hint += "; the file looks like a " + looks;
    GRAFT_FAIL("'", what, "' does not fit --arch ", arch, ": ", hint);
  }
  io::load_state_dict(net.state_dict(), sd);
}

Model build_model(const TrainConfig& c, Data& d, const TrainingCheckpoint* resumed) {
  Model m;
  if (resumed) {
    GRAFT_CHECK(resumed->arch.empty() || resumed->arch == c.arch, "--resume ", c.resume,
                ": last.pth holds a ", resumed->arch, " but config.json says ", c.arch);
    m.classes = nn::head_classes(resumed->model, c.arch);
    m.net = nn::build_model(c.arch, m.classes);
    if (c.dtype == "float64") m.net->to(DType::Float64);  // load without rounding
    load_or_explain(*m.net, resumed->model, c.resume + "/last.pth", c.arch);
  } else if (!c.weights.empty()) {
    const TrainingCheckpoint w = load_checkpoint(c.weights, c.quiet);
    const int64_t ckpt_classes = nn::head_classes(w.model, c.arch);
    m.classes = choose_classes(c, d, ckpt_classes);
    m.net = nn::build_model(c.arch, ckpt_classes > 0 ? ckpt_classes : m.classes);
    if (c.dtype == "float64") m.net->to(DType::Float64);  // load without rounding
    load_or_explain(*m.net, w.model, c.weights, c.arch);
    if (!c.quiet) std::cerr << "loaded " << w.model.size() << " tensors from " << c.weights << "\n";
    if (ckpt_classes != m.classes) {
      m.net->replace_classifier(m.classes);
      const std::string& head = nn::model_spec(c.arch).head_linear;
      if (!c.quiet)
        std::cerr << "replaced the head: " << head << " " << ckpt_classes << " -> " << m.classes
                  << " classes (" << (c.num_classes > 0 ? "--num-classes" : "the data's") << "); "
                  << head << ".weight and " << head << ".bias freshly initialised\n";
    }
  } else {
    m.classes = choose_classes(c, d, 0);
    m.net = nn::build_model(c.arch, m.classes);
    if (c.dtype == "float64") m.net->to(DType::Float64);  // load without rounding
  }
  if (static_cast<int64_t>(d.classes.size()) != m.classes) {
    d.classes.resize(static_cast<size_t>(m.classes));
    for (int64_t i = 0; i < m.classes; ++i)
      if (d.classes[static_cast<size_t>(i)].empty())
        d.classes[static_cast<size_t>(i)] = std::to_string(i);
  }
  return m;
}

// Freezing, BN policy and optimizer groups; errors for a --bn frozen that
// would freeze nothing.
std::unique_ptr<optim::Optimizer> apply_recipe(const TrainConfig& c, nn::Classifier& net) {
  const FinetuneOptions ft = apply_freeze_flags(c, net);
  if (c.given.count("bn") && ft.bn == BnPolicy::Frozen) {
    bool any_frozen = false;
    for (const auto& [n, p] : net.named_parameters()) any_frozen = any_frozen || !p.requires_grad();
    GRAFT_CHECK(any_frozen,
                "--bn frozen has no effect: no parameter is frozen (add --freeze GLOB "
                "or --mode feature-extract)");
  }
  apply_bn_policy(net, ft.bn);
  return make_optimizer(c, build_param_groups(net, ft, c.lr));
}

// ---------------------------------------------------------------- the run

// Everything one training run holds, and what it writes after each epoch.
struct Run {
  TrainConfig c;
  Data d;
  Model m;
  std::unique_ptr<optim::Optimizer> opt;
  std::shared_ptr<optim::Schedule> schedule;
  BestScore best;
  std::string metrics_csv;
  std::vector<EpochRecord> history;  // metrics.csv's epochs, for the curves
  bool folder_started = false;

  TrainingCheckpoint checkpoint(int64_t epochs_done, const EpochProgress& p) const {
    TrainingCheckpoint ck;
    ck.arch = c.arch;
    ck.num_classes = m.classes;
    ck.classes = d.classes;
    ck.transform = d.transform;
    ck.epoch = epochs_done;
    ck.progress = p;
    ck.best = best;
    ck.model = m.net->state_dict();
    return ck;
  }

  // config.json and classes.txt, written with the first checkpoint.
  void start_folder() {
    if (folder_started) return;
    folder_started = true;
    write_text(c.out + "/config.json", config_json(c));
    std::string names;
    for (const auto& n : d.classes) names += n + "\n";
    write_text(c.out + "/classes.txt", names);
  }

  void save_last(int64_t epochs_done, const EpochProgress& p) {
    start_folder();
    TrainingCheckpoint ck = checkpoint(epochs_done, p);
    ck.optimizer = opt->state_dict();
    if (schedule) ck.scheduler = schedule->state_dict();
    save_checkpoint(c.out + "/last.pth", ck);
  }

  void on_epoch_end(const EpochRecord& r, const EpochProgress& p) {
    if (c.out.empty()) return;
    start_folder();
    metrics_csv += metrics_row(r);
    history.push_back(r);
    write_text(c.out + "/metrics.csv", metrics_csv);
    // Only a validated epoch competes when there is validation data.
    const std::string metric = d.val ? "val_acc" : "train_acc";
    const bool scored = !d.val || r.validated();
    const double score = r.val_acc ? *r.val_acc : r.train_acc;
    const bool partial = p.batch > 0;
    const int64_t done = partial ? r.epoch - 1 : r.epoch;
    if (scored && score > best.score) {
      best = {metric, score, r.epoch};
      save_checkpoint(c.out + "/best.pth", checkpoint(done, {}));
    }
    save_last(done, p);
    write_curves(c.out + "/curves.svg", history);
  }
};

void setup_run(Run& run, const TrainingCheckpoint* resumed) {
  TrainConfig& c = run.c;
  run.m = build_model(c, run.d, resumed);
  run.opt = apply_recipe(c, *run.m.net);
  if (!c.quiet) std::cerr << optim::params_to_learn(*run.opt);
  run.m.net->to(require_device(c.device));
  if (c.dtype == "float64") run.m.net->to(DType::Float64);
  run.schedule = make_schedule(c, *run.opt);
  if (resumed) {
    run.opt->load_state_dict(resumed->optimizer);
    GRAFT_CHECK(!run.schedule || !resumed->scheduler.empty(), "--resume ", c.resume,
                ": last.pth holds no scheduler state");
    if (run.schedule) run.schedule->load_state_dict(resumed->scheduler);
    run.best = resumed->best;
  }
  run.metrics_csv = resumed ? kept_metrics(c.out + "/metrics.csv", resumed->epoch) : "";
  run.history = curve_history(run.metrics_csv);
  if (run.metrics_csv.empty()) {
    run.metrics_csv = "epoch,train_loss,train_acc,val_loss,val_acc,seconds,images_per_sec";
    for (size_t g = 0; g < run.opt->param_groups().size(); ++g)
      run.metrics_csv += ",lr_group" + std::to_string(g);
    run.metrics_csv += "\n";
  }
}

// The loop's settings; a resumed run starts where its last.pth stopped.
FitOptions fit_options(const TrainConfig& c, int64_t classes, const TrainingCheckpoint* resumed) {
  FitOptions fo;
  fo.epochs = c.epochs;
  if (resumed) {
    fo.start_epoch = resumed->epoch;
    fo.resume = resumed->progress;
    if (!c.quiet)
      std::cerr << "resuming " << c.resume << " after epoch " << resumed->epoch
                << (resumed->progress.batch > 0
                        ? " and " + std::to_string(resumed->progress.batch) + " batches of the next"
                        : std::string())
                << "\n";
  }
  fo.val_every = c.val_every;
  fo.hflip = false;  // image folders flip inside their transform; tensors are not augmented
  fo.seed = c.seed;
  fo.max_steps = c.max_steps;
  fo.stop_after_steps = env_int("GRAFT_TEST_STOP_AFTER_STEPS", -1);
  fo.device = require_device(c.device);
  fo.dtype = c.dtype == "float64" ? DType::Float64 : DType::Float32;
  fo.num_classes = classes;
  fo.label_smoothing = c.label_smoothing;
  if (c.clip_grad_norm > 0) fo.clip_grad_norm = c.clip_grad_norm;
  fo.quiet = c.quiet;
  fo.stop = &g_stop;
  return fo;
}

// Epochs when only --max-steps sets the length: as many as it needs.
int64_t resolve_epochs(const TrainConfig& c, int64_t batches_per_epoch) {
  if (c.epochs > 0) return c.epochs;
  if (c.max_steps <= 0) return 1;
  return (c.max_steps + batches_per_epoch - 1) / std::max<int64_t>(batches_per_epoch, 1);
}

// Why --cache-features cannot apply to this run ("" when it can): the
// conditions of FeatureCache::inexact_reason, telemetry, and the memory the
// features would take.
std::string feature_cache_off_reason(const TrainConfig& c, const Run& run, bool hflip) {
  if (c.telemetry > 0)
    return "--telemetry records the backbone's activations at every sampled step";
  if (c.dtype != "float32")
    return "the cache holds float32 features (data batches are float32); --dtype " + c.dtype +
           " runs the backbone in every step";
  std::string why = FeatureCache::inexact_reason(*run.m.net, run.d.train.get());
  if (!why.empty()) {
    if (!run.d.train->deterministic() && !c.data_dir.empty() && c.augment == "default")
      why += " (--augment none trains on the deterministic eval transform)";
    return why;
  }
  const FeatureCacheOptions defaults;
  int64_t need = FeatureCache::bytes_needed(*run.m.net, run.d.train->size(), hflip);
  if (run.d.val && run.d.val->deterministic())
    need += FeatureCache::bytes_needed(*run.m.net, run.d.val->size(), false);
  if (need > defaults.max_bytes)
    return "the features would take " + std::to_string(need >> 20) + " MiB, over the " +
           std::to_string(defaults.max_bytes >> 20) + " MiB budget";
  return {};
}

// The cached data and loaders of a --cache-features run.
struct CachedFeatures {
  std::unique_ptr<FeatureCache> train, val;
  std::unique_ptr<data::DataLoader> train_loader, val_loader;
};

}  // namespace

FinetuneOptions apply_freeze_flags(const TrainConfig& c, nn::Classifier& net) {
  FinetuneOptions ft;
  ft.head_glob = net.head_glob();
  ft.freeze = c.freeze;
  for (const auto& spec : c.param_groups) ft.groups.push_back(parse_group_spec(spec));
  ft.backbone_lr_mult = c.backbone_lr_mult;
  ft.head_lr_mult = c.head_lr_mult;
  ft.bn = parse_bn_policy(c.bn);
  if (c.mode == "feature-extract") {
    net.requires_grad_(false);
    net.classifier()->requires_grad_(true);
    ft.bn = BnPolicy::Frozen;
  }
  apply_freeze(net, ft);
  return ft;
}

bool has_split_layout(const std::string& root) {
  const fs::path train = fs::path(root) / "train";
  std::error_code ec;
  if (!fs::is_directory(train, ec)) return false;
  for (const auto& e : fs::directory_iterator(train, ec))
    if (e.is_directory()) return true;
  return false;
}

ImageSplits resolve_image_splits(const std::string& root) {
  ImageSplits s;
  s.train = has_split_layout(root) ? root + "/train" : root;
  for (const char* v : {"val", "test"})
    if (s.val.empty() && exists_dir(root + "/" + v)) s.val = root + "/" + v;
  return s;
}

namespace {

// FNV-1a over the text: ranks compare their resolved configurations.
int64_t config_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ull;
  return static_cast<int64_t>(h >> 1);
}

// Every rank must train the same run: the resolved flags (less those that
// may differ per rank: device, threads, workers, quiet) are hashed and
// compared across ranks.
void check_same_config(dist::ProcessGroup& pg, TrainConfig c) {
  c.device.clear();
  c.threads = c.workers = 0;
  const int64_t mine = config_hash(config_json(c));
  Tensor h = tensor<int64_t>({mine}, {1});
  const auto all = pg.all_gather(h).to_vector<int64_t>();
  for (int r = 0; r < pg.size(); ++r)
    GRAFT_CHECK(all[static_cast<size_t>(r)] == all[0], "rank ", pg.rank(), ": rank ", r,
                " was started with other graft train flags than rank 0 (config hash ",
                all[static_cast<size_t>(r)], " vs ", all[0],
                "): every rank must get the same flags and data");
}

// Rank 0 alone prints, writes the run folder and --save.
void quiet_follower(TrainConfig& c) {
  c.quiet = true;
  c.out.clear();
  c.save.clear();
  c.telemetry = 0;
}

// ---------------------------------------------------------------- the steps of a run

// The run's settings: the flags, or on --resume the run folder's; checked.
TrainConfig resolve_config(const TrainConfig& cli) {
  const bool resuming = !cli.resume.empty();
  TrainConfig c = resuming ? resume_config(cli) : cli;
  validate(c);
  if (!resuming) {
    refuse_idle_flags(c);
    make_paths_absolute(c);
  }
  return c;
}

// One rank of a data-parallel run: the same flags as every other rank, its
// own GPU; only rank 0 prints and writes.
void join_process_group(dist::ProcessGroup& pg, TrainConfig& c) {
  pg.set_timeout(c.dist_timeout);
  check_same_config(pg, c);
  // Each rank takes its own GPU: cuda -> cuda:<local rank>.
  if (c.device == "cuda") c.device = "cuda:" + std::to_string(dist::launch_info().local_rank);
  if (pg.rank() != 0) quiet_follower(c);
}

// --resume: last.pth, which must leave something to train; a part-done epoch
// only the world size that started it can continue.
TrainingCheckpoint load_resumed(const TrainConfig& c, dist::ProcessGroup* pg) {
  TrainingCheckpoint resumed = load_checkpoint(c.resume + "/last.pth", c.quiet);
  GRAFT_CHECK(resumed.epoch < c.epochs || resumed.progress.batch > 0, "--resume ", c.resume,
              ": the run already completed its ", resumed.epoch,
              " epochs; pass --epochs N (more) to continue it");
  const int rank = pg ? pg->rank() : 0, world = pg ? pg->size() : 1;
  // A saved epoch position counts this rank's batches: it means the same
  // examples only for the same world size. At an epoch boundary any world
  // size can take over.
  GRAFT_CHECK(resumed.progress.batch == 0 || c.world_size == world, "--resume ", c.resume,
              ": the run stopped part-way through epoch ", resumed.epoch + 1, " on ", c.world_size,
              " rank(s); resume it with mpirun -np ", c.world_size,
              " (a different world size can resume only at an epoch boundary)");
  // The saved loss/accuracy sums of a part-done epoch are all ranks' (rank
  // 0 saved them reduced): only rank 0 carries them on.
  if (rank != 0)
    resumed.progress.loss_sum = 0, resumed.progress.correct = 0, resumed.progress.seen = 0;
  if (c.world_size != world && rank == 0 && !c.quiet)
    std::cerr << "note: the run was trained on " << c.world_size << " rank(s) and continues on "
              << world << " (--batch-size " << c.batch_size << " per rank)\n";
  return resumed;
}

// The training batches; in a data-parallel run, this rank's share of them.
data::DataLoader::Options loader_options(const TrainConfig& c, dist::ProcessGroup* pg,
                                         int64_t examples) {
  data::DataLoader::Options lo;
  lo.batch_size = c.batch_size;
  lo.shuffle = c.shuffle;
  lo.seed = c.seed;
  lo.num_workers = c.workers;
  if (pg) {
    const int world = pg->size();
    const int64_t batches = (examples + c.batch_size - 1) / c.batch_size;
    GRAFT_CHECK(world <= batches, "world size ", world, " is larger than the ", batches,
                " batches of the training data at --batch-size ", c.batch_size,
                ": some ranks would train only on repeated (padding) examples; use fewer ranks "
                "or a smaller --batch-size");
    lo.num_replicas = world;
    lo.rank = pg->rank();
  }
  return lo;
}

// --cache-features: the backbone runs once over the data and the head trains
// on its features (`fo` takes them as its inputs). The cached loaders keep
// the options of the uncached ones (same batches, same order). Empty when
// the run does not cache.
CachedFeatures cache_features(const Run& run, const data::DataLoader::Options& lo,
                              const data::DataLoader* val_loader, dist::ProcessGroup* pg,
                              FitOptions& fo) {
  const TrainConfig& c = run.c;
  CachedFeatures cached;
  if (c.cache_features == "off") return cached;
  std::string why = feature_cache_off_reason(c, run, fo.hflip);
  GRAFT_CHECK(why.empty() || c.cache_features != "on", "--cache-features on: ", why,
              "; features computed once would not give the run's results");
  if (!why.empty()) {
    if (!c.quiet) std::cerr << "features not cached: " << why << "\n";
    return cached;
  }
  FeatureCacheOptions co;
  co.hflip = fo.hflip;
  co.batch_size = c.batch_size;
  co.num_workers = c.workers;
  co.device = fo.device;
  if (pg) {  // the ranks split the backbone pass and gather the features
    co.num_replicas = pg->size();
    co.rank = pg->rank();
    co.all_gather = [pg](const Tensor& t) { return pg->all_gather(t); };
  }
  cached.train = std::make_unique<FeatureCache>(*run.m.net, run.d.train, co);
  cached.train_loader = std::make_unique<data::DataLoader>(cached.train->dataset(), lo);
  fo.input_fn = cached.train->input_fn();
  std::string val_note;
  if (val_loader && run.d.val->deterministic()) {
    co.hflip = false;
    co.train_mode = false;
    cached.val = std::make_unique<FeatureCache>(*run.m.net, run.d.val, co);
    cached.val_loader =
        std::make_unique<data::DataLoader>(cached.val->dataset(), val_loader->options());
    val_note = " and " + std::to_string(run.d.val->size()) + " validation";
  } else if (val_loader) {
    fo.val_model = run.m.net.get();  // random validation examples: the full model
    val_note = " (validation runs the full model: its examples are random)";
  }
  if (!c.quiet) {
    const double secs = cached.train->seconds() + (cached.val ? cached.val->seconds() : 0);
    std::fprintf(stderr,
                 "features cached: the backbone ran once over %lld training%s images "
                 "(%.1f s); the head trains on them\n",
                 static_cast<long long>(run.d.train->size()), val_note.c_str(), secs);
  }
  return cached;
}

// The data-parallel side of a run: the model's DDP wrapper, and
// $GRAFT_DIST_TRACE, rank 0's per-bucket timings.
struct DataParallel {
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  std::unique_ptr<std::ofstream> trace;
};

// One row per gradient bucket of optimizer step `step`.
void write_trace(std::ofstream& trace, const dist::DistributedDataParallel& ddp, int64_t step) {
  const auto& t = ddp.timings();
  for (size_t b = 0; b < t.size(); ++b)
    trace << step << "," << b << "," << t[b].params << "," << t[b].bytes << ","
          << fmt_g17(ddp.backward_start()) << "," << fmt_g17(t[b].start) << "," << fmt_g17(t[b].end)
          << "," << fmt_g17(ddp.backward_end()) << "\n";
  trace.flush();
}

// Tests: $GRAFT_TEST_DIST_FAIL "RANK:STEP:kill" kills this rank, "RANK:STEP:hang"
// stops it from taking part, and "RANK:STEP:sigint" sends it a Ctrl-C, after
// that many steps.
void fail_for_test(int rank, int64_t step) {
  const auto k = env_string("GRAFT_TEST_DIST_FAIL");
  if (!k) return;
  int fr = -1, fs = -1;
  char how[8] = {};
  if (std::sscanf(k->c_str(), "%d:%d:%7s", &fr, &fs, how) != 3 || fr != rank || fs != step) return;
  if (std::string(how) == "sigint") {  // Ctrl-C on this rank alone
    std::raise(SIGINT);
    return;
  }
  // When it stopped (steady clock, shared by the machine's processes): the
  // test measures the other ranks' reaction from here.
  std::fprintf(stderr, "graft-test: rank %d stops at %.6f\n", rank, dist::now());
  std::fflush(stderr);
  if (std::string(how) == "kill") std::raise(SIGKILL);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

// Wraps the model in DDP (after --sync-bn) and hooks it into the loop: `dp`
// and `pg` must outlive the fit() that runs with `fo`.
void attach_data_parallel(dist::ProcessGroup& pg, Run& run, DataParallel& dp, FitOptions& fo) {
  const TrainConfig& c = run.c;
  const int rank = pg.rank(), world = pg.size();
  if (c.sync_bn) {
    const int64_t layers = dist::enable_sync_batch_norm(pg, *run.m.net);
    GRAFT_CHECK(layers > 0, "--sync-bn: the model has no BatchNorm layer");
  }
  dp.ddp = std::make_unique<dist::DistributedDataParallel>(pg, *run.m.net);
  dp.ddp->broadcast_parameters();
  if (!c.quiet)
    std::cerr << "distributed: " << world << " ranks, batch " << c.batch_size << " per rank ("
              << c.batch_size * world << " in all), " << dp.ddp->num_buckets()
              << " gradient buckets\n";
  if (const auto path = env_string("GRAFT_DIST_TRACE"); path && rank == 0) {
    dp.trace = std::make_unique<std::ofstream>(*path);
    *dp.trace << "step,bucket,params,bytes,backward_start,allreduce_start,allreduce_end,"
                 "backward_end\n";
  }
  fo.before_forward = [&dp] { dp.ddp->before_forward(); };
  fo.before_backward = [&dp] { dp.ddp->before_backward(); };
  fo.after_backward = [&dp, rank, step = int64_t{0}]() mutable {
    dp.ddp->after_backward();
    ++step;
    if (dp.trace) write_trace(*dp.trace, *dp.ddp, step);
    fail_for_test(rank, step);
  };
  // Ctrl-C reaches the ranks at different steps, or only some of them: the
  // ranks agree after every step (one 8-byte all-reduce), so all stop after
  // the same one and rank 0's last.pth resumes the whole job.
  fo.agree_stop = [&pg](bool here) {
    Tensor v = tensor<double>({here ? 1.0 : 0.0}, {1});
    pg.all_reduce(v, dist::ReduceOp::Sum);
    return v.to_vector<double>()[0] > 0;
  };
  fo.sum_over_ranks = [&pg](std::vector<double>& sums) {
    Tensor v = tensor<double>(sums, {static_cast<int64_t>(sums.size())});
    pg.all_reduce(v, dist::ReduceOp::Sum);
    sums = v.to_vector<double>();
  };
}

// The run folder's updates: after each epoch (metrics, curves, checkpoints)
// and on Ctrl-C (last.pth), which also sets `interrupted`.
void attach_run_folder(Run& run, FitOptions& fo, bool& interrupted) {
  fo.interrupted = &interrupted;
  fo.on_epoch_end = [&run](const EpochRecord& r, const EpochProgress& p) {
    run.on_epoch_end(r, p);
  };
  fo.on_interrupt = [&run](const EpochProgress& p) {
    if (!run.c.out.empty()) run.save_last(p.epoch, p);
  };
}

// --telemetry N: samples every N steps, written into the run folder at the end.
std::unique_ptr<Telemetry> attach_telemetry(Run& run, FitOptions& fo) {
  const TrainConfig& c = run.c;
  if (c.telemetry <= 0) return nullptr;
  GRAFT_CHECK(!c.out.empty(), "--telemetry needs --out: telemetry.csv goes into the run folder");
  auto telemetry =
      std::make_unique<Telemetry>(*run.m.net, *run.opt, TelemetryOptions{.every = c.telemetry});
  fo.on_step = [t = telemetry.get()](const StepRecord& s) { t->on_step(s); };
  return telemetry;
}

// After the loop: telemetry files, the summary, the note on how to continue an
// interrupted run, and --save.
TrainSummary finish(Run& run, std::vector<EpochRecord> epochs, bool interrupted,
                    const Telemetry* telemetry) {
  const TrainConfig& c = run.c;
  if (telemetry) {
    telemetry->write_csv(c.out + "/telemetry.csv");
    telemetry->write_svg(c.out + "/telemetry.svg");
  }
  TrainSummary summary;
  summary.epochs = std::move(epochs);
  summary.interrupted = interrupted;
  summary.best_val_acc = run.best.score;
  if (summary.interrupted && !c.quiet) {
    std::cerr << "\ninterrupted";
    if (!c.out.empty()) std::cerr << "; continue with: graft train --resume " << c.out;
    std::cerr << "\n";
  }
  if (!c.save.empty()) {
    run.m.net->to(Device::cpu());
    io::save_pth(run.m.net->state_dict(), c.save);
  }
  return summary;
}

}  // namespace

TrainSummary run_training(TrainConfig cli) {
  const dist::LaunchInfo launch = dist::launch_info();
  const bool distributed = cli.distributed || launch.world_size > 1;
  if (!distributed) {
    GRAFT_CHECK(!cli.sync_bn,
                "--sync-bn needs distributed training (mpirun -np N graft train ...)");
    return run_training_on(std::move(cli), nullptr);
  }
  GRAFT_CHECK(launch.launched,
              "--distributed: no MPI launcher found (no OMPI_COMM_WORLD_SIZE or "
              "PMI_SIZE); start graft with mpirun -np N graft train ...");
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  try {
    TrainSummary s = run_training_on(std::move(cli), &pg);
    pg.barrier();
    dist::set_clean_exit(true);
    return s;
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("rank ", 0) == 0) throw;
    throw Error("rank " + std::to_string(pg.rank()) + ": " + what);
  }
}

TrainSummary run_training_on(TrainConfig cli, dist::ProcessGroup* pg) {
  const bool resuming = !cli.resume.empty();
  Run run;
  TrainConfig& c = run.c;
  c = resolve_config(cli);
  if (pg) join_process_group(*pg, c);
  if (c.threads > 0) set_num_threads(c.threads);
  require_device(c.device);
  manual_seed(c.seed);
  run.d = load_data(c);
  if (!resuming && c.given.count("val-every"))
    GRAFT_CHECK(run.d.val,
                "--val-every has no effect without validation data (--val-npy, "
                "--val-data, or a val/ or test/ folder beside train/)");
  std::optional<TrainingCheckpoint> resumed;
  if (resuming) resumed = load_resumed(c, pg);
  const TrainingCheckpoint* from = resumed ? &*resumed : nullptr;
  c.world_size = pg ? pg->size() : 1;
  const data::DataLoader::Options lo = loader_options(c, pg, run.d.train->size());
  data::DataLoader train_loader(run.d.train, lo);
  c.epochs = resolve_epochs(c, train_loader.size());
  setup_run(run, from);
  if (!resuming && (!pg || pg->rank() == 0)) prepare_out(c);  // only rank 0 writes the run folder
  std::unique_ptr<data::DataLoader> val_loader;
  if (run.d.val) {
    data::DataLoader::Options vo = lo;
    vo.shuffle = false;
    vo.pad_shards = false;  // each validation example on one rank (sums added over the ranks)
    val_loader = std::make_unique<data::DataLoader>(run.d.val, vo);
  }

  FitOptions fo = fit_options(c, run.m.classes, from);
  DataParallel dp;
  if (pg) attach_data_parallel(*pg, run, dp, fo);  // first: it broadcasts rank 0's weights
  const CachedFeatures cached = cache_features(run, lo, val_loader.get(), pg, fo);
  bool interrupted = false;
  attach_run_folder(run, fo, interrupted);
  const std::unique_ptr<Telemetry> telemetry = attach_telemetry(run, fo);

  std::vector<EpochRecord> epochs;
  SigintScope sigint;
  if (cached.train) {
    data::DataLoader* val = cached.val_loader ? cached.val_loader.get() : val_loader.get();
    epochs =
        fit(*run.m.net->classifier(), *run.opt, run.schedule.get(), *cached.train_loader, val, fo);
  } else {
    epochs = fit(*run.m.net, *run.opt, run.schedule.get(), train_loader, val_loader.get(), fo);
  }
  return finish(run, std::move(epochs), interrupted, telemetry.get());
}

}  // namespace graft::train
