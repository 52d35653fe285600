// `graft train`: fine-tune or train a registered model (--arch) on .npy
// tensors, an ImageFolder tree or Fashion-MNIST, with the seed tutorials'
// recipes as flags.
#include <iostream>

#include "cli/command.h"
#include "cli/freeze_flags.h"
#include "nn/models/registry.h"
#include "train/run.h"

namespace {

std::function<int()> setup_train(CLI::App& app) {
  auto c = std::make_shared<graft::train::TrainConfig>();
  auto betas = std::make_shared<std::string>("0.9,0.999");
  app.add_option("--arch", c->arch, "the model: " + graft::nn::model_names())
      ->capture_default_str();
  app.add_option("--weights", c->weights, "pretrained weights (.pth, .safetensors)");
  app.add_option("--num-classes", c->num_classes,
                 "classes of the head (default: the data's; for .npy labels the weights' head "
                 "when it covers them). A head other than the weights' is replaced");
  graft::cli::add_freeze_flags(app, *c);  // --mode, --freeze
  // data
  app.add_option("--train-npy", c->train_npy, "training images, NCHW float32 .npy");
  app.add_option("--train-labels", c->train_labels, "training labels, int64 .npy");
  app.add_option("--val-npy", c->val_npy, "validation images .npy");
  app.add_option("--val-labels", c->val_labels, "validation labels .npy");
  app.add_option("--data", c->data_dir, "ImageFolder root (with train/ and val/ or test/)");
  app.add_option("--val-data", c->val_data, "ImageFolder root for validation");
  app.add_option("--dataset", c->dataset, "built-in data set: fashion-mnist")
      ->check(CLI::IsMember({"fashion-mnist"}));
  app.add_option("--image-size", c->image_size,
                 "crop size (default 224; 32 for fashion-mnist); stored in the checkpoints "
                 "for eval/predict");
  app.add_option("--augment", c->augment, "default | none")
      ->check(CLI::IsMember({"default", "none"}));
  app.add_option("--workers", c->workers, "loader threads")->capture_default_str();
  app.add_flag("--skip-bad-images", c->skip_bad_images, "skip undecodable images with a warning");
  // optimizer
  app.add_option("--optimizer", c->optimizer, "sgd | adam | adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
  app.add_option("--lr", c->lr,
                 "learning rate (torchvision's reference: 0.1 for batch 256 from scratch)")
      ->capture_default_str();
  app.add_option("--momentum", c->momentum, "SGD momentum")->capture_default_str();
  app.add_option("--dampening", c->dampening, "SGD dampening");
  app.add_flag("--nesterov", c->nesterov, "Nesterov momentum");
  app.add_option("--weight-decay", c->weight_decay,
                 "weight decay, on every parameter (torchvision's reference: 1e-4)")
      ->capture_default_str();
  app.add_option("--betas", *betas, "Adam betas B1,B2")->capture_default_str();
  app.add_option("--eps", c->eps, "Adam eps");
  app.add_flag("--amsgrad", c->amsgrad, "AMSGrad variant of Adam/AdamW");
  app.add_option("--param-group", c->param_groups,
                 "'GLOB:lr=F,momentum=F,weight_decay=F' (first match wins)");
  app.add_option("--bn", c->bn,
                 "BatchNorm policy: train (torch's default) | frozen (BN layers whose "
                 "parameters are all frozen stay in eval mode)")
      ->check(CLI::IsMember({"train", "frozen"}));
  app.add_option("--backbone-lr-mult", c->backbone_lr_mult, "backbone lr = lr * F");
  app.add_option("--head-lr-mult", c->head_lr_mult, "head (fc, classifier) lr = lr * F");
  // schedule and loop
  app.add_option("--scheduler", c->scheduler,
                 "none | step | multistep | cosine | warmup | onecycle; stepped once per "
                 "epoch (as torchvision's references and timm's default)")
      ->check(CLI::IsMember({"none", "step", "multistep", "cosine", "warmup", "onecycle"}));
  app.add_option("--step-size", c->step_size, "StepLR period in epochs (--scheduler step)")
      ->capture_default_str();
  app.add_option("--gamma", c->gamma, "StepLR/MultiStepLR decay")->capture_default_str();
  app.add_option("--milestones", c->milestones, "MultiStepLR epochs")->delimiter(',');
  app.add_option("--warmup-epochs", c->warmup_epochs,
                 "linear warmup from lr/3 over N epochs before any --scheduler (then the "
                 "schedule runs over the remaining epochs, as torchvision's "
                 "--lr-warmup-epochs, whose start factor defaults to 0.01); --scheduler "
                 "warmup alone: 1");
  app.add_option("--batch-size", c->batch_size, "batch size")->capture_default_str();
  app.add_option("--epochs", c->epochs,
                 "epochs (default 1, or as many as --max-steps needs when only it is given)");
  app.add_option("--max-steps", c->max_steps,
                 "stop after N optimizer steps in total (with --epochs: whichever comes first)");
  app.add_option("--val-every", c->val_every,
                 "validate every N epochs and after the last; only validated epochs can "
                 "become best.pth");
  app.add_flag("!--no-shuffle", c->shuffle, "take batches in order");
  app.add_option("--seed", c->seed, "random seed")->capture_default_str();
  app.add_option("--label-smoothing", c->label_smoothing, "cross-entropy label smoothing");
  app.add_option("--clip-grad-norm", c->clip_grad_norm, "clip the global gradient norm (0: off)");
  app.add_option("--cache-features", c->cache_features,
                 "auto | on | off: with a frozen backbone and BN and deterministic data, run "
                 "the backbone once per image and train the head on its features (same "
                 "batches, same results up to float rounding); auto: where exact, else says why")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--telemetry", c->telemetry,
                 "every N steps, per-group grad norm, update/weight ratio, effective lr and "
                 "per-layer activation stats into telemetry.csv/.svg in --out");
  app.add_option("--save", c->save, "write the final state_dict here (.pth)");
  app.add_option("--out", c->out,
                 "run folder: metrics.csv, config.json, last.pth, best.pth, plots (default "
                 "without --save: runs/ARCH-TIMESTAMP); must be empty unless --overwrite");
  app.add_flag("--overwrite", c->overwrite, "replace the run in a non-empty --out");
  app.add_option("--resume", c->resume,
                 "continue the run in this --out folder exactly where it stopped, even "
                 "mid-epoch (a folder, where torchvision's --resume takes a file; only "
                 "--epochs, --max-steps, --save, --device, --workers, --threads may change)");
  app.add_option("--device", c->device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--dtype", c->dtype,
                 "float32 | float64: the model's parameters and inputs (float64 for checks)")
      ->check(CLI::IsMember({"float32", "float64"}))
      ->capture_default_str();
  app.add_option("--threads", c->threads, "CPU threads");
  // data parallel (dist/)
  app.add_flag("--distributed", c->distributed,
               "data-parallel training over MPI; implied when mpirun starts more than one "
               "rank (mpirun -np N graft train ...). --batch-size is per rank");
  app.add_flag("--sync-bn", c->sync_bn,
               "all-reduce BatchNorm statistics across ranks, forward and backward (torch's "
               "SyncBatchNorm); default: per-rank statistics, as torch DDP");
  app.add_option("--dist-timeout", c->dist_timeout,
                 "seconds a collective waits for the other ranks before failing the job")
      ->capture_default_str();
  app.add_flag("--quiet", c->quiet, "no progress output");
  return [c, betas, &app]() {
    for (const CLI::Option* o : app.get_options())
      if (o->count() > 0) c->given.insert(o->get_single_name());
    const auto comma = betas->find(',');
    if (comma == std::string::npos) throw graft::Error("--betas must be B1,B2, e.g. 0.9,0.999");
    c->betas = {std::stod(betas->substr(0, comma)), std::stod(betas->substr(comma + 1))};
    const auto summary = graft::train::run_training(*c);
    return summary.interrupted ? 130 : 0;
  };
}

GRAFT_COMMAND("train", "Train or fine-tune a model (the seed tutorials' recipes as flags)",
              setup_train);

}  // namespace
