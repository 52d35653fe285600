// The research surface on a ResNet-18: forward hooks, a retained gradient on
// an intermediate activation, gradients with respect to any tensor of the
// graph, and telemetry over two SGD steps.
#include <graft/graft.h>

#include <cmath>
#include <cstdio>

using namespace graft;

int main() {
  manual_seed(0);
  auto model = nn::resnet18(3);
  const Tensor x = randn({4, 3, 32, 32}), labels = tensor<int64_t>({0, 1, 2, 1});

  // Forward hooks: statistics of one layer's output, and the stem's output
  // kept (with its gradient) for later, without editing the model.
  double conv_std = 0;
  HookHandle h = model->find_module("layer3.1.conv2")
                     ->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
                       conv_std = out.std().item();
                       return Tensor();  // undefined: keep the output
                     });
  Tensor stem;
  HookHandle keep =
      model->conv1->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
        out.retain_grad();  // a non-leaf: keep its .grad after backward
        stem = out;
        return Tensor();
      });
  const Tensor loss = F::cross_entropy((*model)(x), labels);
  // Gradients w.r.t. any tensors of the graph (no .grad is touched); then backward.
  const auto g = autograd::grad(
      {loss}, {stem, model->find_tensor(model->classifier_name() + ".weight")}, {}, true);
  loss.backward();
  std::printf("layer3.1.conv2 output std %.4f\n", conv_std);
  std::printf("|d loss/d stem| %.4g (retained: %.4g)  |d loss/d fc.weight| %.4g\n",
              g[0].abs().sum().item(), stem.grad().abs().sum().item(), g[1].abs().sum().item());
  h.remove();
  keep.remove();

  // Telemetry over two SGD steps: per group and per layer.
  optim::SGD opt(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train::Telemetry tele(*model, opt, {.every = 1});
  for (int64_t step = 1; step <= 2; ++step) {
    opt.zero_grad();
    F::cross_entropy((*model)(x), labels).backward();
    opt.step();
    tele.on_step({1, step, step, 0, 4});
  }
  for (const auto& r : tele.rows())
    if (r.kind == "group" || r.name == "layer4.1.conv2")
      std::printf("step %lld  %-14s %-13s %.5g\n", static_cast<long long>(r.step), r.name.c_str(),
                  r.metric.c_str(), r.value);
  const bool same = allclose(g[0], stem.grad(), 1e-5, 1e-7);  // grad() == retained .grad
  return same && std::isfinite(conv_std) && tele.rows().size() == 2 * (4 + 52 * 3) ? 0 : 1;
}
