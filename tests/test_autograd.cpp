// The autograd engine: accumulation, graph shapes, grad mode, autograd::grad,
// and the error cases.
#include <gtest/gtest.h>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "core/ops.h"
#include "tests/test_util.h"

namespace graft {
namespace {

using testing::error_of;

Tensor leaf(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  Tensor t = randn(shape, opts(DType::Float64), &g);
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, DiamondAndAccumulation) {
  Tensor x = leaf({3}, 1);
  // y = x*x used twice: d/dx sum(y + 2y) = 3 * 2x
  Tensor y = mul(x, x);
  sum(add(y, mul(y, 2.0))).backward();
  EXPECT_TRUE(testing::close_to(x.grad(), mul(x.detach(), 6.0), 1e-15));
  // a second backward accumulates into .grad
  sum(x).backward();
  EXPECT_TRUE(testing::close_to(x.grad(), add(mul(x.detach(), 6.0), 1.0), 1e-15));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, RetainGraphAllowsTwoBackwards) {
  Tensor x = leaf({4}, 2);
  Tensor l = sum(exp(x));
  l.backward(Tensor(), true);
  l.backward();
  EXPECT_TRUE(testing::close_to(x.grad(), mul(exp(x.detach()), 2.0), 1e-15));
}

TEST(Autograd, NoGradAndDetach) {
  Tensor x = leaf({2}, 3);
  {
    NoGradGuard g;
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(autograd::grad_enabled() == false);
  }
  EXPECT_TRUE(autograd::grad_enabled());
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.storage().get(), x.storage().get());
  // a frozen branch contributes nothing
  Tensor z = add(mul(x, 3.0), mul(d, 5.0));
  sum(z).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3, 3}));
}

TEST(Autograd, GradFunctionDoesNotTouchDotGrad) {
  Tensor x = leaf({3}, 4), w = leaf({3}, 5);
  Tensor out = sum(mul(mul(x, x), w));
  std::vector<Tensor> g = autograd::grad({out}, {x});
  EXPECT_TRUE(testing::close_to(g[0], mul(mul(x.detach(), w.detach()), 2.0), 1e-15));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(Autograd, NonScalarBackwardWithGradient) {
  Tensor x = leaf({2, 2}, 6);
  Tensor y = mul(x, 3.0);
  const std::string msg = error_of([&] { y.backward(); });
  EXPECT_NE(msg.find("scalar"), std::string::npos) << msg;
  y.backward(full({2, 2}, 2.0, opts(DType::Float64)));
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(4, 6.0));
  EXPECT_THROW(mul(x, 1.0).backward(ones({3}, opts(DType::Float64))), Error);  // wrong shape
}

TEST(Autograd, BackwardTwiceThroughFreedGraph) {
  Tensor x = leaf({3}, 7);
  Tensor l = sum(mul(x, x));
  l.backward();
  const std::string msg = error_of([&] { l.backward(); });
  EXPECT_NE(msg.find("second time"), std::string::npos) << msg;
}

TEST(Autograd, InPlaceModificationOfSavedTensor) {
  Tensor x = leaf({3}, 8);
  Tensor y = mul(x, 2.0);
  Tensor z = mul(y, y);  // saves y
  add_(y, 1.0);
  const std::string msg = error_of([&] { sum(z).backward(); });
  EXPECT_NE(msg.find("modified by an in-place operation"), std::string::npos) << msg;
}

TEST(Autograd, InPlaceOnNonLeafKeepsHistory) {
  Tensor x = leaf({3}, 9);
  Tensor y = mul(x, 2.0);
  relu_(y);  // y's old value is not saved by anything: allowed
  sum(mul(y, 3.0)).backward();
  const auto xv = x.detach().to_vector<double>();
  const auto gv = x.grad().to_vector<double>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(gv[i], xv[i] > 0 ? 6.0 : 0.0);
}

TEST(Autograd, InPlaceErrors) {
  Tensor x = leaf({3}, 10);
  std::string msg = error_of([&] { add_(x, 1.0); });
  EXPECT_NE(msg.find("leaf"), std::string::npos) << msg;
  // allowed under NoGradGuard (parameter updates)
  {
    NoGradGuard g;
    add_(x, 1.0);
  }
  // a view of a tensor that needs grad cannot take a history
  Tensor y = mul(x, 1.0);
  Tensor v = y.slice(0, 0, 2);
  msg = error_of([&] { mul_(v, 2.0); });
  EXPECT_NE(msg.find("view"), std::string::npos) << msg;
  EXPECT_THROW(zeros({2}, opts(DType::Int64)).set_requires_grad(true), Error);
  EXPECT_THROW(y.set_requires_grad(false), Error);  // not a leaf
}

TEST(Autograd, BackwardOnTensorWithoutGrad) { EXPECT_THROW(sum(ones({2})).backward(), Error); }

TEST(Autograd, DtypeConversionsPropagate) {
  Tensor x = leaf({3}, 11);
  Tensor y = sum(mul(x.to(DType::Float32), 2.0));
  y.backward();
  EXPECT_EQ(x.grad().dtype(), DType::Float64);
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(3, 2.0));
}

TEST(Gradcheck, DetectsAWrongGradient) {
  // |x| has gradient sign(x); gradcheck must agree away from 0 ...
  GradcheckResult ok = gradcheck([](const std::vector<Tensor>& v) { return abs(v[0]); },
                                 {full({3}, 0.7, opts(DType::Float64))});
  EXPECT_TRUE(ok.ok) << ok.message;
  EXPECT_LT(ok.max_abs_error, 1e-6);
  // ... and flag a function whose recorded gradient is wrong: round() has
  // zero gradient but rounding a large-scale input changes with x.
  GradcheckResult bad =
      gradcheck([](const std::vector<Tensor>& v) { return add(round(mul(v[0], 1e7)), v[0]); },
                {full({2}, 0.3, opts(DType::Float64))});
  EXPECT_FALSE(bad.ok);
  EXPECT_FALSE(bad.message.empty());
}

}  // namespace
}  // namespace graft
