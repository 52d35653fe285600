// The research surface: Tensor op methods, module forward (pre-)hooks, tensor
// gradient hooks, retain_grad, autograd::grad with respect to intermediate
// tensors, the create_graph error, fit()'s per-step callback and training
// telemetry. Quantities marked "torch" come from tests/fixtures/gen_research.py
// (same model weights and batch).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/npy.h"
#include "io/state_dict.h"
#include "nn/functional.h"
#include "nn/layers.h"
#include "nn/models/resnet.h"
#include "optim/optimizer.h"
#include "test_util.h"
#include "train/fit.h"
#include "train/telemetry.h"

namespace graft {
namespace {

namespace F = nn::functional;
using testing::close_to;
using testing::fixture;

// float32 forward/backward of a 4-8-3 MLP on 6 samples: values are O(1) and
// each reduction sums at most 8 terms, so float32 rounding differences from
// torch stay near 1e-6; 1e-4 leaves a wide margin while catching any real
// mistake (a missed hook, a wrong gradient), which is O(1).
constexpr double kTol = 1e-4;

std::shared_ptr<nn::Sequential> research_model() {
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(8, 3)});
  io::load_state_dict(model->state_dict(), io::load_weights_file(fixture("research_model.pth")));
  return model;
}

Tensor npy(const std::string& name) { return io::load_npy(fixture("research_" + name + ".npy")); }

TEST(TensorMethods, DelegateToTheFreeFunctions) {
  Generator gen(1);
  const Tensor x = randn({3, 4}, {}, &gen), w = randn({4, 2}, {}, &gen);
  EXPECT_TRUE(allclose(x.sum(), sum(x), 0, 0));
  EXPECT_TRUE(allclose(x.mean(1), mean(x, {1}), 0, 0));
  EXPECT_TRUE(allclose(x.mean({0, 1}, true), mean(x, {0, 1}, true), 0, 0));
  EXPECT_TRUE(allclose(x.relu(), relu(x), 0, 0));
  EXPECT_TRUE(allclose(x.matmul(w), matmul(x, w), 0, 0));
  EXPECT_TRUE(allclose(x.argmax(1), argmax(x, 1), 0, 0));
  EXPECT_TRUE(allclose(x.std({1}), std(x, {1}), 0, 0));
  EXPECT_TRUE(allclose(x.softmax(1), F::softmax(x, 1), 0, 0));
  EXPECT_TRUE(allclose(x.add(x, 2), add(x, x, 2), 0, 0));
  EXPECT_TRUE(allclose(x.gt(0), gt(x, 0.0), 0, 0));
  EXPECT_EQ(x.pow(2.0).sum().item(), x.square().sum().item());
  // In-place methods change the data every handle sees.
  const Tensor y = x.clone();
  const Tensor alias = y;
  y.mul_(2.0).add_(1.0);
  EXPECT_TRUE(allclose(alias, x * 2 + 1, 1e-6, 1e-6));
  y.zero_();
  EXPECT_EQ(alias.abs().sum().item(), 0);
}

TEST(ModuleHooks, PreHookReplacesInputForwardHookReplacesOutputAndRemoveWorks) {
  nn::Linear lin(2, 2);
  {
    NoGradGuard g;
    lin.weight.copy_(tensor<float>({1, 0, 0, 1}, {2, 2}));
    lin.bias.zero_();
  }
  const Tensor x = tensor<float>({1, 2}, {1, 2});
  int calls = 0;
  float hook_input = 0;
  HookHandle pre = lin.register_forward_pre_hook([&](nn::Module&, const Tensor& in) {
    ++calls;
    return in * 10;
  });
  HookHandle post =
      lin.register_forward_hook([&](nn::Module& m, const Tensor& in, const Tensor& out) {
        EXPECT_EQ(&m, &lin);
        hook_input = in.to_vector<float>()[0];
        return out + 1;
      });
  EXPECT_EQ(lin(x).to_vector<float>(), (std::vector<float>{11, 21}));
  EXPECT_EQ(hook_input, 10);  // the forward hook sees the pre-hook's input
  EXPECT_EQ(lin.forward(x).to_vector<float>(), (std::vector<float>{1, 2}));  // no hooks
  pre.remove();
  pre.remove();  // idempotent
  EXPECT_EQ(lin(x).to_vector<float>(), (std::vector<float>{2, 3}));
  post.remove();
  EXPECT_EQ(lin(x).to_vector<float>(), (std::vector<float>{1, 2}));
  EXPECT_EQ(calls, 1);
}

TEST(ModuleHooks, FireOnEverySubmoduleOfAResNet) {
  auto model = nn::make_resnet("resnet18", 3);
  model->eval();
  int conv_calls = 0, relu_calls = 0;
  std::vector<HookHandle> handles;
  for (const auto& [name, m] : model->named_modules()) {
    if (m->type_name() == "Conv2d")
      handles.push_back(m->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor&) {
        ++conv_calls;
        return Tensor();
      }));
    if (m->type_name() == "ReLU")
      handles.push_back(m->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor&) {
        ++relu_calls;
        return Tensor();
      }));
  }
  NoGradGuard g;
  (*model)(zeros({1, 3, 32, 32}));
  EXPECT_EQ(conv_calls, 20);  // conv1 + 8 blocks x 2 + 3 downsample convs
  // The stem's and each block's first ReLU; the block's final ReLU is fused
  // with the residual add (residual_relu), not a module call.
  EXPECT_EQ(relu_calls, 9);
}

TEST(ResearchVsTorch, ForwardHookSeesTheActivations) {
  GRAFT_REQUIRE_FIXTURE("research_model.pth");
  auto model = research_model();
  Tensor seen;
  (*model)[1]->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
    seen = out.detach().clone();
    return Tensor();
  });
  (*model)(npy("x"));
  EXPECT_TRUE(close_to(seen, npy("act1"), kTol));
}

TEST(ResearchVsTorch, RetainGradHookAndGradWithRespectToAnIntermediate) {
  GRAFT_REQUIRE_FIXTURE("research_model.pth");
  auto model = research_model();
  const Tensor x = npy("x"), y = npy("y");
  auto loss_of = [&](const Tensor& h) {
    return F::cross_entropy((*(*model)[2])((*(*model)[1])(h)), y);
  };

  Tensor h = (*(*model)[0])(x);
  EXPECT_FALSE(h.is_leaf());
  h.retain_grad();
  EXPECT_TRUE(h.retains_grad());
  loss_of(h).backward();
  ASSERT_TRUE(h.grad().defined());
  EXPECT_TRUE(close_to(h.grad(), npy("h_grad"), kTol));

  // autograd::grad w.r.t. the same intermediate gives the same gradient and
  // leaves every .grad alone.
  model->zero_grad();
  h = (*(*model)[0])(x);
  const auto g = autograd::grad({loss_of(h)}, {h, (*model)[0]->find_tensor("weight")});
  EXPECT_TRUE(close_to(g[0], npy("h_grad"), kTol));
  EXPECT_EQ(g[1].sizes(), (Shape{8, 4}));
  EXPECT_FALSE((*model)[0]->find_tensor("weight").grad().defined());

  // A hook that doubles d loss / d h doubles everything below h.
  h = (*(*model)[0])(x);
  h.register_hook([](const Tensor& grad) { return grad * 2; });
  loss_of(h).backward();
  EXPECT_TRUE(close_to((*model)[0]->find_tensor("weight").grad(), npy("w0_grad_doubled"), kTol));
}

TEST(GradHooks, LeafHookRunsBeforeAccumulationAndCanBeRemoved) {
  const Tensor w = tensor<float>({1, 2}).set_requires_grad(true);
  Tensor seen;
  HookHandle h = w.register_hook([&](const Tensor& g) {
    seen = g.clone();
    return g * 3;
  });
  (w * w).sum().backward();
  EXPECT_EQ(seen.to_vector<float>(), (std::vector<float>{2, 4}));
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{6, 12}));
  h.remove();
  w.zero_grad();
  (w * w).sum().backward();
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{2, 4}));
}

TEST(GradHooks, ErrorsAreClear) {
  const Tensor c = tensor<float>({1, 2});
  EXPECT_THROW(c.register_hook([](const Tensor& g) { return g; }), Error);
  const Tensor w = tensor<float>({1, 2}).set_requires_grad(true);
  w.register_hook([](const Tensor&) { return zeros({5}); });
  EXPECT_THROW((w * 2).sum().backward(), Error);  // wrong shape from the hook
  const Tensor v = tensor<float>({1, 2}).set_requires_grad(true);
  try {
    (v * v).sum().backward(Tensor(), false, /*create_graph=*/true);
    FAIL() << "create_graph=true must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(double backward) is not supported"), std::string::npos);
  }
  EXPECT_THROW(autograd::grad({(v * v).sum()}, {v}, {}, false, true), Error);
  EXPECT_THROW(autograd::grad({(v * v).sum()}, {c}), Error);  // input needs no grad
}

TEST(Telemetry, MatchesTorchOverThreeSgdSteps) {
  GRAFT_REQUIRE_FIXTURE("research_model.pth");
  auto model = research_model();
  auto named = model->named_parameters();
  optim::SGD opt(
      std::vector<optim::ParamGroup>{optim::ParamGroup({named[0], named[1]}),
                                     optim::ParamGroup({named[2], named[3]}, {.lr = 0.01})},
      {.lr = 0.1, .momentum = 0.9});
  train::Telemetry tele(*model, opt, {.every = 1});
  const Tensor x = npy("x"), y = npy("y");
  for (int64_t step = 1; step <= 3; ++step) {
    opt.zero_grad();
    F::cross_entropy((*model)(x), y).backward();
    opt.step();
    tele.on_step({1, step, step, 0, 6});
  }
  const Tensor want_grad = npy("tele_grad_norm"), want_ratio = npy("tele_update_ratio"),
               want_lr = npy("tele_effective_lr"), want_act = npy("act_stats");
  int checked = 0;
  for (const auto& r : tele.rows()) {
    const int64_t row = r.step - 1;
    double want = NAN;
    if (r.kind == "group") {
      const int64_t g = r.name == "group0" ? 0 : 1;
      if (r.metric == "grad_norm") want = want_grad.select(0, row).select(0, g).item();
      if (r.metric == "update_ratio") want = want_ratio.select(0, row).select(0, g).item();
      if (r.metric == "effective_lr") want = want_lr.select(0, row).select(0, g).item();
      if (r.metric == "lr") want = g == 0 ? 0.1 : 0.01;
    } else if (r.step == 1) {  // torch's activation statistics are for the first forward
      const int64_t layer = std::stoll(r.name);
      const int64_t col = r.metric == "act_mean" ? 0 : r.metric == "act_std" ? 1 : 2;
      want = want_act.select(0, layer).select(0, col).item();
    } else {
      continue;
    }
    // Norms of float32 tensors, accumulated in float64: relative error ~1e-6.
    EXPECT_NEAR(r.value, want, kTol * std::max(1.0, std::fabs(want)))
        << r.metric << " of " << r.name << " at step " << r.step;
    ++checked;
  }
  EXPECT_EQ(checked, 3 * 2 * 4 + 3 * 3);  // 3 steps x 2 groups x 4 metrics + 3 layers x 3
  EXPECT_NE(tele.csv().find("1,group,group1,effective_lr,"), std::string::npos);
}

TEST(Telemetry, AResumedRunStartsAtAnUnsampledStep) {
  // fit() resumed at step 5 with every=3: steps 5 and 6 are not sampled, 7 is,
  // and its activation statistics are step 7's alone.
  auto model = std::make_shared<nn::Sequential>(
      std::initializer_list<nn::ModulePtr>{std::make_shared<nn::Linear>(2, 2)});
  optim::SGD opt(model->named_parameters(), {.lr = 0.1});
  train::Telemetry tele(*model, opt, {.every = 3});
  Tensor last_out;
  for (int64_t step = 5; step <= 7; ++step) {
    last_out = (*model)(full({4, 2}, static_cast<double>(step)));
    opt.zero_grad();
    last_out.sum().backward();
    opt.step();
    tele.on_step({1, step, step, 0, 4});
  }
  std::vector<int64_t> steps;
  for (const auto& r : tele.rows()) {
    steps.push_back(r.step);
    if (r.metric == "act_mean") {
      EXPECT_NEAR(r.value, last_out.mean().item(), 1e-6);  // float32 mean of 8 values ~10
    }
  }
  EXPECT_EQ(steps.size(), 4u + 3u);  // one group x 4 metrics, one layer x 3
  EXPECT_EQ(std::count(steps.begin(), steps.end(), 7), static_cast<long>(steps.size()));
}

TEST(Telemetry, SamplesEveryNStepsThroughFit) {
  Generator gen(3);
  auto data = std::make_shared<data::TensorDataset>(randn({40, 4}, {}, &gen),
                                                    randint(0, 3, {40}, {DType::Int64}, &gen));
  data::DataLoader loader(data, {.batch_size = 8});
  auto model = std::make_shared<nn::Sequential>(
      std::initializer_list<nn::ModulePtr>{std::make_shared<nn::Linear>(4, 3, true, &gen)});
  optim::SGD opt(model->named_parameters(), {.lr = 0.1});
  train::Telemetry tele(*model, opt, {.every = 3});
  std::vector<int64_t> steps;
  train::FitOptions fo;
  fo.epochs = 2;
  fo.num_classes = 3;
  fo.quiet = true;
  fo.on_step = [&](const train::StepRecord& r) {
    steps.push_back(r.global_step);
    EXPECT_EQ(r.batch_size, 8);
    EXPECT_TRUE(std::isfinite(r.loss));
    tele.on_step(r);
  };
  int epochs_seen = 0;
  fo.on_epoch_end = [&](const train::EpochRecord&, const train::EpochProgress&) { ++epochs_seen; };
  train::fit(*model, opt, nullptr, loader, nullptr, fo);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(epochs_seen, 2);
  std::vector<int64_t> sampled;
  for (const auto& r : tele.rows())
    if (r.metric == "grad_norm") sampled.push_back(r.step);
  EXPECT_EQ(sampled, (std::vector<int64_t>{1, 4, 7, 10}));
}

}  // namespace
}  // namespace graft
