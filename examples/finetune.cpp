// Fine-tunes a ResNet-18 on an ImageFolder (ROOT/train/<class>/*.jpg and
// ROOT/val/<class>/*.jpg) with any number of classes. With torchvision's
// ImageNet weights (torch.save(model.state_dict(), "resnet18.pth")) only the
// new head trains; without weights the whole network trains from scratch.
//
//   finetune ROOT [resnet18.pth] [image size, default 224]
#include <graft/graft.h>

#include <iostream>
#include <string>

using namespace graft;

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: finetune ROOT [resnet18.pth] [image size, default 224]\n";
    return 2;
  }
  const std::string root = argv[1];
  const bool pretrained = argc > 2 && std::string(argv[2]) != "-";
  const int64_t size = argc > 3 ? std::stoll(argv[3]) : 224;
  auto train =
      std::make_shared<data::ImageFolder>(root + "/train", data::imagenet_train_transform(size));
  auto val = std::make_shared<data::ImageFolder>(
      root + "/val", data::imagenet_eval_transform(size * 256 / 224, size));
  GRAFT_CHECK(val->classes() == train->classes(), root, "/val has other classes than ", root,
              "/train");
  const int64_t num_classes = train->num_classes();
  std::cout << num_classes << " classes, " << train->size() << " training images\n";

  auto model = nn::build_model("resnet18", 1000);
  if (pretrained) io::load_state_dict(model->state_dict(), io::load_weights_file(argv[2]));
  model->replace_classifier(num_classes);  // new fc: Linear(512, num_classes)
  auto named = model->named_parameters();
  if (pretrained) {  // feature extraction: train only the new head
    optim::freeze_all(named);
    optim::unfreeze_by_glob(named, model->head_glob());
  }
  optim::SGD opt(optim::trainable(named), {.lr = 0.01, .momentum = 0.9});
  std::cout << optim::params_to_learn(opt);

  data::DataLoader train_loader(train, {.batch_size = 16, .shuffle = true, .num_workers = 2});
  data::DataLoader val_loader(val, {.batch_size = 32, .num_workers = 2});
  train::FitOptions fo;
  fo.epochs = 3;
  fo.num_classes = num_classes;
  const auto history = train::fit(*model, opt, nullptr, train_loader, &val_loader, fo);
  io::save_pth(model->state_dict(), "finetuned.pth");  // loads in PyTorch
  std::cout << "validation accuracy " << history.back().val_acc.value_or(0) << "\n";
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
