// Every core op against PyTorch (tests/fixtures/gen_core.py): outputs and the
// gradients of sum(out * w), in float64; then finite-difference gradchecks.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "core/ops.h"
#include "io/npy.h"
#include "tests/test_util.h"

namespace graft {
namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// The graft side of each case in gen_core.py (same names, same formulas).
const std::map<std::string, Fn>& cases() {
  static const std::map<std::string, Fn> m = [] {
    std::map<std::string, Fn> c;
    auto unary = [](Tensor (*f)(const Tensor&)) {
      return [f](const std::vector<Tensor>& x) { return f(x[0]); };
    };
    c["neg"] = unary(neg);
    c["abs"] = unary(abs);
    c["exp"] = unary(exp);
    c["sin"] = unary(sin);
    c["cos"] = unary(cos);
    c["tanh"] = unary(tanh);
    c["sigmoid"] = unary(sigmoid);
    c["relu"] = unary(relu);
    c["square"] = unary(square);
    c["expm1"] = unary(expm1);
    c["log"] = unary(log);
    c["sqrt"] = unary(sqrt);
    c["rsqrt"] = unary(rsqrt);
    c["reciprocal"] = unary(reciprocal);
    c["log1p"] = unary(log1p);
    c["add"] = [](const auto& x) { return add(x[0], x[1], 2.5); };
    c["sub"] = [](const auto& x) { return sub(x[0], x[1]); };
    c["mul"] = [](const auto& x) { return mul(x[0], x[1]); };
    c["div"] = [](const auto& x) { return div(x[0], x[1]); };
    c["pow"] = [](const auto& x) { return pow(x[0], x[1]); };
    c["pow_scalar"] = [](const auto& x) { return pow(x[0], 3.0); };
    c["maximum"] = [](const auto& x) { return maximum(x[0], x[1]); };
    c["minimum"] = [](const auto& x) { return minimum(x[0], x[1]); };
    c["scalar_ops"] = [](const auto& x) {
      const Tensor& a = x[0];
      return (2.0 - a) * 3.0 / (a * a + 1.0) + 1.5 / (a + 4.0);
    };
    c["where"] = [](const auto& x) { return where(gt(x[0], 0.0), x[1], x[2]); };
    c["clamp"] = [](const auto& x) { return clamp(x[0], -0.5, 0.7); };
    c["views"] = [](const auto& x) {
      return mul(x[0].permute({2, 0, 1}).reshape({4, 6}).slice(0, 1, 4, 2).t().expand({2, 6, 2}),
                 1.0);
    };
    c["select_narrow"] = [](const auto& x) {
      return mul(x[0].select(1, 2).narrow(1, 1, 2), x[0].select(1, 0).slice(1, 0, 2));
    };
    c["sum"] = [](const auto& x) { return sum(x[0], {0, 2}); };
    c["sum_keepdim"] = [](const auto& x) { return sum(x[0], {1}, true); };
    c["mean"] = [](const auto& x) { return mean(x[0], {1}); };
    c["prod"] = [](const auto& x) { return prod(x[0], {2}); };
    c["amax"] = [](const auto& x) { return amax(x[0], {0, 2}); };
    c["amin"] = [](const auto& x) { return amin(x[0], {1}, true); };
    c["var"] = [](const auto& x) { return var(x[0], {1}); };
    c["var_all"] = [](const auto& x) { return var(x[0], {}, 0); };
    c["std"] = [](const auto& x) { return graft::std(x[0], {0, 2}, 1, true); };
    c["max_dim"] = [](const auto& x) { return max(x[0], 1).values; };
    c["min_dim"] = [](const auto& x) { return min(x[0], 2, true).values; };
    c["argmax"] = [](const auto& x) { return argmax(x[0], 1); };
    c["argmin"] = [](const auto& x) { return argmin(x[0]); };
    c["mm"] = [](const auto& x) { return mm(x[0], x[1]); };
    c["mm_t"] = [](const auto& x) { return mm(x[0].t(), x[1].t()); };
    c["bmm"] = [](const auto& x) { return bmm(x[0], x[1]); };
    c["matmul_bcast"] = [](const auto& x) { return matmul(x[0], x[1]); };
    c["matmul_fold"] = [](const auto& x) { return matmul(x[0], x[1]); };
    c["matmul_vec"] = [](const auto& x) { return matmul(x[0], x[1]); };
    c["matmul_dot"] = [](const auto& x) { return matmul(x[0], x[1]); };
    c["cat"] = [](const auto& x) { return cat({x[0], mul(x[1], 2.0), x[0]}, 1); };
    c["stack"] = [](const auto& x) { return stack({x[0], x[1]}, -1); };
    c["index_select"] = [](const auto& x) { return index_select(x[0], 1, x[1]); };
    c["gather"] = [](const auto& x) { return gather(x[0], 1, x[1]); };
    c["scatter_add"] = [](const auto& x) { return scatter_add(x[0], 1, x[1], x[2]); };
    c["one_hot"] = [](const auto& x) { return one_hot(x[0], 5); };
    return c;
  }();
  return m;
}

class TorchParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchParity, OutputAndGradients) {
  const std::string name = GetParam();
  const std::string prefix = "core_" + name + "_";
  GRAFT_REQUIRE_FIXTURE(prefix + "out.npy");
  std::vector<Tensor> inputs;
  for (int i = 0; testing::fixture_exists(prefix + "x" + std::to_string(i) + ".npy"); ++i) {
    Tensor t = io::load_npy(testing::fixture(prefix + "x" + std::to_string(i) + ".npy"));
    if (is_floating(t.dtype())) t.set_requires_grad(true);
    inputs.push_back(t);
  }
  ASSERT_FALSE(inputs.empty());
  const Tensor expected = io::load_npy(testing::fixture(prefix + "out.npy"));
  const Tensor out = cases().at(name)(inputs);
  ASSERT_EQ(out.sizes(), expected.sizes()) << name;
  if (!is_floating(expected.dtype())) {
    EXPECT_EQ(out.dtype(), DType::Int64);
    EXPECT_EQ(out.to_vector<int64_t>(), expected.to_vector<int64_t>()) << name;
    return;
  }
  EXPECT_EQ(out.dtype(), DType::Float64) << name;
  // float64 on both sides: one op differs from torch's by a few ulps (~1e-16)
  // times the op's condition number on these well-scaled random inputs; 1e-12
  // leaves 10^4 ulps, whatever the summation order.
  EXPECT_TRUE(testing::close_to(out, expected, 1e-12)) << name;
  const Tensor w = io::load_npy(testing::fixture(prefix + "w.npy"));
  sum(mul(out, w)).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    const Tensor g = io::load_npy(testing::fixture(prefix + "g" + std::to_string(i) + ".npy"));
    // An input reached only through non-differentiable ops (where's
    // condition) gets no gradient; torch reports None, saved as zeros.
    const Tensor actual = inputs[i].grad().defined() ? inputs[i].grad() : zeros_like(g);
    // The backward chains two or three float64 ops: 10x the forward bound.
    EXPECT_TRUE(testing::close_to(actual, g, 1e-11)) << name << " input " << i;
  }
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& [k, v] : cases()) names.push_back(k);
  return names;
}

std::string param_name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }

INSTANTIATE_TEST_SUITE_P(Core, TorchParity, ::testing::ValuesIn(case_names()), param_name);

// Finite differences for every differentiable case, on fresh random inputs
// (positive where the op needs it; index inputs from the fixtures).
TEST(Gradcheck, EveryDifferentiableOp) {
  Generator gen(11);
  for (const auto& [name, fn] : cases()) {
    const std::string prefix = "core_" + name + "_";
    if (!testing::fixture_exists(prefix + "w.npy")) continue;  // integer output
    std::vector<Tensor> inputs;
    for (int i = 0; testing::fixture_exists(prefix + "x" + std::to_string(i) + ".npy"); ++i) {
      Tensor t = io::load_npy(testing::fixture(prefix + "x" + std::to_string(i) + ".npy"));
      if (is_floating(t.dtype())) {
        // Keep the fixture's sign pattern (domains) but perturb the values.
        Tensor noise = mul(rand(t.sizes(), opts(DType::Float64), &gen), 0.1);
        t = add(t, mul(noise, sign(t)));
      }
      inputs.push_back(t);
    }
    const GradcheckResult r = gradcheck(fn, inputs);
    EXPECT_TRUE(r.ok) << name << ": " << r.message << " (max abs error " << r.max_abs_error << ")";
  }
}

}  // namespace
}  // namespace graft
