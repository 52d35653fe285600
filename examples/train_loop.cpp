// A training loop written by hand, without train::fit(): the forward pass
// records the autograd tape, backward() walks it, the optimizer steps and a
// scheduler decays the learning rate. A small MLP learns three Gaussian blobs.
#include <graft/graft.h>

#include <cstdio>
#include <vector>

using namespace graft;  // graft::F is torch.nn.functional (also graft::nn::functional)

int main() {
  Generator gen(0);
  // 3 classes x 100 points in 2-D around the centres (0,3), (3,-2), (-3,-2).
  const Tensor centres = tensor<float>({0, 3, 3, -2, -3, -2}, {3, 2});
  std::vector<int64_t> classes(300);
  for (size_t i = 0; i < classes.size(); ++i) classes[i] = static_cast<int64_t>(i / 100);
  const Tensor labels = tensor(classes);
  const Tensor points = centres.index_select(0, labels) + randn({300, 2}, {}, &gen);

  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(2, 32, true, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(32, 3, true, &gen)});
  optim::SGD opt(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::StepLR scheduler(opt, /*step_size=*/10, /*gamma=*/0.5);

  for (int64_t epoch = 0; epoch < 30; ++epoch) {
    const Tensor order = randperm(300, &gen);
    double total = 0;
    for (int64_t start = 0; start < 300; start += 50) {
      const Tensor idx = order.slice(0, start, start + 50);
      const Tensor logits = (*model)(points.index_select(0, idx));  // records the tape
      const Tensor loss = F::cross_entropy(logits, labels.index_select(0, idx));
      opt.zero_grad();
      loss.backward();  // fills .grad of every parameter
      opt.step();
      total += loss.item();
    }
    scheduler.step();  // once per epoch
    if (epoch % 10 == 9)
      std::printf("epoch %2lld  loss %.4f  lr %.4f\n", static_cast<long long>(epoch + 1), total / 6,
                  scheduler.last_lr()[0]);
  }

  NoGradGuard no_grad;
  const double accuracy = (*model)(points).argmax(1).eq(labels).to(DType::Float32).mean().item();
  std::printf("training accuracy %.3f\n", accuracy);
  return accuracy > 0.9 ? 0 : 1;  // the blobs overlap little: a working loop gets > 0.95
}
