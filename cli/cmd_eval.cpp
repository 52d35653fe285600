// `graft eval`: top-1 (and top-5) accuracy and a confusion matrix for a
// checkpoint. The model, its classes and its eval transform come from the
// checkpoint; an image folder's classes are matched to the checkpoint's by
// name.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "io/npy.h"
#include "nn/models/registry.h"
#include "train/checkpoint.h"
#include "train/fit.h"
#include "train/run.h"

namespace {

using namespace graft;

struct EvalArgs {
  std::string weights, arch, data_dir, dataset, val_npy, val_labels, device = "cpu";
  std::string output_json, confusion_csv;
  int64_t batch_size = 64, image_size = 0;
  int workers = 2, threads = 0;
  bool override_meta = false;
};

constexpr int64_t kPrintedConfusionClasses = 20;

// An ImageFolder whose labels are renumbered into the checkpoint's classes.
class RelabeledFolder : public data::Dataset {
 public:
  RelabeledFolder(std::shared_ptr<const data::ImageFolder> f, std::vector<int64_t> to_model,
                  int64_t classes)
      : folder_(std::move(f)), to_model_(std::move(to_model)), classes_(classes) {}
  int64_t size() const override { return folder_->size(); }
  data::Example get(int64_t i, Generator& gen) const override {
    data::Example e = folder_->get(i, gen);
    e.label = to_model_[static_cast<size_t>(e.label)];
    return e;
  }
  int64_t label(int64_t i) const override {
    return to_model_[static_cast<size_t>(folder_->label(i))];
  }
  int64_t num_classes() const override { return classes_; }

 private:
  std::shared_ptr<const data::ImageFolder> folder_;
  std::vector<int64_t> to_model_;
  int64_t classes_;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The folder to score: a root with train/ and val|test/ means its evaluation
// split, as `graft train --data ROOT` uses it.
std::string eval_folder(const std::string& dir) {
  GRAFT_CHECK(std::filesystem::is_directory(dir), "--data ", dir, ": no such folder");
  if (!train::has_split_layout(dir)) return dir;
  const train::ImageSplits s = train::resolve_image_splits(dir);
  GRAFT_CHECK(!s.val.empty(), "--data ", dir,
              " holds a train/ split but no val/ or test/; pass --data ", dir,
              "/train to score the training images");
  std::cerr << "evaluating " << s.val << " (the evaluation split of " << dir
            << ", as graft train uses it)\n";
  return s.val;
}

data::DatasetPtr folder_dataset(const std::string& dir, const train::LoadedModel& m,
                                const train::EvalTransform& t) {
  auto f = std::make_shared<data::ImageFolder>(eval_folder(dir), train::make_transform(t));
  const auto& names = m.ckpt.classes;
  if (names.empty()) {
    std::cerr << "note: the weights carry no class names; class folder i of " << f->root()
              << " is scored as class i\n";
    GRAFT_CHECK(f->num_classes() <= m.num_classes, "--data ", dir, " has ", f->num_classes(),
                " classes but the model only ", m.num_classes);
    return f;
  }
  std::vector<int64_t> to_model;
  std::vector<std::string> unknown;
  for (const auto& c : f->classes()) {
    const auto it = std::find(names.begin(), names.end(), c);
    if (it == names.end()) unknown.push_back(c);
    to_model.push_back(it - names.begin());
  }
  GRAFT_CHECK(unknown.empty(), "--data ", f->root(),
              " has classes the checkpoint does not know: ", join(unknown),
              " (its classes: ", join(names), ")");
  if (f->classes().size() < names.size())
    std::cerr << "note: " << f->root() << " holds " << f->classes().size() << " of the model's "
              << names.size() << " classes (" << join(f->classes()) << ")\n";
  return std::make_shared<RelabeledFolder>(f, std::move(to_model), m.num_classes);
}

data::DatasetPtr npy_dataset(const EvalArgs& a, int64_t classes) {
  GRAFT_CHECK(!a.val_labels.empty(), "--val-npy needs --val-labels Y.npy");
  auto ds = data::TensorDataset::from_npy(a.val_npy, a.val_labels);
  GRAFT_CHECK(ds->num_classes() <= classes, "--val-labels ", a.val_labels, ": label ",
              ds->num_classes() - 1, " is out of range for the model's ", classes, " classes");
  return ds;
}

data::DatasetPtr eval_dataset(const EvalArgs& a, const train::LoadedModel& m,
                              const train::EvalTransform& t) {
  const int sources = !a.val_npy.empty() + !a.data_dir.empty() + !a.dataset.empty();
  GRAFT_CHECK(sources == 1, sources == 0 ? "no evaluation data: give --data DIR, --dataset "
                                           "fashion-mnist or --val-npy/--val-labels"
                                         : "give only one of --data, --dataset and --val-npy");
  if (!a.val_npy.empty()) {
    GRAFT_CHECK(a.image_size == 0,
                "--image-size has no effect with --val-npy: tensors are used "
                "as they are");
    return npy_dataset(a, m.num_classes);
  }
  if (!a.data_dir.empty()) return folder_dataset(a.data_dir, m, t);
  GRAFT_CHECK(a.dataset == "fashion-mnist", "unknown --dataset '", a.dataset,
              "' (expected fashion-mnist)");
  data::FashionMNIST::Options fo;
  fo.train = false;
  fo.demo_size = t.crop;
  data::FashionMNIST f(fo);
  return std::make_shared<data::TensorDataset>(f.preprocess(f.images()), f.labels());
}

// The checkpoint's eval transform; --image-size may only contradict it with --override.
train::EvalTransform choose_transform(const EvalArgs& a, const train::LoadedModel& m) {
  train::EvalTransform t = m.ckpt.transform ? *m.ckpt.transform : train::imagenet_eval(224);
  if (a.image_size > 0 && a.image_size != t.crop) {
    GRAFT_CHECK(!m.ckpt.transform || a.override_meta, "--image-size ", a.image_size,
                " contradicts '", a.weights, "', trained at ", t.crop,
                " px (drop --image-size, or pass --override)");
    t.resize = a.image_size * 256 / 224;
    t.crop = a.image_size;
  }
  return t;
}

std::string class_name(const std::vector<std::string>& names, int64_t i) {
  return i < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(i)] : std::to_string(i);
}

void print_confusion(const std::vector<int64_t>& m, int64_t classes,
                     const std::vector<std::string>& names) {
  std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n%-16s", "");
  for (int64_t j = 0; j < classes; ++j) std::printf(" %6lld", static_cast<long long>(j));
  std::printf("\n");
  for (int64_t i = 0; i < classes; ++i) {
    std::printf("%2lld %-13.13s", static_cast<long long>(i), class_name(names, i).c_str());
    for (int64_t j = 0; j < classes; ++j)
      std::printf(" %6lld", static_cast<long long>(m[static_cast<size_t>(i * classes + j)]));
    std::printf("\n");
  }
}

void write_confusion_csv(const std::string& path, const std::vector<int64_t>& m, int64_t classes,
                         const std::vector<std::string>& names) {
  std::ofstream f(path);
  f << "true\\predicted";
  for (int64_t j = 0; j < classes; ++j) f << "," << class_name(names, j);
  f << "\n";
  for (int64_t i = 0; i < classes; ++i) {
    f << class_name(names, i);
    for (int64_t j = 0; j < classes; ++j) f << "," << m[static_cast<size_t>(i * classes + j)];
    f << "\n";
  }
  GRAFT_CHECK(f.good(), "cannot write the confusion matrix to '", path, "'");
}

void write_json(const std::string& path, const train::EvalResult& r, int64_t classes,
                const std::vector<int64_t>& m, const std::vector<std::string>& names) {
  nlohmann::ordered_json j;
  j["images"] = r.count;
  j["loss"] = r.loss;
  j["top1"] = r.top1;
  if (classes > 5) j["top5"] = r.top5;
  std::vector<std::string> cls;
  for (int64_t i = 0; i < classes; ++i) cls.push_back(class_name(names, i));
  j["classes"] = cls;
  std::vector<std::vector<int64_t>> rows;
  for (int64_t i = 0; i < classes; ++i)
    rows.emplace_back(m.begin() + i * classes, m.begin() + (i + 1) * classes);
  j["confusion"] = rows;
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  GRAFT_CHECK(f.good(), "--output-json: cannot write '", path, "'");
}

void report(const EvalArgs& a, const train::EvalResult& r, int64_t classes,
            const std::vector<std::string>& names) {
  std::printf("images %lld  loss %.4f  top-1 %.4f", static_cast<long long>(r.count), r.loss,
              r.top1);
  if (classes > 5) std::printf("  top-5 %.4f", r.top5);
  std::printf("\n");
  const auto m = r.confusion.to_vector<int64_t>();
  std::string csv = a.confusion_csv;
  if (classes <= kPrintedConfusionClasses)
    print_confusion(m, classes, names);
  else if (csv.empty())
    csv = "confusion.csv";
  if (!csv.empty()) {
    write_confusion_csv(csv, m, classes, names);
    std::printf("confusion matrix (%lld classes) written to %s\n", static_cast<long long>(classes),
                csv.c_str());
  }
  if (!a.output_json.empty()) write_json(a.output_json, r, classes, m, names);
}

int run_eval(const EvalArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  const Device device = require_device(a.device);
  train::ModelRequest req;
  req.weights = a.weights;
  req.arch = a.arch;
  req.override_meta = a.override_meta;
  train::LoadedModel m = train::load_model(req);
  m.model->to(device);
  const train::EvalTransform t = choose_transform(a, m);
  data::DataLoader::Options lo;
  lo.batch_size = a.batch_size;
  lo.num_workers = a.workers;
  data::DataLoader loader(eval_dataset(a, m, t), lo);
  const train::EvalResult r = train::evaluate(*m.model, loader, m.num_classes, device);
  report(a, r, m.num_classes, m.ckpt.classes);
  return 0;
}

std::function<int()> setup_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  app.add_option("--weights", a->weights, "weights or a graft checkpoint (best.pth)")->required();
  app.add_option("--arch", a->arch,
                 graft::nn::model_names() + " (default: from the checkpoint or its keys)");
  app.add_option("--data", a->data_dir,
                 "ImageFolder; classes matched to the checkpoint's by name (a root with "
                 "train/ and val/ or test/ means its evaluation split)");
  app.add_option("--dataset", a->dataset, "fashion-mnist (its test split)");
  app.add_option("--val-npy", a->val_npy, "images .npy");
  app.add_option("--val-labels", a->val_labels, "labels .npy");
  app.add_option("--image-size", a->image_size, "crop size (default: the checkpoint's, else 224)");
  app.add_flag("--override", a->override_meta,
               "let --arch/--image-size contradict the checkpoint's metadata");
  app.add_option("--output-json", a->output_json, "also write the results as JSON here");
  app.add_option("--confusion-csv", a->confusion_csv,
                 "write the confusion matrix as CSV here (default above 20 classes: "
                 "confusion.csv)");
  app.add_option("--batch-size", a->batch_size, "batch size")->capture_default_str();
  app.add_option("--workers", a->workers, "loader threads");
  app.add_option("--device", a->device, "cpu | cuda");
  app.add_option("--threads", a->threads, "CPU threads");
  return [a]() { return run_eval(*a); };
}

GRAFT_COMMAND("eval", "Accuracy and confusion matrix of a checkpoint on labelled data", setup_eval);

}  // namespace
