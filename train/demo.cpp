#include "train/demo.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "data/dataset.h"
#include "data/loader.h"
#include "io/state_dict.h"
#include "nn/layers.h"
#include "nn/models/registry.h"
#include "optim/optimizer.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "train/finetune.h"
#include "train/fit.h"
#include "train/plot.h"

namespace graft::train {

namespace {

using Clock = std::chrono::steady_clock;

data::DataLoader::Options loader_opts(int64_t batch, bool shuffle, uint64_t seed, int workers) {
  data::DataLoader::Options lo;
  lo.batch_size = batch;
  lo.shuffle = shuffle;
  lo.seed = seed;
  lo.num_workers = workers;
  return lo;
}

const char* mode_title(const std::string& m) {
  if (m == "scratch") return "scratch";
  if (m == "finetune") return "fine-tune";
  if (m == "feature-extract") return "feature-extract";
  if (m == "lr0") return "backbone lr=0";
  if (m == "lr0.1x") return "backbone 0.1x lr";
  GRAFT_FAIL("unknown demo mode '", m,
             "' (expected scratch, finetune, feature-extract, lr0 or lr0.1x)");
}

std::shared_ptr<nn::Classifier> pretrain_source(const DemoOptions& o, const std::string& path) {
  auto model = nn::build_model(o.arch, 5);
  if (!o.source_weights.empty()) {
    std::cerr << "source: loading " << o.source_weights << "\n";
    io::load_state_dict(model->state_dict(), io::load_weights_file(o.source_weights));
    return model;
  }
  data::DatasetPtr train = load_demo_task(o, true, kDemoSourceClasses);
  data::DatasetPtr test = load_demo_task(o, false, kDemoSourceClasses);
  if (o.source_limit > 0 && o.source_limit < train->size()) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < o.source_limit; ++i) idx.push_back(i);
    train = std::make_shared<data::Subset>(train, idx);
  }
  std::cerr << "source task: " << o.arch << " on Fashion-MNIST classes 0-4, " << train->size()
            << " images, " << o.source_epochs << " epochs\n";
  data::DataLoader train_loader(train, loader_opts(o.source_batch, true, o.seed, o.workers));
  data::DataLoader test_loader(test, loader_opts(256, false, 0, o.workers));
  optim::SGD opt(model->named_parameters(), demo_sgd(o));
  FitOptions fo;
  fo.epochs = o.source_epochs;
  fo.hflip = true;
  fo.seed = o.seed;
  fo.num_classes = 5;
  const auto t0 = Clock::now();
  fit(*model, opt, nullptr, train_loader, nullptr, fo);
  const EvalResult e = evaluate(*model, test_loader, 5);
  std::fprintf(stderr, "source: test accuracy %.4f on %lld images (%.0f s)\n", e.top1,
               static_cast<long long>(e.count),
               std::chrono::duration<double>(Clock::now() - t0).count());
  TrainingCheckpoint ck;
  ck.arch = o.arch;
  ck.num_classes = 5;
  ck.classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"};
  ck.epoch = o.source_epochs;
  ck.model = model->state_dict();
  save_checkpoint(path, ck);
  return model;
}

void check_demo_options(const DemoOptions& o) {
  for (const auto& m : o.modes) mode_title(m);  // validate names up front
  GRAFT_CHECK(o.cache_features == "auto" || o.cache_features == "on" || o.cache_features == "off",
              "--cache-features must be auto, on or off, got '", o.cache_features, "'");
  if (o.cache_features == "on")
    for (const auto& m : o.modes)
      GRAFT_CHECK(m == "feature-extract", "--cache-features on: mode ", m,
                  " trains the backbone, whose features then change every step (only "
                  "feature-extract can train on cached features; use --modes feature-extract or "
                  "--cache-features auto)");
}

// The target task (Fashion-MNIST classes 5-9) that every K and mode shares.
struct Target {
  data::DatasetPtr train, test;
  // Curve points use a fixed 1,000-image slice of the target test set.
  std::vector<int64_t> curve_idx;
  data::DatasetPtr curve_set;
  // Backbone features of the target test set, shared by every K: each
  // cached mode's backbone is the source model's, unchanged (frozen).
  std::shared_ptr<FeatureCache> test_features;
};

Target load_target(const DemoOptions& o) {
  Target t;
  t.train = load_demo_task(o, true, kDemoTargetClasses);
  t.test = load_demo_task(o, false, kDemoTargetClasses);
  for (int64_t i = 0; i < std::min<int64_t>(1000, t.test->size()); ++i)
    t.curve_idx.push_back(i * t.test->size() / 1000);
  t.curve_set = std::make_shared<data::Subset>(t.test, t.curve_idx);
  return t;
}

struct ModeRun {
  std::vector<EpochRecord> records;
  EvalResult test;
  bool cached = false;
};

// Trains one mode's model on `subset` (curve points on the target's slice)
// and evaluates it on the whole target test set: on the full model, or, where
// that is exact and allowed, on backbone features computed once.
ModeRun train_mode(const DemoOptions& o, const std::string& mode, int64_t k,
                   const data::DatasetPtr& subset, int64_t batch, nn::Classifier& model,
                   optim::Optimizer& opt, FitOptions fo, Target& target) {
  const std::string why =
      o.cache_features == "off" ? "" : FeatureCache::inexact_reason(model, subset.get());
  GRAFT_CHECK(why.empty() || o.cache_features != "on", "--cache-features on: mode ", mode, ": ",
              why);
  ModeRun run;
  run.cached = o.cache_features != "off" && why.empty();
  if (!why.empty() && k == o.ks.front())
    std::fprintf(stderr, "  (%s: features not cached: %s)\n", mode_title(mode), why.c_str());
  if (!run.cached) {
    data::DataLoader train_loader(subset, loader_opts(batch, true, o.seed, o.workers));
    data::DataLoader curve_loader(target.curve_set, loader_opts(256, false, 0, o.workers));
    data::DataLoader test_loader(target.test, loader_opts(256, false, 0, o.workers));
    run.records = fit(model, opt, nullptr, train_loader, &curve_loader, fo);
    run.test = evaluate(model, test_loader, 5);
    return run;
  }
  // The same batches, flips and head steps as above, on features computed
  // once (train/feature_cache.h).
  FeatureCacheOptions co;
  co.hflip = fo.hflip;
  co.batch_size = batch;
  co.num_workers = o.workers;
  const FeatureCache train_features(model, subset, co);
  if (!target.test_features) {
    co.hflip = false;
    co.train_mode = false;
    co.batch_size = 256;
    target.test_features = std::make_shared<FeatureCache>(model, target.test, co);
  }
  data::DataLoader train_loader(train_features.dataset(),
                                loader_opts(batch, true, o.seed, o.workers));
  data::DataLoader curve_loader(
      std::make_shared<data::Subset>(target.test_features->dataset(), target.curve_idx),
      loader_opts(256, false, 0, 0));
  data::DataLoader test_loader(target.test_features->dataset(), loader_opts(256, false, 0, 0));
  fo.input_fn = train_features.input_fn();
  run.records = fit(*model.classifier(), opt, nullptr, train_loader, &curve_loader, fo);
  run.test = evaluate(*model.classifier(), test_loader, 5);
  return run;
}

// One K: every mode trained on the same K-per-class subset; their curves go
// to curves_k<K>.svg.
void run_k(const DemoOptions& o, int64_t k, const io::NamedTensors& source_sd, Target& target,
           std::vector<DemoResult>& results) {
  const int64_t epochs = o.epochs > 0 ? o.epochs : (k <= 30 ? 30 : 15);
  const int64_t batch = o.batch > 0 ? o.batch : (k <= 30 ? 32 : 128);
  const auto subset =
      data::per_class_subset(target.train, k, o.seed + static_cast<uint64_t>(k), true);
  std::cerr << "\ntarget task: K=" << k << " images per class (" << subset->size() << " images), "
            << epochs << " epochs, batch " << batch << "\n";
  std::vector<Chart> charts(2);
  charts[0].title = "train loss, K=" + std::to_string(k);
  charts[0].y_label = "loss";
  charts[1].title = "target test accuracy (1,000 images), K=" + std::to_string(k);
  charts[1].y_label = "accuracy";
  for (const auto& mode : o.modes) {
    FinetuneOptions ft;
    const auto model = demo_mode_model(o, mode, k, source_sd, ft);
    optim::SGD opt(build_param_groups(*model, ft, o.lr), demo_sgd(o));
    FitOptions fo;
    fo.epochs = epochs;
    fo.hflip = true;
    fo.seed = o.seed;
    fo.num_classes = 5;
    fo.val_every = o.val_every;
    fo.quiet = true;
    const auto t0 = Clock::now();
    const ModeRun run = train_mode(o, mode, k, subset, batch, *model, opt, fo, target);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    results.push_back({k, mode, run.test.top1, secs});
    std::fprintf(stderr, "  %-18s test accuracy %.4f  (%5.1f s, final train loss %.4f%s)\n",
                 mode_title(mode), run.test.top1, secs, run.records.back().train_loss,
                 run.cached ? ", cached features" : "");
    Series loss{mode_title(mode), {}, {}, false}, acc{mode_title(mode), {}, {}, false};
    for (const auto& r : run.records) {
      loss.x.push_back(static_cast<double>(r.epoch));
      loss.y.push_back(r.train_loss);
      if (r.val_acc) {
        acc.x.push_back(static_cast<double>(r.epoch));
        acc.y.push_back(*r.val_acc);
      }
    }
    charts[0].series.push_back(loss);
    charts[1].series.push_back(acc);
  }
  write_svg(o.out + "/curves_k" + std::to_string(k) + ".svg", charts);
}

// results.md (rows K, columns modes) and results.csv, and the table on stdout.
void write_results(const DemoOptions& o, const std::vector<DemoResult>& results) {
  std::ostringstream md, csv;
  md << "| K per class |";
  for (const auto& m : o.modes) md << " " << mode_title(m) << " |";
  md << "\n|---|";
  for (size_t i = 0; i < o.modes.size(); ++i) md << "---|";
  md << "\n";
  csv << "k,mode,test_acc,seconds\n";
  for (const int64_t k : o.ks) {
    md << "| " << k << " |";
    for (const auto& r : results) {
      if (r.k != k) continue;
      char cell[64];
      std::snprintf(cell, sizeof cell, " %.3f (%.0f s) |", r.test_acc, r.seconds);
      md << cell;
      csv << r.k << "," << r.mode << "," << r.test_acc << "," << r.seconds << "\n";
    }
    md << "\n";
  }
  std::ofstream(o.out + "/results.md") << md.str();
  std::ofstream(o.out + "/results.csv") << csv.str();
  std::cout
      << "\nTarget test accuracy (5,000 images of Fashion-MNIST classes 5-9), time per mode:\n\n"
      << md.str() << "\nWritten to " << o.out
      << "/ (results.md, results.csv, curves_k*.svg, source.pth)\n";
}

}  // namespace

data::DatasetPtr load_demo_task(const DemoOptions& o, bool train, const std::vector<int64_t>& ids) {
  data::FashionMNIST::Options fo;
  fo.train = train;
  fo.root = o.data_root;
  fo.classes = ids;
  fo.demo_size = o.image_size;
  data::FashionMNIST ds(fo);
  return std::make_shared<data::TensorDataset>(ds.preprocess(ds.images()), ds.labels());
}

std::shared_ptr<nn::Classifier> demo_mode_model(const DemoOptions& o, const std::string& mode,
                                                int64_t k, const io::NamedTensors& source_sd,
                                                FinetuneOptions& ft) {
  // mode_title refuses an unknown mode.
  mode_title(mode);
  manual_seed(o.seed + 1000 + static_cast<uint64_t>(k));  // same head init for every mode
  auto model = nn::build_model(o.arch, 5);
  ft.head_glob = model->head_glob();
  if (mode != "scratch") {
    io::LoadOptions lo;
    lo.skip(model->head_glob());
    lo.strict = false;
    io::load_state_dict(model->state_dict(), source_sd, lo);
    model->replace_classifier(5);
  }
  if (mode == "feature-extract") {
    // Only the new head learns; BN layers of the frozen backbone keep the
    // source statistics (a fully frozen feature extractor).
    model->requires_grad_(false);
    model->classifier()->requires_grad_(true);
    ft.bn = BnPolicy::Frozen;
  } else if (mode == "lr0") {
    ft.backbone_lr_mult = 0;
  } else if (mode == "lr0.1x") {
    ft.backbone_lr_mult = 0.1;
  }
  apply_freeze(*model, ft);
  apply_bn_policy(*model, ft.bn);
  return model;
}

optim::SGDOptions demo_sgd(const DemoOptions& o) {
  optim::SGDOptions s;
  s.lr = o.lr;
  s.momentum = o.momentum;
  s.weight_decay = o.weight_decay;
  return s;
}

std::vector<DemoResult> run_demo(const DemoOptions& o) {
  check_demo_options(o);
  std::filesystem::create_directories(o.out);
  const auto source = pretrain_source(o, o.out + "/source.pth");
  const io::NamedTensors source_sd = source->state_dict();
  Target target = load_target(o);
  std::vector<DemoResult> results;
  for (const int64_t k : o.ks) run_k(o, k, source_sd, target, results);
  write_results(o, results);
  return results;
}

}  // namespace graft::train
