// `graft demo`: the built-in transfer-learning experiment (train/demo.h).
#include "cli/command.h"
#include "core/parallel.h"
#include "nn/models/registry.h"
#include "train/demo.h"

namespace {

std::function<int()> setup_demo(CLI::App& app) {
  auto o = std::make_shared<graft::train::DemoOptions>();
  auto threads = std::make_shared<int>(0);
  app.add_option("--out", o->out, "output folder")->capture_default_str();
  app.add_option("--arch", o->arch, "the model: " + graft::nn::model_names())
      ->capture_default_str();
  app.add_option("--k", o->ks, "target images per class, e.g. --k 10,30,100")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--modes", o->modes, "subset of scratch,finetune,feature-extract,lr0,lr0.1x")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--source-epochs", o->source_epochs, "source-task epochs")->capture_default_str();
  app.add_option("--source-batch", o->source_batch, "source-task batch size")
      ->capture_default_str();
  app.add_option("--source-limit", o->source_limit, "use at most N source images (-1: all)");
  app.add_option("--source-weights", o->source_weights, "reuse a pretrained source model");
  app.add_option("--epochs", o->epochs, "target epochs (0: 30 for K<=30, else 15)");
  app.add_option("--batch", o->batch, "target batch (0: 32 for K<=30, else 128)");
  app.add_option("--val-every", o->val_every, "curve points every N epochs")->capture_default_str();
  app.add_option("--lr", o->lr, "SGD learning rate")->capture_default_str();
  app.add_option("--image-size", o->image_size, "input size (Fashion-MNIST 28 is resized)")
      ->capture_default_str();
  app.add_option("--workers", o->workers, "loader threads");
  app.add_option("--cache-features", o->cache_features,
                 "auto | on | off: feature-extract trains its head on backbone features "
                 "computed once (same results up to float rounding); on: error for a mode "
                 "where that is inexact")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--seed", o->seed, "random seed")->capture_default_str();
  app.add_option("--threads", *threads, "CPU threads");
  return [o, threads]() {
    if (*threads > 0) graft::set_num_threads(*threads);
    graft::train::run_demo(*o);
    return 0;
  };
}

GRAFT_COMMAND("demo",
              "Transfer-learning experiment: pretrain on Fashion-MNIST 0-4, compare fine-tuning "
              "modes on 5-9",
              setup_demo);

}  // namespace
