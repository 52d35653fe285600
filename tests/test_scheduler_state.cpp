// Schedule::state_dict / load_state_dict: a schedule rebuilt from scratch,
// given the optimizer's and the schedule's saved state, continues with the
// exact lrs (and OneCycle momentum) of the uninterrupted one, for every
// scheduler `graft train` builds. No replay of past steps.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "core/ops.h"
#include "optim/optimizer.h"
#include "optim/scheduler.h"

namespace {

using namespace graft;
using namespace graft::optim;

std::unique_ptr<Optimizer> two_groups() {
  NamedParams a{{"a", zeros({2}).set_requires_grad(true)}};
  NamedParams b{{"b", zeros({3}).set_requires_grad(true)}};
  std::vector<ParamGroup> groups{ParamGroup{a}, ParamGroup{b, {.lr = 0.01}}};
  return std::make_unique<SGD>(groups, SGDOptions{.lr = 0.1, .momentum = 0.9});
}

using Factory = std::function<std::shared_ptr<Schedule>(Optimizer&)>;

// lr and momentum of every group, bit for bit.
std::vector<double> hyper(const Optimizer& opt) {
  std::vector<double> v;
  for (const auto& g : opt.param_groups()) {
    v.push_back(g.lr());
    v.push_back(g.options.momentum.value_or(-1));
  }
  return v;
}

void expect_exact_continuation(const Factory& make, int before, int after) {
  auto opt = two_groups();
  auto sched = make(*opt);
  for (int i = 0; i < before; ++i) sched->step();
  const FlatState opt_state = opt->state_dict(), sched_state = sched->state_dict();
  auto opt2 = two_groups();
  auto sched2 = make(*opt2);  // its initial step changes the lrs; the loads undo that
  opt2->load_state_dict(opt_state);
  sched2->load_state_dict(sched_state);
  for (int i = 0; i < after; ++i) {
    sched->step();
    sched2->step();
    ASSERT_EQ(hyper(*opt), hyper(*opt2)) << "step " << before + i + 1;
  }
}

TEST(ScheduleState, EverySchedulerContinuesExactly) {
  const std::vector<std::pair<const char*, Factory>> cases = {
      {"step", [](Optimizer& o) { return std::make_shared<StepLR>(o, 2, 0.5); }},
      {"multistep",
       [](Optimizer& o) {
         return std::make_shared<MultiStepLR>(o, std::vector<int64_t>{1, 3}, 0.5);
       }},
      {"cosine", [](Optimizer& o) { return std::make_shared<CosineAnnealingLR>(o, 6); }},
      {"linear", [](Optimizer& o) { return std::make_shared<LinearLR>(o, 1.0 / 3, 1.0, 3); }},
      {"onecycle",
       [](Optimizer& o) {
         return std::make_shared<OneCycleLR>(o, OneCycleOptions{.max_lr = {0.1}, .total_steps = 9});
       }},
      {"warmup+cosine", [](Optimizer& o) {
         auto warm = std::make_shared<LinearLR>(o, 1.0 / 3, 1.0, 2);
         auto cos = std::make_shared<CosineAnnealingLR>(o, 6);
         return std::make_shared<SequentialLR>(
             o, std::vector<std::shared_ptr<LRScheduler>>{warm, cos}, std::vector<int64_t>{2});
       }}};
  for (const auto& [name, make] : cases)
    for (int before : {0, 1, 2, 3}) {
      SCOPED_TRACE(std::string(name) + " resumed after " + std::to_string(before));
      expect_exact_continuation(make, before, 8 - before);
    }
}

TEST(ScheduleState, ForeignStateIsRejectedAndLeavesTheScheduleUnchanged) {
  auto opt = two_groups();
  StepLR step(*opt, 2, 0.5);
  step.step();
  const FlatState before = step.state_dict();
  EXPECT_THROW(step.load_state_dict({}), Error);
  FlatState one_group = before;
  one_group["base_lrs"] = tensor<double>({0.1});
  EXPECT_THROW(step.load_state_dict(one_group), Error);
  EXPECT_EQ(step.last_epoch(), 1);
  auto warm = std::make_shared<LinearLR>(*opt, 1.0 / 3, 1.0, 2);
  auto cos = std::make_shared<CosineAnnealingLR>(*opt, 6);
  SequentialLR seq(*opt, {warm, cos}, {2});
  FlatState partial = seq.state_dict();
  partial.erase("1.last_epoch");
  const int64_t warm_epoch = warm->last_epoch();
  EXPECT_THROW(seq.load_state_dict(partial), Error);
  EXPECT_EQ(warm->last_epoch(), warm_epoch) << "a failed load changed a child";
}

}  // namespace
