// Uses the installed graft: a tiny autograd computation, checked numerically.
#include <core/autograd.h>
#include <core/ops.h>

#include <cmath>
#include <cstdio>

int main() {
  graft::Tensor x = graft::tensor<float>({1, 2, 3}).set_requires_grad(true);
  graft::Tensor y = graft::sum(graft::mul(x, x));
  y.backward();
  const auto g = x.grad().to_vector<float>();
  const bool ok = std::fabs(y.item() - 14) < 1e-6 && g[0] == 2 && g[1] == 4 && g[2] == 6;
  std::printf("consumer: y=%g grad=[%g %g %g] %s\n", y.item(), g[0], g[1], g[2],
              ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
