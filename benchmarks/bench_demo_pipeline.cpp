// The demo's source-task data pipeline with and without its transform cache:
// Fashion-MNIST classes 0-4 (30,000 training images), resized to 32x32 and
// normalised either once up front (what `graft demo` does: a TensorDataset of
// preprocessed images) or per image in every epoch (data::FashionMNIST::get,
// the uncached pipeline), batches of 128, shuffled, random horizontal flip as
// the demo's fit() applies it. Checks that both give bit-identical batches,
// then alternates the two (the machine may be shared) and prints seconds per
// epoch: loader only, and optionally a whole training epoch of ResNet18.
// "preprocessed+clone" is the preprocessed set read the way TensorDataset::get
// did before it copied rows with memcpy.
//
//   bench_demo_pipeline [--repeat R] [--train-images N] [--workers W]
//     --train-images N: also time one training epoch on the first N images
//     (0: skip; 30000: the demo's whole source epoch).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/generator.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/models/registry.h"
#include "optim/optimizer.h"
#include "train/fit.h"

using namespace graft;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The preprocessed images as TensorDataset::get served them before it copied
// rows with memcpy: select + clone (an OpenMP region per example).
class CloneRows : public data::Dataset {
 public:
  explicit CloneRows(std::shared_ptr<const data::TensorDataset> base) : base_(std::move(base)) {}
  int64_t size() const override { return base_->size(); }
  data::Example get(int64_t i, Generator&) const override {
    return {base_->images().select(0, i).clone(), base_->label(i)};
  }
  using Dataset::get;
  int64_t label(int64_t i) const override { return base_->label(i); }
  int64_t num_classes() const override { return base_->num_classes(); }
  bool deterministic() const override { return true; }

 private:
  std::shared_ptr<const data::TensorDataset> base_;
};

data::DataLoader::Options opts(int workers) {
  data::DataLoader::Options o;
  o.batch_size = 128;
  o.shuffle = true;
  o.seed = 0;
  o.num_workers = workers;
  return o;
}

// One epoch through the loader plus the demo's random flip; returns seconds.
double loader_epoch(const data::DatasetPtr& ds, int workers, int64_t epoch) {
  data::DataLoader loader(ds, opts(workers));
  Generator flip = Generator(0).fork(static_cast<uint64_t>(epoch) + 1);
  const auto t0 = Clock::now();
  loader.start(epoch);
  data::Batch b;
  int64_t n = 0;
  while (loader.next(b)) n += train::random_hflip(b.images, flip).size(0);
  const double s = seconds_since(t0);
  if (n != ds->size()) std::abort();
  return s;
}

double train_epoch(const data::DatasetPtr& ds, int workers) {
  manual_seed(0);
  auto model = nn::build_model("resnet18", 5);
  optim::SGDOptions so;
  so.lr = 0.01;
  so.momentum = 0.9;
  so.weight_decay = 5e-4;
  optim::SGD opt(model->named_parameters(), so);
  data::DataLoader loader(ds, opts(workers));
  train::FitOptions fo;
  fo.epochs = 1;
  fo.hflip = true;
  fo.num_classes = 5;
  fo.quiet = true;
  const auto t0 = Clock::now();
  train::fit(*model, opt, nullptr, loader, nullptr, fo);
  return seconds_since(t0);
}

bool same_batches(const data::DatasetPtr& a, const data::DatasetPtr& b, int workers) {
  data::DataLoader la(a, opts(workers)), lb(b, opts(workers));
  la.start(3);
  lb.start(3);
  data::Batch x, y;
  while (la.next(x)) {
    if (!lb.next(y)) return false;
    const auto vx = x.images.to_vector<float>(), vy = y.images.to_vector<float>();
    if (vx.size() != vy.size() || std::memcmp(vx.data(), vy.data(), vx.size() * 4) != 0)
      return false;
    if (x.labels.to_vector<int64_t>() != y.labels.to_vector<int64_t>()) return false;
  }
  return !lb.next(y);
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 3, workers = 0;
  int64_t train_images = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--repeat") repeat = std::atoi(argv[i + 1]);
    if (a == "--workers") workers = std::atoi(argv[i + 1]);
    if (a == "--train-images") train_images = std::atoll(argv[i + 1]);
  }
  data::FashionMNIST::Options fo;
  fo.classes = {0, 1, 2, 3, 4};
  auto t0 = Clock::now();
  auto raw = std::make_shared<data::FashionMNIST>(fo);
  const double load_s = seconds_since(t0);
  t0 = Clock::now();
  auto cached =
      std::make_shared<data::TensorDataset>(raw->preprocess(raw->images()), raw->labels());
  const double prep_s = seconds_since(t0);
  std::printf("source set: %lld images; read %.2f s, preprocessed once in %.2f s\n",
              static_cast<long long>(raw->size()), load_s, prep_s);
  std::printf("batches bit-identical (cached vs per-image): %s\n",
              same_batches(cached, raw, workers) ? "yes" : "NO");
  auto cloned = std::make_shared<CloneRows>(cached);
  for (int r = 0; r < repeat; ++r) {
    const double u = loader_epoch(raw, workers, r);
    const double k = loader_epoch(cloned, workers, r);
    const double c = loader_epoch(cached, workers, r);
    std::printf(
        "loader epoch %d: per-image %.2f s, preprocessed+clone %.2f s, preprocessed+memcpy %.2f "
        "s\n",
        r + 1, u, k, c);
    std::fflush(stdout);
  }
  if (train_images > 0) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min<int64_t>(train_images, raw->size()); ++i) idx.push_back(i);
    auto sub_raw = std::make_shared<data::Subset>(raw, idx);
    auto sub_cached = std::make_shared<data::Subset>(cached, idx);
    auto sub_cloned = std::make_shared<data::Subset>(cloned, idx);
    for (int r = 0; r < repeat; ++r) {
      const double u = train_epoch(sub_raw, workers);
      const double k = train_epoch(sub_cloned, workers);
      const double c = train_epoch(sub_cached, workers);
      std::printf(
          "train epoch on %zu images %d: per-image %.1f s, preprocessed+clone %.1f s, "
          "preprocessed+memcpy %.1f s\n",
          idx.size(), r + 1, u, k, c);
      std::fflush(stdout);
    }
  }
  return 0;
}
