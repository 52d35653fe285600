// train::FeatureCache: a frozen backbone's head trained on features computed
// once gives the uncached run's losses, accuracies and head weights (same
// batches, same flips, same steps), and every condition that would make it
// inexact is detected and named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "io/state_dict.h"
#include "nn/layers.h"
#include "nn/models/resnet.h"
#include "optim/optimizer.h"
#include "test_util.h"
#include "train/feature_cache.h"
#include "train/finetune.h"
#include "train/fit.h"

namespace graft {
namespace {

using testing::close_to;

// A resnet18 with 3 classes whose BN running statistics come from a few
// training-mode passes over `x` (so BN does more than the identity), then
// the feature-extract recipe: backbone frozen, BN frozen, only fc trains.
std::shared_ptr<nn::ResNet> frozen_resnet(const Tensor& x, uint64_t seed) {
  manual_seed(seed);
  auto m = nn::resnet18(3);
  {
    NoGradGuard g;
    m->train();
    for (int i = 0; i < 3; ++i) (*m)(x);
  }
  m->requires_grad_(false);
  m->fc->requires_grad_(true);
  train::apply_bn_policy(*m, train::BnPolicy::Frozen);
  return m;
}

std::shared_ptr<nn::ResNet> copy_of(const nn::ResNet& src) {
  auto m = nn::resnet18(3);
  io::load_state_dict(m->state_dict(), src.state_dict());
  m->requires_grad_(false);
  m->fc->requires_grad_(true);
  train::apply_bn_policy(*m, train::BnPolicy::Frozen);
  return m;
}

data::DataLoader::Options loader_opts(int64_t batch, bool shuffle) {
  data::DataLoader::Options o;
  o.batch_size = batch;
  o.shuffle = shuffle;
  o.seed = 11;
  return o;
}

struct Trace {
  std::vector<train::EpochRecord> epochs;
  std::vector<double> step_losses;
};

train::FitOptions fit_opts(Trace& t) {
  train::FitOptions fo;
  fo.epochs = 3;
  fo.hflip = true;
  fo.seed = 5;
  fo.num_classes = 3;
  fo.quiet = true;
  fo.on_step = [&t](const train::StepRecord& r) { t.step_losses.push_back(r.loss); };
  return fo;
}

optim::SGDOptions sgd() {
  optim::SGDOptions s;
  s.lr = 0.1;
  s.momentum = 0.9;
  s.weight_decay = 1e-3;
  return s;
}

// The cached run takes the same steps on the same numbers up to the
// backbone's float rounding, which may differ with the composition of the
// batches it ran on (Eigen's GEMM blocking depends on the batch's column
// count). Measured: the 9 step losses differ by at most 2.4e-7 (2 ulp of a
// float near 2) at 1 and 2 threads. 1e-5 leaves a 40x margin and still fails
// for any real mistake: a wrong flip draw, a shuffled order or a missed step
// changes losses and weights by 1e-2 or more.
constexpr double kTol = 1e-5;

TEST(FeatureCache, CachedRunMatchesUncachedRunStepForStep) {
  Generator gen(1);
  const Tensor x = randn({10, 3, 32, 32}, {}, &gen);
  const Tensor y = randint(0, 3, {10}, {DType::Int64}, &gen);
  const Tensor vx = randn({6, 3, 32, 32}, {}, &gen);
  const Tensor vy = randint(0, 3, {6}, {DType::Int64}, &gen);
  auto train_set = std::make_shared<data::TensorDataset>(x, y);
  auto val_set = std::make_shared<data::TensorDataset>(vx, vy);

  auto plain = frozen_resnet(x, 3);
  auto cached = copy_of(*plain);
  const std::string reason = train::FeatureCache::inexact_reason(*cached, train_set.get());
  ASSERT_EQ(reason, "");

  // Uncached: the backbone runs on every (randomly flipped) batch.
  Trace a;
  optim::SGD opt_a(train::build_param_groups(*plain, {}, 0.1), sgd());
  data::DataLoader train_a(train_set, loader_opts(4, true));  // batches 4, 4, 2
  data::DataLoader val_a(val_set, loader_opts(4, false));
  a.epochs = train::fit(*plain, opt_a, nullptr, train_a, &val_a, fit_opts(a));

  // Cached: both orientations computed once, the head trained on them.
  Trace b;
  optim::SGD opt_b(train::build_param_groups(*cached, {}, 0.1), sgd());
  train::FeatureCacheOptions co;
  co.hflip = true;
  co.batch_size = 4;
  const train::FeatureCache tf(*cached, train_set, co);
  co.hflip = false;
  co.train_mode = false;
  const train::FeatureCache vf(*cached, val_set, co);
  ASSERT_EQ(tf.size(), 10);
  EXPECT_EQ(tf.bytes(), 10 * 2 * 512 * 4);
  // The flipped image's features differ: the flip draws matter.
  const Tensor f0 = tf.dataset()->get(0).image;
  ASSERT_EQ(f0.sizes(), (Shape{2, 512}));
  EXPECT_GT(max(abs(sub(f0.select(0, 0), f0.select(0, 1)))).item(), 1e-3);
  data::DataLoader train_b(tf.dataset(), loader_opts(4, true));
  data::DataLoader val_b(vf.dataset(), loader_opts(4, false));
  train::FitOptions fo = fit_opts(b);
  fo.input_fn = tf.input_fn();
  b.epochs = train::fit(*cached->fc, opt_b, nullptr, train_b, &val_b, fo);

  ASSERT_EQ(a.epochs.size(), 3u);
  ASSERT_EQ(b.epochs.size(), 3u);
  ASSERT_EQ(a.step_losses.size(), 9u);
  ASSERT_EQ(b.step_losses.size(), 9u);
  for (size_t i = 0; i < 9; ++i)
    EXPECT_NEAR(b.step_losses[i], a.step_losses[i], kTol * std::max(1.0, a.step_losses[i]))
        << "step " << i + 1;
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_NEAR(b.epochs[e].train_loss, a.epochs[e].train_loss, kTol) << "epoch " << e + 1;
    EXPECT_EQ(b.epochs[e].train_acc, a.epochs[e].train_acc) << "epoch " << e + 1;
    ASSERT_TRUE(a.epochs[e].val_loss && b.epochs[e].val_loss);
    EXPECT_NEAR(*b.epochs[e].val_loss, *a.epochs[e].val_loss, kTol) << "epoch " << e + 1;
    EXPECT_EQ(*b.epochs[e].val_acc, *a.epochs[e].val_acc) << "epoch " << e + 1;
    EXPECT_EQ(b.epochs[e].steps, a.epochs[e].steps);
  }
  // The head moved, identically; the backbone (and its BN statistics) did not.
  auto* fa = dynamic_cast<nn::Linear*>(plain->fc.get());
  auto* fb = dynamic_cast<nn::Linear*>(cached->fc.get());
  ASSERT_TRUE(fa && fb);
  EXPECT_TRUE(close_to(fb->weight, fa->weight, kTol));
  EXPECT_TRUE(close_to(fb->bias, fa->bias, kTol));
  const auto sa = plain->state_dict(), sb = cached->state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    if (sa[i].first.rfind("fc.", 0) == 0) continue;
    EXPECT_EQ(
        max(abs(sub(sa[i].second.to(DType::Float64), sb[i].second.to(DType::Float64)))).item(), 0.0)
        << sa[i].first;
  }
}

TEST(FeatureCache, WithoutFlipTheFeaturesAreTheBackbonesOutput) {
  Generator gen(2);
  const Tensor x = randn({5, 3, 32, 32}, {}, &gen);
  auto ds = std::make_shared<data::TensorDataset>(x, randint(0, 3, {5}, {DType::Int64}, &gen));
  auto m = frozen_resnet(x, 4);
  train::FeatureCacheOptions co;
  co.batch_size = 5;  // one batch, as the direct call below: the same bits
  co.train_mode = false;
  const train::FeatureCache fc(*m, ds, co);
  m->eval();
  NoGradGuard g;
  const Tensor want = m->features(x);
  data::DataLoader all(fc.dataset(), loader_opts(5, false));
  all.start(0);
  data::Batch b;
  ASSERT_TRUE(all.next(b));
  EXPECT_EQ(max(abs(sub(b.images, want))).item(), 0.0);
  EXPECT_EQ(b.labels.to_vector<int64_t>(), ds->labels().to_vector<int64_t>());
  // Without flips input_fn passes the batch through and draws nothing.
  Generator g1(9), g2(9);
  const Tensor in = fc.input_fn()(b.images, g1);
  EXPECT_EQ(in.data_ptr<float>(), b.images.data_ptr<float>());
  EXPECT_EQ(g1.next_u64(), g2.next_u64());
}

// A data set whose examples are random (does not claim determinism).
class NoisySet : public data::Dataset {
 public:
  int64_t size() const override { return 2; }
  data::Example get(int64_t, Generator& gen) const override {
    return {randn({3, 32, 32}, {}, &gen), 0};
  }
  using Dataset::get;
  int64_t label(int64_t) const override { return 0; }
  int64_t num_classes() const override { return 3; }
};

class Doubler : public nn::Module {
 public:
  Doubler() : Module("Doubler") {}
  Tensor forward(const Tensor& x) override { return mul(x, 2.0); }
};

TEST(FeatureCache, InexactConditionsAreDetectedAndNamed) {
  Generator gen(3);
  const Tensor x = randn({2, 3, 32, 32}, {}, &gen);
  auto data = std::make_shared<data::TensorDataset>(x, randint(0, 3, {2}, {DType::Int64}, &gen));
  using train::FeatureCache;
  auto m = frozen_resnet(x, 5);
  EXPECT_EQ(FeatureCache::inexact_reason(*m, data.get()), "");

  // Random examples (augmentation).
  const NoisySet noisy;
  EXPECT_NE(FeatureCache::inexact_reason(*m, &noisy).find("random"), std::string::npos);
  EXPECT_THROW(FeatureCache(*m, std::make_shared<NoisySet>()), Error);

  // A trainable backbone parameter.
  m->layer4->requires_grad_(true);
  EXPECT_NE(
      FeatureCache::inexact_reason(*m, data.get()).find("'layer4.0.conv1.weight' is trainable"),
      std::string::npos);
  m->layer4->requires_grad_(false);

  // BN using batch statistics (policy train).
  train::apply_bn_policy(*m, train::BnPolicy::Train);
  EXPECT_NE(FeatureCache::inexact_reason(*m, data.get()).find("'bn1' normalises with batch"),
            std::string::npos);
  train::apply_bn_policy(*m, train::BnPolicy::Frozen);

  // Dropout before the head; p = 0 is deterministic.
  auto pool = m->avgpool;
  auto drop = std::make_shared<nn::Dropout>(0.5);
  m->replace_module("avgpool", std::make_shared<nn::Sequential>(
                                   std::initializer_list<nn::ModulePtr>{pool, drop}));
  EXPECT_NE(FeatureCache::inexact_reason(*m, data.get()).find("'avgpool.1' is a Dropout"),
            std::string::npos);
  drop->p = 0;
  EXPECT_EQ(FeatureCache::inexact_reason(*m, data.get()), "");

  // A module of an unknown type in the backbone.
  m->replace_module("avgpool",
                    std::make_shared<nn::Sequential>(
                        std::initializer_list<nn::ModulePtr>{pool, std::make_shared<Doubler>()}));
  EXPECT_NE(FeatureCache::inexact_reason(*m, data.get()).find("is a Doubler"), std::string::npos);
  m->replace_module("avgpool", pool);

  // A forward hook anywhere outside the head (on the head it still runs).
  auto h = m->layer2->register_forward_hook(
      [](nn::Module&, const Tensor&, const Tensor& out) { return out; });
  EXPECT_NE(FeatureCache::inexact_reason(*m, data.get()).find("'layer2' has a forward hook"),
            std::string::npos);
  h.remove();
  auto hf = m->fc->register_forward_hook(
      [](nn::Module&, const Tensor&, const Tensor& out) { return out; });
  EXPECT_EQ(FeatureCache::inexact_reason(*m, data.get()), "");
  hf.remove();
  EXPECT_EQ(FeatureCache::inexact_reason(*m, data.get()), "");

  // The memory budget is enforced.
  train::FeatureCacheOptions tiny;
  tiny.max_bytes = 1000;
  EXPECT_THROW(FeatureCache(*m, data, tiny), Error);
}

TEST(FeatureCache, TransformsAndDataSetsSayWhetherTheyAreDeterministic) {
  const auto eval = data::imagenet_eval_transform(64, 56);
  const auto train = data::imagenet_train_transform(56);
  EXPECT_TRUE(eval->deterministic());
  EXPECT_EQ(eval->random_steps(), "");
  EXPECT_FALSE(train->deterministic());
  EXPECT_EQ(train->random_steps(), "RandomResizedCrop, RandomHorizontalFlip");
  EXPECT_FALSE(data::ColorJitter(0.1).deterministic());
  Generator gen(1);
  auto t = std::make_shared<data::TensorDataset>(randn({2, 3}, {}, &gen),
                                                 randint(0, 2, {2}, {DType::Int64}, &gen));
  EXPECT_TRUE(t->deterministic());
  EXPECT_TRUE(data::Subset(t, {1}).deterministic());
  EXPECT_FALSE(data::Subset(std::make_shared<NoisySet>(), {1}).deterministic());
}

}  // namespace
}  // namespace graft
