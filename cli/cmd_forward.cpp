// `graft forward`: eval-mode model inference on an NCHW float batch (.npy),
// writing float32 logits as .npy.
//
//   graft forward --arch resnet18 --weights w.pth --input x.npy --output y.npy
//
// The model comes from the file (train::load_model, shared with eval and
// predict): --arch and --num-classes default to what it holds, and one that
// contradicts it is an error. A file that does not fit gets a one-line error
// naming the likely cause, and nothing runs.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "io/npy.h"
#include "nn/models/registry.h"
#include "train/checkpoint.h"

namespace {

using namespace graft;

struct ForwardArgs {
  std::string arch, weights, input, output;
  int64_t num_classes = 0;
  int threads = 0;
  bool override_meta = false;
};

void require_file(const std::string& path, const char* what) {
  GRAFT_CHECK(std::filesystem::exists(path), what, " file not found: ", path);
}

int run_forward(const ForwardArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  require_file(a.weights, "weights");
  require_file(a.input, "input");

  Tensor x = io::load_npy(a.input);
  GRAFT_CHECK(x.dim() == 4, "input ", a.input, ": expected an NCHW batch of rank 4, got rank ",
              x.dim(), " shape ", shape_str(x.sizes()));
  GRAFT_CHECK(x.size(1) == 3, "input ", a.input, ": expected 3 channels (NCHW), got shape ",
              shape_str(x.sizes()));
  GRAFT_CHECK(is_floating(x.dtype()), "input ", a.input, ": expected a floating-point array, got ",
              dtype_name(x.dtype()));
  x = x.to(DType::Float32).contiguous();

  train::ModelRequest req;
  req.weights = a.weights;
  req.arch = a.arch;
  req.num_classes = a.num_classes;
  req.override_meta = a.override_meta;
  train::LoadedModel m = train::load_model(req);
  auto& model = m.model;
  model->eval();

  Tensor logits;
  {
    NoGradGuard g;
    logits = model->forward(x);
  }
  io::save_npy(a.output, logits.to(DType::Float32));
  std::cout << "wrote " << a.output << " " << shape_str(logits.sizes()) << "\n";
  return 0;
}

GRAFT_COMMAND("forward", "Run eval-mode model inference on an NCHW .npy batch", [](CLI::App& sub) {
  auto args = std::make_shared<ForwardArgs>();
  sub.add_option("--arch", args->arch,
                 graft::nn::model_names() + " (default: from the checkpoint or its keys)");
  sub.add_option("--weights", args->weights, "weights (.pth, .safetensors, a graft checkpoint)")
      ->required();
  sub.add_option("--input", args->input, "NCHW float32 .npy batch")->required();
  sub.add_option("--output", args->output, "where to write the float32 logits (.npy)")->required();
  sub.add_option("--num-classes", args->num_classes,
                 "classifier width (default: rows of the head's weight in the file)");
  sub.add_option("--threads", args->threads, "CPU threads (default: all)");
  sub.add_flag("--override", args->override_meta,
               "let --arch contradict the checkpoint's metadata");
  return std::function<int()>([args] { return run_forward(*args); });
});

}  // namespace
