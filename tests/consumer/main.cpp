// Uses the installed graft as a library user would: the umbrella header plus a
// narrower one, autograd checked numerically, and a ResNet forward pass (which
// needs the CPU kernels to be registered, also in a static link). It prints
// whether a CUDA device can be used, or why not (check.cmake reads it: a
// CPU-only consumer of a shared graft built with CUDA loads libgraft_cuda on
// demand).
#include <graft/graft.h>
#include <graft/nn/models/resnet.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "io/file.h"  // the consumer's own header, not graft's

int main() {
  using namespace graft;
  Tensor x = tensor<float>({1, 2, 3}).set_requires_grad(true);
  Tensor y = sum(mul(x, x));
  y.backward();
  const auto g = x.grad().to_vector<float>();
  bool ok = std::fabs(y.item() - 14) < 1e-6 && g[0] == 2 && g[1] == 4 && g[2] == 6;
  std::printf("consumer: y=%g grad=[%g %g %g]\n", y.item(), g[0], g[1], g[2]);

  auto model = nn::make_resnet("resnet18", 3);
  model->eval();
  Generator gen(0);
  NoGradGuard no_grad;
  const Tensor logits = (*model)(randn({2, 3, 32, 32}, {}, &gen));
  const auto probs = nn::functional::softmax(logits, 1).to_vector<float>();
  ok = ok && logits.sizes() == Shape{2, 3} && std::fabs(probs[0] + probs[1] + probs[2] - 1) < 1e-5;
  std::printf("consumer: resnet18 logits %s\n", logits.meta_str().c_str());

  ok = ok && std::strcmp(consumer_file_h(), "consumer io/file.h") == 0;
  const std::string why = device_unavailable_reason(DeviceType::CUDA);
  std::printf("consumer: cuda: %s\n", why.empty() ? "available" : why.c_str());
  std::printf("consumer: %s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
