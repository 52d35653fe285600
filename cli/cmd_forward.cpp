// `graft forward`: eval-mode ResNet inference on an NCHW float batch (.npy),
// writing float32 logits as .npy.
//
//   graft forward --arch resnet18 --weights w.pth --input x.npy --output y.npy
//
// --num-classes defaults to the number of rows of fc.weight in the weights
// file. The checkpoint must fit the architecture exactly (strict loading);
// otherwise the load report (missing / unexpected / mis-shaped names) is
// printed and nothing runs.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include "io/npy.h"
#include "io/state_dict.h"
#include "nn/models/resnet.h"

namespace {

using namespace graft;

struct ForwardArgs {
  std::string arch, weights, input, output;
  int64_t num_classes = 0;
  int threads = 0;
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

  const io::StateDict sd = io::load_weights_file(a.weights);
  int64_t num_classes = a.num_classes;
  if (num_classes <= 0) {
    const Tensor* fc = io::find_tensor(sd, "fc.weight");
    GRAFT_CHECK(fc != nullptr && fc->dim() == 2, a.weights,
                " has no 2-D fc.weight to take the class count from; pass --num-classes");
    num_classes = fc->size(0);
  }
  auto model = nn::make_resnet(a.arch, num_classes);
  model->eval();

  io::LoadOptions check;
  check.strict = false;
  check.dry_run = true;
  const io::LoadReport report = io::load_state_dict(model->state_dict(), sd, check);
  if (!report.ok()) {
    std::cerr << "error: " << a.weights << " does not fit " << a.arch << " with " << num_classes
              << " classes:\n"
              << report.str() << "\n";
    return 1;
  }
  io::load_state_dict(model->state_dict(), sd);

  Tensor logits;
  {
    NoGradGuard g;
    logits = model->forward(x);
  }
  io::save_npy(a.output, logits.to(DType::Float32));
  std::cout << "wrote " << a.output << " " << shape_str(logits.sizes()) << "\n";
  return 0;
}

GRAFT_COMMAND("forward", "Run eval-mode ResNet inference on an NCHW .npy batch", [](CLI::App& sub) {
  auto args = std::make_shared<ForwardArgs>();
  sub.add_option("--arch", args->arch, "resnet18, resnet34, resnet50, resnet101, resnet152")
      ->required();
  sub.add_option("--weights", args->weights, "state_dict file (.pth, .safetensors)")->required();
  sub.add_option("--input", args->input, "NCHW float32 .npy batch")->required();
  sub.add_option("--output", args->output, "where to write the float32 logits (.npy)")->required();
  sub.add_option("--num-classes", args->num_classes,
                 "classifier width (default: rows of fc.weight in the file)");
  sub.add_option("--threads", args->threads, "CPU threads (default: all)");
  return std::function<int()>([args] { return run_forward(*args); });
});

}  // namespace
