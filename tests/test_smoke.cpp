// Smoke test of the core: element-wise ops with broadcasting and autograd.
#include "core/autograd.h"
#include "tests/test_util.h"

namespace graft {

TEST(Smoke, BroadcastMulAndBackward) {
  Tensor a = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  Tensor b = tensor<float>({10, 20, 30}, {3}).set_requires_grad(true);
  Tensor y = sum(mul(a, b));
  EXPECT_DOUBLE_EQ(y.item(), 10 + 40 + 90 + 40 + 100 + 180);
  y.backward();
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{10, 20, 30, 10, 20, 30}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{5, 7, 9}));
}

TEST(Smoke, NonScalarBackwardNeedsGradient) {
  Tensor a = ones({2}).set_requires_grad(true);
  Tensor y = mul(a, 2.0);
  EXPECT_THROW(y.backward(), Error);
}

TEST(Smoke, InPlaceOnSavedTensorIsDetected) {
  Tensor a = ones({3}).set_requires_grad(true);
  Tensor b = mul(a, 2.0);
  Tensor c = mul(b, b);  // saves b
  add_(b, 1.0);
  EXPECT_THROW(sum(c).backward(), Error);
}

}  // namespace graft
