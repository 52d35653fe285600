// optim/: optimizers, schedulers and clipping against torch.optim 1.13
// (fixtures from tests/fixtures/gen_optim.py), plus state_dict round trips,
// parameter selection and error cases.
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include "core/autograd.h"
#include "optim/optim.h"
#include "tests/test_util.h"
#include "train/finetune.h"

namespace graft::optim {
namespace {

// Tolerances (max relative error per tensor). The optimizers are element-wise
// (no reductions but clipping's norm), so no summation order is involved:
// float64 agrees with torch's float64 to a few ulps per step (1e-12 = 10^4
// ulps); float32 runs the same formulas on float32 state, a few float32 ulps
// (6e-8) per step over <= 10 steps, so 1e-5 leaves a factor >= 10 on any
// machine. clip_grad_norm_'s total norm sums a few hundred squares: bound
// K * 2^-24 < 1e-5 at any order.
constexpr double kTolF64 = 1e-12;
constexpr double kTolF32 = 1e-5;

// Reads optim_<case>.idx/.bin written by gen_optim.py.
class Fixture {
 public:
  explicit Fixture(const std::string& name) {
    std::ifstream idx(testing::fixture("optim_" + name + ".idx"));
    std::ifstream bin(testing::fixture("optim_" + name + ".bin"), std::ios::binary);
    if (!idx || !bin) throw Error("cannot open fixture optim_" + name);
    const std::string data((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());
    std::string line;
    while (std::getline(idx, line)) {
      std::istringstream ls(line);
      std::string key, dt;
      int64_t ndim = 0, offset = 0;
      ls >> key >> dt >> ndim;
      Shape shape(static_cast<size_t>(ndim));
      for (auto& d : shape) ls >> d;
      ls >> offset;
      const DType dtype = dt == "f64"   ? DType::Float64
                          : dt == "f32" ? DType::Float32
                                        : DType::Int64;
      const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * itemsize(dtype);
      if (offset < 0 || static_cast<size_t>(offset) + nbytes > data.size())
        throw Error("fixture optim_" + name + ": entry " + key + " is out of range");
      tensors_[key] = from_buffer(data.data() + offset, shape, dtype);
      order_.push_back(key);
    }
  }
  const Tensor& operator[](const std::string& key) const {
    auto it = tensors_.find(key);
    if (it == tensors_.end()) throw Error("fixture has no entry " + key);
    return it->second;
  }
  bool has(const std::string& key) const { return tensors_.count(key) != 0; }
  const std::vector<std::string>& keys() const { return order_; }

 private:
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> order_;
};

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype()) return false;
  Tensor ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.raw_data(), bc.raw_data(), ac.nbytes()) == 0;
}

using MakeOpt = std::function<std::unique_ptr<Optimizer>(const NamedParams&)>;

struct RunSpec {
  std::map<int, std::pair<size_t, double>> lr_changes = {};  // before step s: group -> lr
  std::map<int, size_t> skip = {};                           // at step s, param i has no grad
};

// Feeds the fixture's gradients to the fixture's initial parameters and
// compares the final parameters and every state tensor with torch's.
NamedParams run_case(const std::string& name, const MakeOpt& make, const RunSpec& spec = {}) {
  Fixture f(name);
  NamedParams params;
  for (int i = 0; f.has("param." + std::to_string(i)); ++i)
    params.emplace_back("p" + std::to_string(i),
                        f["param." + std::to_string(i)].clone().set_requires_grad(true));
  int steps = 0;
  while (f.has("grad." + std::to_string(steps) + ".0")) ++steps;
  EXPECT_GT(steps, 0);
  auto opt = make(params);
  for (int s = 0; s < steps; ++s) {
    if (auto it = spec.lr_changes.find(s); it != spec.lr_changes.end())
      opt->param_groups()[it->second.first].set_lr(it->second.second);
    for (size_t i = 0; i < params.size(); ++i) {
      auto sk = spec.skip.find(s);
      params[i].second.set_grad(
          sk != spec.skip.end() && sk->second == i
              ? Tensor()
              : f["grad." + std::to_string(s) + "." + std::to_string(i)].clone());
    }
    opt->step();
  }
  const double tol = params[0].second.dtype() == DType::Float64 ? kTolF64 : kTolF32;
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(testing::close_to(params[i].second, f["final." + std::to_string(i)], tol))
        << name << " param " << i;
  // Every state entry torch has, we have (and vice versa), with torch's values.
  const FlatState sd = opt->state_dict();
  size_t n_state = 0;
  for (const auto& key : f.keys()) {
    if (key.rfind("state.", 0) != 0) continue;
    ++n_state;
    auto it = sd.find(key);
    EXPECT_TRUE(it != sd.end()) << name << ": missing " << key;
    if (it == sd.end()) continue;
    if (key.ends_with(".step")) {
      EXPECT_EQ(it->second.dtype(), DType::Float32) << key;
      EXPECT_EQ(it->second.item(), f[key].item()) << name << " " << key;
    } else {
      EXPECT_TRUE(testing::close_to(it->second, f[key], tol)) << name << " " << key;
    }
  }
  size_t ours = 0;
  for (const auto& [key, v] : sd) ours += key.rfind("state.", 0) == 0;
  EXPECT_EQ(ours, n_state) << name;
  return params;
}

std::string tag(DType dt) { return dt == DType::Float64 ? "f64" : "f32"; }

class OptimParity : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { GRAFT_REQUIRE_FIXTURE("optim_sched.idx"); }
};

TEST_P(OptimParity, SGDMomentumDampeningWeightDecay) {
  run_case("sgd_momentum_" + tag(GetParam()), [](const NamedParams& p) {
    return std::make_unique<SGD>(
        p, SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
  });
}

TEST_P(OptimParity, SGDNesterov) {
  run_case("sgd_nesterov_" + tag(GetParam()), [](const NamedParams& p) {
    return std::make_unique<SGD>(
        p, SGDOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 1e-3, .nesterov = true});
  });
}

TEST_P(OptimParity, SGDPlainMaximizeSkipsMissingGrad) {
  run_case(
      "sgd_plain_" + tag(GetParam()),
      [](const NamedParams& p) {
        return std::make_unique<SGD>(p, SGDOptions{.lr = 0.2, .maximize = true});
      },
      RunSpec{.skip = {{2, 1}}});
}

TEST_P(OptimParity, AdamWeightDecaySkipsMissingGrad) {
  run_case(
      "adam_" + tag(GetParam()),
      [](const NamedParams& p) {
        return std::make_unique<Adam>(
            p, AdamOptions{.lr = 0.01, .betas = {0.8, 0.99}, .eps = 1e-6, .weight_decay = 0.02});
      },
      RunSpec{.skip = {{3, 0}}});
}

TEST_P(OptimParity, AdamAmsgrad) {
  run_case("adam_amsgrad_" + tag(GetParam()), [](const NamedParams& p) {
    return std::make_unique<Adam>(p, AdamOptions{.lr = 0.02, .amsgrad = true});
  });
}

TEST_P(OptimParity, AdamW) {
  run_case("adamw_" + tag(GetParam()), [](const NamedParams& p) {
    return std::make_unique<AdamW>(p, AdamWOptions{.lr = 0.01, .weight_decay = 0.05});
  });
}

TEST_P(OptimParity, AdamWAmsgradMaximize) {
  run_case("adamw_amsgrad_" + tag(GetParam()), [](const NamedParams& p) {
    return std::make_unique<AdamW>(p, AdamWOptions{.lr = 0.03, .amsgrad = true, .maximize = true});
  });
}

INSTANTIATE_TEST_SUITE_P(DTypes, OptimParity, ::testing::Values(DType::Float64, DType::Float32),
                         [](const auto& test_info) { return tag(test_info.param); });

TEST(OptimGroups, SGDTwoGroupsLrZeroAndLrChanges) {
  GRAFT_REQUIRE_FIXTURE("optim_sgd_groups_f64.idx");
  Fixture f("sgd_groups_f64");
  NamedParams params = run_case(
      "sgd_groups_f64",
      [](const NamedParams& p) {
        return std::make_unique<SGD>(
            std::vector<ParamGroup>{ParamGroup{select_range(p, 0, 2), {.lr = 0.0}},
                                    ParamGroup{select_range(p, 2, 3), {.momentum = 0.5}}},
            SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2});
      },
      RunSpec{.lr_changes = {{3, {1, 0.01}}, {5, {1, 0.3}}}});
  // lr = 0: the parameters are untouched, bit for bit.
  EXPECT_TRUE(bit_equal(params[0].second, f["param.0"]));
  EXPECT_TRUE(bit_equal(params[1].second, f["param.1"]));
  EXPECT_FALSE(bit_equal(params[2].second, f["param.2"]));
}

TEST(OptimGroups, AdamTwoGroupsLrZeroAndBetasOverride) {
  GRAFT_REQUIRE_FIXTURE("optim_adam_groups_f32.idx");
  Fixture f("adam_groups_f32");
  NamedParams params = run_case(
      "adam_groups_f32",
      [](const NamedParams& p) {
        return std::make_unique<Adam>(
            std::vector<ParamGroup>{
                ParamGroup{select_range(p, 0, 1), {.lr = 0.0}},
                ParamGroup{select_range(p, 1, 3), {.betas = std::array{0.5, 0.9}}}},
            AdamOptions{.lr = 0.01, .weight_decay = 0.1});
      },
      RunSpec{.lr_changes = {{4, {1, 0.05}}}});
  EXPECT_TRUE(bit_equal(params[0].second, f["param.0"]));
}

TEST(OptimGroups, UnsetOptionsTakeDefaults) {
  Tensor a = randn({3}).set_requires_grad(true), b = randn({2}).set_requires_grad(true);
  SGD opt({ParamGroup{NamedParams{{"a", a}}, {.lr = 0.001}}, ParamGroup{NamedParams{{"b", b}}}},
          SGDOptions{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4});
  EXPECT_EQ(opt.param_groups()[0].lr(), 0.001);
  EXPECT_EQ(opt.param_groups()[1].lr(), 0.01);
  EXPECT_EQ(*opt.param_groups()[0].options.momentum, 0.9);
  EXPECT_EQ(*opt.param_groups()[1].options.weight_decay, 5e-4);
  EXPECT_FALSE(opt.param_groups()[0].options.betas.has_value());
}

// ---------------------------------------------------------------- schedulers

void expect_sequence(const std::string& name, Optimizer& opt, const std::function<void()>& step) {
  Fixture f("sched");
  const Tensor want_lr = f[name + ".lr"], want_m = f[name + ".momentum"];
  const auto lr = want_lr.to_vector<double>(), mom = want_m.to_vector<double>();
  const int64_t steps = want_lr.size(0), groups = want_lr.size(1);
  ASSERT_EQ(groups, static_cast<int64_t>(opt.param_groups().size()));
  for (int64_t s = 0; s < steps; ++s) {
    if (s > 0) {
      opt.step();
      step();
    }
    for (int64_t g = 0; g < groups; ++g) {
      const ParamGroup& pg = opt.param_groups()[g];
      const double m = pg.options.momentum ? *pg.options.momentum : (*pg.options.betas)[0];
      const double want = lr[s * groups + g];
      // Same formulas in the same order (no FMA contraction): bit-identical.
      EXPECT_EQ(pg.lr(), want) << name << " step " << s << " group " << g;
      EXPECT_EQ(m, mom[s * groups + g]) << name << " momentum, step " << s;
    }
  }
}

// The optimizer gen_optim.py's sched_seq builds: two groups, lr 0.1 and 0.01.
std::unique_ptr<Optimizer> sched_optimizer(bool adam = false) {
  NamedParams p{{"p1", zeros({2}).set_requires_grad(true)},
                {"p2", zeros({3}).set_requires_grad(true)}};
  std::vector<ParamGroup> groups{ParamGroup{select_range(p, 0, 1)},
                                 ParamGroup{select_range(p, 1, 2), {.lr = 0.01}}};
  if (adam) return std::make_unique<Adam>(groups, AdamOptions{.lr = 0.1});
  return std::make_unique<SGD>(groups, SGDOptions{.lr = 0.1, .momentum = 0.9});
}

class SchedulerParity : public ::testing::Test {
 protected:
  void SetUp() override { GRAFT_REQUIRE_FIXTURE("optim_sched.idx"); }
};

TEST_F(SchedulerParity, StepLR) {
  auto opt = sched_optimizer();
  StepLR s(*opt, 7, 0.5);
  expect_sequence("step", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, MultiStepLRWithRepeatedMilestone) {
  auto opt = sched_optimizer();
  MultiStepLR s(*opt, {10, 30, 30, 80}, 0.3);
  expect_sequence("multistep", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, CosineAnnealingLR) {
  auto opt = sched_optimizer();
  CosineAnnealingLR s(*opt, 100);
  expect_sequence("cosine", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, CosineAnnealingLRPastTMax) {
  auto opt = sched_optimizer();
  CosineAnnealingLR s(*opt, 30, 1e-4);
  expect_sequence("cosine_restart", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, LinearLRWarmup) {
  auto opt = sched_optimizer();
  LinearLR s(*opt, 0.1, 1.0, 10);
  expect_sequence("linear", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, OneCycleLRCosWithMomentum) {
  auto opt = sched_optimizer();
  OneCycleLR s(*opt, {.max_lr = {0.2, 0.05}, .total_steps = 100, .pct_start = 0.3});
  expect_sequence("onecycle", *opt, [&] { s.step(); });
  EXPECT_THROW(s.step(), Error);  // step 101 of 100
}

TEST_F(SchedulerParity, OneCycleLRLinearThreePhase) {
  auto opt = sched_optimizer();
  OneCycleLR s(*opt, {.max_lr = {0.1},
                      .total_steps = 100,
                      .anneal_cos = false,
                      .div_factor = 10,
                      .final_div_factor = 100,
                      .three_phase = true});
  expect_sequence("onecycle_linear3", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, OneCycleLRCyclesAdamBeta1) {
  auto opt = sched_optimizer(/*adam=*/true);
  OneCycleLR s(*opt, {.max_lr = {0.01}, .total_steps = 100});
  expect_sequence("onecycle_adam", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, SequentialLinearThenCosine) {
  auto opt = sched_optimizer();
  auto warm = std::make_shared<LinearLR>(*opt, 0.1, 1.0, 5);
  auto cos = std::make_shared<CosineAnnealingLR>(*opt, 95);
  SequentialLR s(*opt, {warm, cos}, {5});
  expect_sequence("sequential", *opt, [&] { s.step(); });
}

TEST_F(SchedulerParity, ChainedLinearAndStep) {
  auto opt = sched_optimizer();
  auto a = std::make_shared<LinearLR>(*opt, 0.5, 1.0, 4);
  auto b = std::make_shared<StepLR>(*opt, 10, 0.5);
  ChainedScheduler s({a, b});
  expect_sequence("chained", *opt, [&] { s.step(); });
}

// ---------------------------------------------------------------- clipping

TEST(ClipGradNorm, MatchesTorch) {
  GRAFT_REQUIRE_FIXTURE("optim_clip.idx");
  Fixture f("clip");
  const std::vector<std::pair<double, double>> cases{
      {1.0, 2.0}, {100.0, 2.0}, {0.5, kInfNorm}, {2.0, 1.0}, {1.5, 3.0}};
  for (const char* t : {"f64", "f32"}) {
    const double tol = std::string(t) == "f64" ? kTolF64 : kTolF32;
    for (size_t k = 0; k < cases.size(); ++k) {
      const std::string pre = std::string(t) + "." + std::to_string(k) + ".";
      std::vector<Tensor> params;
      for (int i = 0; i < 3; ++i) {
        Tensor g = f[pre + "grad." + std::to_string(i)];
        params.push_back(zeros(g.sizes(), opts(g.dtype())).set_requires_grad(true));
        params.back().set_grad(g.clone());
      }
      const double total = clip_grad_norm_(params, cases[k].first, cases[k].second);
      const double want = f[pre + "total"].item();
      EXPECT_NEAR(total, want, tol * want) << pre;
      for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(
            testing::close_to(params[i].grad(), f[pre + "clipped." + std::to_string(i)], tol))
            << pre << i;
    }
  }
}

TEST(ClipGradNorm, NoGradientsAndNonFinite) {
  Tensor p = zeros({3}).set_requires_grad(true);
  EXPECT_EQ(clip_grad_norm_(std::vector<Tensor>{p}, 1.0), 0.0);
  p.set_grad(tensor<float>({1, NAN, 2}));
  EXPECT_THROW(clip_grad_norm_(std::vector<Tensor>{p}, 1.0, 2.0, true), Error);
  EXPECT_TRUE(std::isnan(clip_grad_norm_(std::vector<Tensor>{p}, 1.0)));
}

// ---------------------------------------------------------------- state_dict

// Runs `steps` steps of `opt` with gradients drawn from `gen`.
void train(Optimizer& opt, const NamedParams& params, int steps, Generator& gen) {
  for (int s = 0; s < steps; ++s) {
    for (const auto& [name, p] : params) p.set_grad(randn(p.sizes(), opts(p.dtype()), &gen));
    opt.step();
  }
}

NamedParams fresh_params(DType dt) {
  Generator g(7);
  return {{"conv.weight", randn({4, 3, 3}, opts(dt), &g).set_requires_grad(true)},
          {"conv.bias", randn({4}, opts(dt), &g).set_requires_grad(true)},
          {"fc.weight", randn({2, 4}, opts(dt), &g).set_requires_grad(true)}};
}

template <typename Opt, typename Options>
void check_resume(Options options) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    auto make = [&](const NamedParams& p) {
      return Opt(
          {ParamGroup{select_range(p, 0, 2)}, ParamGroup{select_range(p, 2, 3), {.lr = 0.003}}},
          options);
    };
    // Uninterrupted: 6 steps.
    NamedParams a = fresh_params(dt);
    Opt opt_a = make(a);
    Generator ga(11);
    train(opt_a, a, 3, ga);
    const FlatState saved = opt_a.state_dict();
    std::vector<Tensor> saved_params;
    for (const auto& [n, p] : a) saved_params.push_back(p.clone());
    Generator gb = ga;  // the same gradients for the continuation
    train(opt_a, a, 3, ga);

    // Interrupted: a new optimizer over restored parameters, loaded from the dict.
    NamedParams b = fresh_params(dt);
    for (size_t i = 0; i < b.size(); ++i) {
      NoGradGuard ng;
      copy_(b[i].second, saved_params[i]);
    }
    Opt opt_b = make(b);
    opt_b.load_state_dict(saved);
    train(opt_b, b, 3, gb);
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TRUE(bit_equal(a[i].second, b[i].second)) << a[i].first;
    const FlatState sa = opt_a.state_dict(), sb = opt_b.state_dict();
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [key, v] : sa) {
      ASSERT_TRUE(sb.count(key)) << key;
      EXPECT_TRUE(bit_equal(v, sb.at(key))) << key;
    }
  }
}

TEST(StateDict, SGDResumeIsBitIdentical) {
  check_resume<SGD>(
      SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
}

TEST(StateDict, AdamAmsgradResumeIsBitIdentical) {
  check_resume<Adam>(AdamOptions{.lr = 0.01, .weight_decay = 0.01, .amsgrad = true});
}

TEST(StateDict, AdamWResumeIsBitIdentical) { check_resume<AdamW>(AdamWOptions{.lr = 0.01}); }

TEST(StateDict, LayoutAndGroupHyperparameters) {
  NamedParams p = fresh_params(DType::Float32);
  AdamW opt({ParamGroup{select_range(p, 0, 2)}, ParamGroup{select_range(p, 2, 3), {.lr = 0.5}}});
  Generator g(1);
  train(opt, p, 2, g);
  FlatState sd = opt.state_dict();
  EXPECT_EQ(sd.at("param_groups.1.params").to_vector<int64_t>(), std::vector<int64_t>{2});
  EXPECT_EQ(sd.at("param_groups.1.lr").item(), 0.5);
  EXPECT_EQ(sd.at("param_groups.0.betas").to_vector<double>(), (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(sd.at("state.2.step").item(), 2.0);
  EXPECT_EQ(sd.at("state.1.exp_avg").sizes(), (Shape{4}));
  // The dict is a copy: more steps do not change it.
  const Tensor before = sd.at("state.0.exp_avg").clone();
  train(opt, p, 1, g);
  EXPECT_TRUE(bit_equal(before, sd.at("state.0.exp_avg")));
  // Loading restores hyperparameters too.
  sd["param_groups.0.lr"] = scalar_tensor(0.25, opts(DType::Float64));
  opt.load_state_dict(sd);
  EXPECT_EQ(opt.param_groups()[0].lr(), 0.25);
  EXPECT_EQ(opt.state(0, 0).step, 2);
}

// param_groups holds exactly the options the optimizer uses, under torch's
// names and dtypes (what torch.load and optimizer.load_state_dict expect).
TEST(StateDict, GroupOptionKeysAndDtypes) {
  const NamedParams p = fresh_params(DType::Float32);
  auto group_entries = [](const Optimizer& opt) {
    std::map<std::string, std::pair<DType, int64_t>> out;  // key -> (dtype, numel)
    for (const auto& [key, value] : opt.state_dict())
      if (key.rfind("param_groups.0.", 0) == 0)
        out[key.substr(15)] = {value.dtype(), value.numel()};
    return out;
  };
  const auto f64 = std::pair{DType::Float64, int64_t{1}}, flag = std::pair{DType::Bool, int64_t{1}};
  const auto params = std::pair{DType::Int64, int64_t{3}};
  SGD sgd(p, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  EXPECT_EQ(group_entries(sgd),
            (std::map<std::string, std::pair<DType, int64_t>>{{"dampening", f64},
                                                              {"lr", f64},
                                                              {"maximize", flag},
                                                              {"momentum", f64},
                                                              {"nesterov", flag},
                                                              {"params", params},
                                                              {"weight_decay", f64}}));
  Adam adam(p, {});
  EXPECT_EQ(group_entries(adam),
            (std::map<std::string, std::pair<DType, int64_t>>{{"amsgrad", flag},
                                                              {"betas", {DType::Float64, 2}},
                                                              {"eps", f64},
                                                              {"lr", f64},
                                                              {"maximize", flag},
                                                              {"params", params},
                                                              {"weight_decay", f64}}));
}

// --param-group takes the double-valued group options by their names and
// refuses any other key, listing the valid ones.
TEST(ParamGroupOptions, GroupSpecKeysAreTheNumericOptions) {
  const auto g =
      train::parse_group_spec("layer4.*:lr=0.5,momentum=0.25,dampening=0.125,weight_decay=2,eps=3");
  EXPECT_EQ(g.glob, "layer4.*");
  EXPECT_EQ(g.options.lr, 0.5);
  EXPECT_EQ(g.options.momentum, 0.25);
  EXPECT_EQ(g.options.dampening, 0.125);
  EXPECT_EQ(g.options.weight_decay, 2.0);
  EXPECT_EQ(g.options.eps, 3.0);
  EXPECT_FALSE(g.options.nesterov || g.options.betas || g.options.amsgrad || g.options.maximize);
  try {
    train::parse_group_spec("fc.*:nesterov=1");
    FAIL() << "nesterov is not a numeric group option";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown option 'nesterov' (expected lr, momentum, "
                                         "dampening, weight_decay or eps)"),
              std::string::npos)
        << e.what();
  }
}

TEST(StateDict, RejectsMismatchedLayoutAndLeavesOptimizerUnchanged) {
  NamedParams p = fresh_params(DType::Float32);
  SGD opt(p, SGDOptions{.lr = 0.1, .momentum = 0.9});
  Generator g(1);
  train(opt, p, 1, g);
  FlatState good = opt.state_dict();

  FlatState bad_shape = good;
  bad_shape["state.0.momentum_buffer"] = zeros({5});
  EXPECT_THROW(opt.load_state_dict(bad_shape), Error);
  FlatState extra_group = good;
  extra_group["param_groups.1.lr"] = scalar_tensor(0.1, opts(DType::Float64));
  EXPECT_THROW(opt.load_state_dict(extra_group), Error);
  FlatState unknown = good;
  unknown["state.0.bogus"] = zeros({1});
  EXPECT_THROW(opt.load_state_dict(unknown), Error);
  FlatState bad_lr = good;
  bad_lr["param_groups.0.lr"] = scalar_tensor(-1.0, opts(DType::Float64));
  EXPECT_THROW(opt.load_state_dict(bad_lr), Error);
  // Still the original state.
  const FlatState now = opt.state_dict();
  for (const auto& [key, v] : good) EXPECT_TRUE(bit_equal(v, now.at(key))) << key;
}

// ---------------------------------------------------------------- errors

TEST(OptimErrors, ParameterInTwoGroupsIsNamed) {
  NamedParams p = fresh_params(DType::Float32);
  try {
    SGD opt({ParamGroup{select_range(p, 0, 2)}, ParamGroup{select_range(p, 1, 3)}},
            SGDOptions{.lr = 0.1});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv.bias"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("at most one group"), std::string::npos) << e.what();
  }
  SGD opt(select_range(p, 0, 1), SGDOptions{.lr = 0.1});
  EXPECT_THROW(opt.add_param_group(ParamGroup{select_range(p, 0, 1)}), Error);
  EXPECT_THROW(SGD(NamedParams{p[0], p[0]}, SGDOptions{.lr = 0.1}), Error);
}

TEST(OptimErrors, InvalidHyperparameters) {
  NamedParams p = fresh_params(DType::Float32);
  EXPECT_THROW(SGD(p, SGDOptions{.lr = NAN}), Error);
  EXPECT_THROW(SGD(p, SGDOptions{.lr = -0.1}), Error);
  EXPECT_THROW(SGD(p, SGDOptions{}), Error);  // lr is required
  EXPECT_THROW(SGD({ParamGroup{p, {.lr = -1.0}}}, SGDOptions{.lr = 0.1}), Error);
  EXPECT_THROW(SGD(p, SGDOptions{.lr = 0.1, .momentum = -0.5}), Error);
  EXPECT_THROW(SGD(p, SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
               Error);
  EXPECT_THROW(Adam(p, AdamOptions{.betas = {0.9, 1.0}}), Error);
  EXPECT_THROW(Adam(p, AdamOptions{.eps = -1}), Error);
  EXPECT_THROW(AdamW(p, AdamWOptions{.lr = INFINITY}), Error);

  SGD opt(p, SGDOptions{.lr = 0.1});
  EXPECT_THROW(opt.param_groups()[0].set_lr(NAN), Error);
  EXPECT_THROW(opt.param_groups()[0].set_lr(-1), Error);
  opt.param_groups()[0].options.lr = -1;  // bypassing set_lr is caught at step()
  EXPECT_THROW(opt.step(), Error);
}

TEST(OptimErrors, FrozenNonLeafAndIntegerParametersAreRejected) {
  NamedParams p = fresh_params(DType::Float32);
  freeze_by_glob(p, "conv.*");
  try {
    SGD opt(p, SGDOptions{.lr = 0.1});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv.weight"), std::string::npos) << e.what();
  }
  SGD ok(trainable(p), SGDOptions{.lr = 0.1});
  EXPECT_EQ(ok.param_groups()[0].params.size(), 1u);
  Tensor leaf = ones({2}).set_requires_grad(true);
  EXPECT_THROW(SGD(NamedParams{{"y", mul(leaf, 2.0)}}, SGDOptions{.lr = 0.1}), Error);
  EXPECT_THROW(SGD(NamedParams{{"i", zeros({2}, opts(DType::Int64))}}, SGDOptions{.lr = 0.1}),
               Error);
}

TEST(OptimErrors, GradientDtypeMismatch) {
  NamedParams p = fresh_params(DType::Float32);
  SGD opt(p, SGDOptions{.lr = 0.1});
  p[0].second.set_grad(zeros(p[0].second.sizes(), opts(DType::Float64)));
  EXPECT_THROW(opt.step(), Error);
}

TEST(Optimizer, ZeroGradSetsNoneAndStepSkipsMissingGrads) {
  NamedParams p = fresh_params(DType::Float32);
  Adam opt(p);
  for (auto& [n, t] : p) t.set_grad(ones(t.sizes()));
  opt.zero_grad();
  for (auto& [n, t] : p) EXPECT_FALSE(t.grad().defined());
  const Tensor before = p[1].second.clone();
  p[0].second.set_grad(ones(p[0].second.sizes()));
  opt.step();
  EXPECT_TRUE(bit_equal(before, p[1].second));
  EXPECT_EQ(opt.state(0, 0).step, 1);
  EXPECT_EQ(opt.state(0, 1).step, 0);
  EXPECT_FALSE(opt.state(0, 1).exp_avg.defined());
}

TEST(Optimizer, StepWorksAfterBackward) {
  // The update is in place on leaves that require grad: allowed under the
  // optimizer's NoGradGuard, and the next forward/backward sees the new value.
  Tensor w = tensor<double>({1.0, -2.0}).set_requires_grad(true);
  SGD opt(NamedParams{{"w", w}}, SGDOptions{.lr = 0.5});
  sum(square(w)).backward();  // grad = 2w
  opt.step();
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{0.0, 0.0}));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
}

// ---------------------------------------------------------------- selection

TEST(ParamSelection, GlobMatching) {
  EXPECT_TRUE(glob_match("layer4.*", "layer4.1.conv2.weight"));
  EXPECT_FALSE(glob_match("layer4.*", "layer40.weight"));
  EXPECT_FALSE(glob_match("layer4.*", "layer4"));
  EXPECT_TRUE(glob_match("*.bias", "layer1.0.bn1.bias"));
  EXPECT_TRUE(glob_match("fc.?eight", "fc.weight"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*b*c", "a.x.b.y.c"));
  EXPECT_FALSE(glob_match("a*b*c", "a.x.b.y.d"));
  EXPECT_TRUE(glob_match("fc.weight", "fc.weight"));
  EXPECT_FALSE(glob_match("fc.weight", "fc.weights"));
}

NamedParams resnet_like() {
  NamedParams named;
  for (const char* n : {"conv1.weight", "bn1.weight", "bn1.bias", "layer4.0.conv1.weight",
                        "layer4.1.bn2.bias", "fc.weight", "fc.bias"})
    named.emplace_back(n, zeros({2}).set_requires_grad(true));
  return named;
}

TEST(ParamSelection, SelectExcludeRangeFreeze) {
  NamedParams named = resnet_like();
  auto l4 = select_by_glob(named, "layer4.*");
  ASSERT_EQ(l4.size(), 2u);
  EXPECT_EQ(l4[1].first, "layer4.1.bn2.bias");
  EXPECT_TRUE(l4[0].second.is_same(named[3].second));
  EXPECT_EQ(exclude_by_glob(named, "fc.*").size(), 5u);
  EXPECT_EQ(first_k(named, 3).back().first, "bn1.bias");
  EXPECT_EQ(select_range(named, -2, 7).front().first, "fc.weight");
  EXPECT_THROW(select_range(named, 3, 9), Error);
  EXPECT_THROW(select_by_glob(named, "layer5.*"), Error);
  EXPECT_THROW(exclude_by_glob(named, "layer5.*"), Error);

  freeze_all(named);
  EXPECT_TRUE(trainable(named).empty());
  EXPECT_EQ(unfreeze_by_glob(named, "fc.*"), 2);
  EXPECT_EQ(trainable(named).size(), 2u);
  EXPECT_EQ(freeze_by_glob(named, "fc.bias"), 1);
  EXPECT_EQ(trainable(named).size(), 1u);
  try {
    freeze_by_glob(named, "layer9.*");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer9.*"), std::string::npos) << e.what();
  }
}

TEST(ParamSelection, ParamsToLearnSummary) {
  NamedParams named = resnet_like();
  freeze_by_glob(named, "*");
  unfreeze_by_glob(named, "layer4.*");
  unfreeze_by_glob(named, "fc.*");
  SGD opt({ParamGroup{select_by_glob(trainable(named), "layer4.*"), {.lr = 0.001}},
           ParamGroup{select_by_glob(named, "fc.*")}},
          SGDOptions{.lr = 0.01, .momentum = 0.9});
  const std::string s = params_to_learn(opt);
  EXPECT_EQ(s.rfind("Params to learn:\n", 0), 0u) << s;
  EXPECT_NE(s.find("group 0 (lr 0.001): 2 tensors, 4 elements"), std::string::npos) << s;
  EXPECT_NE(s.find("\t fc.bias\n"), std::string::npos) << s;
  EXPECT_EQ(s.find("\t conv1.weight"), std::string::npos) << s;
  const std::string flat = params_to_learn(named);
  EXPECT_NE(flat.find("(4 tensors, 8 elements)"), std::string::npos) << flat;
}

}  // namespace
}  // namespace graft::optim
