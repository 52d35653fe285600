// The model registry (nn/models/registry.h) and MobileNetV2 against
// torchvision 0.14 (fixtures from tests/fixtures/gen_mobilenet.py), then
// mobilenet_v2 through the CLI: train with each fine-tuning recipe, eval,
// predict and demo.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <iostream>
#include <map>
#include <set>

#include "cli_util.h"
#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "io/npy.h"
#include "io/state_dict.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/models/mobilenet_v2.h"
#include "nn/models/registry.h"
#include "nn/models/resnet.h"
#include "png_util.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "train/finetune.h"

namespace {

using namespace graft;
using namespace graft::testing;

std::string shape_text(const Shape& s) {
  if (s.empty()) return "-";
  std::ostringstream os;
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  return os.str();
}

// ---------------------------------------------------------------- registry

TEST(ModelRegistry, ListsEveryModelInNaturalOrder) {
  EXPECT_EQ(nn::model_names(), "mobilenet_v2, resnet18, resnet34, resnet50, resnet101, resnet152");
  const std::string e = error_of([] { nn::build_model("resnet19", 10); });
  EXPECT_NE(e.find("unknown architecture 'resnet19' (known: mobilenet_v2, resnet18, resnet34, "
                   "resnet50, resnet101, resnet152)"),
            std::string::npos)
      << e;
  EXPECT_EQ(nn::model_spec("resnet50").family, "ResNet");
  EXPECT_EQ(nn::model_spec("resnet50").head_linear, "fc");
  EXPECT_EQ(nn::model_spec("mobilenet_v2").family, "MobileNetV2");
  EXPECT_EQ(nn::model_spec("mobilenet_v2").head_linear, "classifier.1");
}

// Each registered model: the head's Linear is where the spec says, with one
// row per class; its keys identify it (and no other); replacing the head
// keeps every name.
TEST(ModelRegistry, EveryModelHasTheUniformInterface) {
  std::set<std::string> families;
  for (const nn::ModelSpec* spec : nn::model_specs()) {
    SCOPED_TRACE(spec->name);
    manual_seed(0);
    auto m = nn::build_model(spec->name, 7);
    const auto sd = m->state_dict();
    EXPECT_EQ(nn::head_classes(sd, spec->name), 7);
    EXPECT_EQ(nn::infer_arch(sd), spec->name);
    EXPECT_EQ(m->find_tensor(spec->head_linear + ".weight").sizes(),
              (Shape{7, m->feature_width()}));
    EXPECT_TRUE(m->in_head(spec->head_linear + ".bias"));
    EXPECT_FALSE(m->in_head(sd.front().first)) << "the first key is the stem's";
    EXPECT_EQ(m->head_glob(), m->classifier_name() + ".*");
    m->replace_classifier(3);
    const auto after = m->state_dict();
    ASSERT_EQ(after.size(), sd.size());
    for (size_t i = 0; i < sd.size(); ++i) EXPECT_EQ(after[i].first, sd[i].first);
    EXPECT_EQ(nn::head_classes(after, spec->name), 3);
    // The features feed the head: once per family (the same code for every
    // depth, and a forward pass of resnet152 costs seconds).
    if (!families.insert(spec->family).second) continue;
    m->eval();
    NoGradGuard g;
    const Tensor x = randn({2, 3, 32, 32});
    const Tensor f = m->features(x);
    EXPECT_EQ(f.sizes(), (Shape{2, m->feature_width()}));
    EXPECT_TRUE(close_to(m->forward(x), (*m->classifier())(f), 0));
  }
  EXPECT_EQ(families, (std::set<std::string>{"MobileNetV2", "ResNet"}));
  // A ResNet's keys are not a MobileNetV2's, and the other way round.
  EXPECT_EQ(nn::head_classes(nn::resnet18(4)->state_dict(), "mobilenet_v2"), 0);
  EXPECT_EQ(nn::infer_arch({}), "");
}

// A frozen MobileNetV2 backbone with frozen BN is cacheable (its blocks are
// registered as deterministic); a trainable one or a subclass is not.
TEST(ModelRegistry, FeatureCacheKnowsMobileNetV2) {
  auto m = nn::mobilenet_v2(3);
  m->requires_grad_(false);
  m->classifier()->requires_grad_(true);
  train::apply_bn_policy(*m, train::BnPolicy::Frozen);
  EXPECT_EQ(train::FeatureCache::inexact_reason(*m, nullptr), "");
  m->find_tensor("features.3.conv.1.0.weight").set_requires_grad(true);
  EXPECT_NE(train::FeatureCache::inexact_reason(*m, nullptr)
                .find("'features.3.conv.1.0.weight' is trainable (only the head 'classifier'"),
            std::string::npos);
  struct Custom : nn::MobileNetV2 {
    Custom() : nn::MobileNetV2(3) {}
  };
  Custom c;
  EXPECT_NE(train::FeatureCache::inexact_reason(c, nullptr)
                .find("may differ from features() + "
                      "classifier"),
            std::string::npos);
}

// ---------------------------------------------------------------- ReLU6

// torch.nn.functional.relu6 on [-1, 0, 3, 6, 7] gives [0, 0, 3, 6, 6], and its
// backward (hardtanh_backward) passes the gradient only strictly inside (0, 6).
TEST(ReLU6, MatchesTorchForwardAndBackwardAtTheBounds) {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = tensor<double>({-1, 0, 3, 6, 7}).to(dt);
    x.set_requires_grad(true);
    nn::ReLU6 relu6(true);
    Tensor y = relu6(x);
    EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{0, 0, 3, 6, 6}));
    sum(mul(y, tensor<double>({1, 2, 3, 4, 5}).to(dt))).backward();
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 3, 0, 0}));
    EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{-1, 0, 3, 6, 7}))
        << "the input of a recorded pass is not overwritten";
  }
  // Without a graph, inplace=True clamps the input itself.
  Tensor z = tensor<float>({-2, 8});
  const Tensor out = nn::ReLU6(true)(z);
  EXPECT_EQ(z.to_vector<float>(), (std::vector<float>{0, 6}));
  EXPECT_TRUE(out.is_same(z));
  EXPECT_EQ(nn::ReLU6(true).repr(), "ReLU6(inplace=True)");
}

// ---------------------------------------------------------------- structure

TEST(MobileNetV2Structure, StateDictKeysMatchTorchvision) {
  GRAFT_REQUIRE_FIXTURE("mobilenet_v2_keys.txt");
  std::string actual;
  for (auto& [k, t] : nn::mobilenet_v2()->state_dict())
    actual += k + " " + shape_text(t.sizes()) + "\n";
  EXPECT_EQ(actual, read_file(fixture("mobilenet_v2_keys.txt")));
}

TEST(MobileNetV2Structure, ReprMatchesTorchvisionPrint) {
  GRAFT_REQUIRE_FIXTURE("mobilenet_v2_repr.txt");
  EXPECT_EQ(nn::mobilenet_v2()->repr(), read_file(fixture("mobilenet_v2_repr.txt")));
}

TEST(MobileNetV2Structure, ParameterCountsAndDepthwiseConvs) {
  auto m = nn::mobilenet_v2();
  EXPECT_EQ(m->num_parameters(), 3504872);  // torchvision's published count
  EXPECT_EQ(m->feature_width(), 1280);
  // Every 3x3 conv after the stem is depthwise: groups = channels.
  int depthwise = 0;
  for (const auto& [name, mod] : m->named_modules())
    if (auto c = std::dynamic_pointer_cast<nn::Conv2d>(mod);
        c && c->kernel_size == 3 && name != "features.0.0") {
      EXPECT_EQ(c->groups, c->in_channels) << name;
      EXPECT_EQ(c->groups, c->out_channels) << name;
      ++depthwise;
    }
  EXPECT_EQ(depthwise, 17);
  m->requires_grad_(false);
  m->classifier()->requires_grad_(true);
  EXPECT_EQ(m->num_parameters(true), 1000 * 1281);
}

// torchvision's initialisation: conv kaiming_normal_(fan_out) (gain sqrt(2)),
// BN ones/zeros, Linear normal(0, 0.01) with zero bias.
TEST(MobileNetV2Structure, TorchvisionInitialisation) {
  manual_seed(3);
  auto m = nn::mobilenet_v2();
  auto stddev = [](const Tensor& t) {
    Tensor d = t.to(DType::Float64);
    d = sub(d, mean(d));
    return std::sqrt(mean(mul(d, d)).item());
  };
  // features.18.0: 320 -> 1280 1x1, fan_out = 1280: std sqrt(2 / 1280).
  // 409,600 draws: the sample std is within 0.2% of it with overwhelming
  // probability; 2% leaves room and still rejects fan_in (6x off) or gain 1.
  const double conv_std = std::sqrt(2.0 / 1280);
  EXPECT_NEAR(stddev(m->find_tensor("features.18.0.weight")), conv_std, conv_std * 0.02);
  // Depthwise 3x3 (features.1.conv.0.0, [32, 1, 3, 3]): torch's fan_out is
  // size(0) * receptive field = 32 * 9, groups notwithstanding.
  const double dw_std = std::sqrt(2.0 / (32 * 9));
  EXPECT_NEAR(stddev(m->find_tensor("features.1.conv.0.0.weight")), dw_std, dw_std * 0.15)
      << "288 draws: 15% is about 3.5 standard errors";
  // 1,280,000 draws of normal(0, 0.01).
  EXPECT_NEAR(stddev(m->find_tensor("classifier.1.weight")), 0.01, 0.01 * 0.02);
  EXPECT_EQ(amax(abs(m->find_tensor("classifier.1.bias"))).item(), 0.0);
  EXPECT_EQ(amin(m->find_tensor("features.5.conv.1.1.weight")).item(), 1.0);
  EXPECT_EQ(amax(m->find_tensor("features.5.conv.1.1.weight")).item(), 1.0);
  EXPECT_EQ(amax(abs(m->find_tensor("features.5.conv.1.1.bias"))).item(), 0.0);
  // The fresh head of replace_classifier is PyTorch's default Linear:
  // |w| <= 1/sqrt(1280).
  m->replace_classifier(5);
  EXPECT_LE(amax(abs(m->find_tensor("classifier.1.weight"))).item(), 1 / std::sqrt(1280.0));
  EXPECT_EQ(m->classifier()->repr(),
            "Sequential(\n  (0): Dropout(p=0.2, inplace=False)\n  (1): Linear(in_features=1280, "
            "out_features=5, bias=True)\n)");
}

// ---------------------------------------------------------------- parity

// Bounds (relative error, max |a-e| / max |e| per tensor, against torch's
// float64 run on the same float32 weights and input):
// - Float64: kFloat64Tol = 1e-10. Both sides compute the same function in
//   float64 from the same values; they differ only in summation order (unit
//   roundoff 1.1e-16, growing with the reduction lengths, at most
//   36 * 1280 terms here, and amplified where BatchNorm's backward cancels
//   nearly equal sums). Measured: 7e-14 (grad of features.0.1.weight), so
//   1e-10 is a factor of about 1000 above it, while a wrong formula moves a
//   result by far more. No kink can flip at this precision: the fixture keeps
//   every ReLU6 input at least 5e-4 channel stds from 0 and 6.
// - Float32 gradients: kFloat32Tol = 1e-3, as for ResNet: torch's own float32
//   run is within torch_f32_error (3e-5 measured) of the references and the
//   generator refuses a case above 1e-4; 1e-3 leaves a factor 10 for another
//   summation order.
// - Float32 logits, loss, BN buffers: kFloat32ForwardTol = 1e-4 (torch's
//   float32 logits are within about 1e-5; a forward pass has no kink effect).
// A gradient that is zero in exact arithmetic (see ZERO_GRAD in
// gen_mobilenet.py: the pw-linear BN biases) is compared against the largest
// gradient of the model instead of itself, with the same bounds.
constexpr double kFloat64Tol = 1e-10;
constexpr double kFloat32Tol = 1e-3;
constexpr double kFloat32ForwardTol = 1e-4;
constexpr double kZeroGrad = 1e-12;

struct Reference {
  io::NamedTensors sd;
  Tensor get(const std::string& name) const {
    const Tensor* t = io::find_tensor(sd, name);
    if (!t) throw Error("mobilenet_v2_ref.pth has no tensor " + name);
    return *t;
  }
};

void check_parity(DType dtype, Device device = Device::cpu()) {
  GRAFT_REQUIRE_FIXTURE("mobilenet_v2_ref.pth");
  const Reference ref{io::load_weights_file(fixture("mobilenet_v2_ref.pth"))};
  const double torch_f32 = ref.get("torch_f32_error").item();
  EXPECT_LE(torch_f32 * 10, kFloat32Tol) << "fixture is ill-conditioned";
  const double tol = dtype == DType::Float64 ? kFloat64Tol : kFloat32Tol;
  const double fwd_tol = dtype == DType::Float64 ? kFloat64Tol : kFloat32ForwardTol;

  // The torch.save'd state_dict loads strictly, key for key.
  auto model = std::make_shared<nn::MobileNetV2>(10, /*dropout=*/0.0);
  const io::LoadReport rep = io::load_state_dict(
      model->state_dict(), io::load_weights_file(fixture("mobilenet_v2_c10.pth")));
  ASSERT_TRUE(rep.ok()) << rep.str();
  EXPECT_EQ(rep.loaded.size(), model->state_dict().size());
  model->to(dtype);
  model->to(device);
  const Tensor x = ref.get("input").to(dtype).to(device);
  const Tensor target = ref.get("target");

  double worst = 0;
  std::string worst_what;
  auto check = [&](const Tensor& actual, const Tensor& expected, const std::string& what,
                   double bound, double scale = 0) {
    ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
    const Tensor a = actual.cpu().to(DType::Float64), e = expected.to(DType::Float64);
    const double err = scale > 0 ? amax(abs(sub(a, e))).item() / scale : max_rel_error(a, e);
    if (err > worst) {
      worst = err;
      worst_what = what;
    }
    EXPECT_LE(err, bound) << what;
  };
  model->eval();
  {
    NoGradGuard g;
    check(model->forward(x), ref.get("f64/eval_logits"), "eval logits", fwd_tol);
  }
  EXPECT_EQ(model->find_tensor("features.0.1.num_batches_tracked").cpu().item(), 3);
  model->train();
  Tensor logits = model->forward(x);
  check(logits, ref.get("f64/train_logits"), "train logits", fwd_tol);
  Tensor loss = nn::CrossEntropyLoss()(logits, target.to(device));
  check(loss, ref.get("f64/loss"), "loss", fwd_tol);
  loss.backward();
  double largest = 0;
  for (auto& [name, p] : model->named_parameters())
    largest = std::max(largest, amax(abs(ref.get("f64/grad/" + name))).item());
  int zero_grads = 0;
  for (auto& [name, p] : model->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    const Tensor e = ref.get("f64/grad/" + name);
    const bool zero = amax(abs(e)).item() <= kZeroGrad * largest;
    zero_grads += zero;
    check(p.grad(), e, "grad of " + name, tol, zero ? largest : 0);
  }
  EXPECT_EQ(zero_grads, 17) << "the 17 pw-linear BN biases";
  for (auto& [name, b] : model->named_buffers()) {
    const Tensor expected = ref.get("f64/updated/" + name);
    if (b.dtype() == DType::Int64)
      EXPECT_EQ(b.cpu().item(), expected.item()) << name;
    else
      check(b, expected, "updated " + name, fwd_tol);
  }
  std::cout << "[ mobilenet_v2 " << device.str() << " " << dtype_name(dtype)
            << " ] worst relative error " << worst << " (" << worst_what << "), bound " << tol
            << ", torch float32 " << torch_f32 << "\n";
}

TEST(MobileNetV2Parity, Float32) { check_parity(DType::Float32); }
TEST(MobileNetV2Parity, Float64) { check_parity(DType::Float64); }

// The same float32 bounds on a CUDA device (cuDNN or graft's native kernels
// run the depthwise convolutions); on the emulated device in an EMULATE build.
TEST(MobileNetV2Parity, Float32OnCuda) {
  if (!cuda_available()) GTEST_SKIP() << device_unavailable_reason(DeviceType::CUDA);
  check_parity(DType::Float32, Device::cuda());
}

// torch's own float32 run, for the record: graft's float32 logits are as
// close to it as to the float64 references (both within 1e-4).
TEST(MobileNetV2Parity, Float32LogitsMatchTorchFloat32) {
  GRAFT_REQUIRE_FIXTURE("mobilenet_v2_ref.pth");
  const Reference ref{io::load_weights_file(fixture("mobilenet_v2_ref.pth"))};
  auto model = nn::mobilenet_v2(10);
  io::load_state_dict(model->state_dict(), io::load_weights_file(fixture("mobilenet_v2_c10.pth")));
  model->eval();
  NoGradGuard g;
  EXPECT_TRUE(close_to(model->forward(ref.get("input")), ref.get("f32/eval_logits"), 1e-4));
}

// ---------------------------------------------------------------- CLI

struct Recipe {
  std::string name;
  std::vector<std::string> flags;
  bool backbone_moves;  // whether features.* may change
};

// train (from torchvision-format weights with a 10-class head) -> eval ->
// predict for each recipe, on a 3-class ImageFolder at 32x32.
TEST(MobileNetV2Cli, TrainEvalPredictWithEveryRecipe) {
  GRAFT_REQUIRE_FIXTURE("mobilenet_v2_c10.pth");
  CliTempDir dir("mnv2");
  write_split(dir.path / "data/train", 4, 1);
  write_split(dir.path / "data/test", 2, 100);
  const std::string weights = fixture("mobilenet_v2_c10.pth");
  const io::NamedTensors init = io::load_weights_file(weights);
  const std::vector<Recipe> recipes = {
      {"finetune", {"--mode", "finetune", "--backbone-lr-mult", "0.1"}, true},
      {"feature-extract", {"--mode", "feature-extract"}, false},
      {"freeze-glob", {"--freeze", "features.*", "--bn", "frozen"}, false},
      {"param-group", {"--param-group", "features.1*:lr=0.001", "--mode", "finetune"}, true},
  };
  for (const Recipe& rc : recipes) {
    SCOPED_TRACE(rc.name);
    const std::string run = dir / ("run-" + rc.name);
    std::vector<std::string> args = {
        "train",      "--arch",       "mobilenet_v2", "--weights", weights, "--data",
        dir / "data", "--image-size", "32",           "--epochs",  "2",     "--batch-size",
        "6",          "--lr",         "0.01",         "--workers", "0",     "--out",
        run};
    args.insert(args.end(), rc.flags.begin(), rc.flags.end());
    CliResult r = run_graft(args);
    ASSERT_EQ(r.rc, 0) << r.output;
    EXPECT_TRUE(
        r.has("replaced the head: classifier.1 10 -> 3 classes (the data's); "
              "classifier.1.weight and classifier.1.bias freshly initialised"))
        << r.output;
    for (const char* f : {"best.pth", "last.pth", "metrics.csv"})
      EXPECT_TRUE(fs::exists(run + "/" + f)) << f;

    // The checkpoint says what it is and reloads strictly into that model.
    const auto ck = train::load_checkpoint(run + "/best.pth", true);
    EXPECT_EQ(ck.arch, "mobilenet_v2");
    EXPECT_EQ(ck.classes, (std::vector<std::string>{"apple", "banana", "cherry"}));
    auto net = nn::build_model(ck.arch, 3);
    EXPECT_TRUE(io::load_state_dict(net->state_dict(), ck.model).ok());
    EXPECT_EQ(nn::infer_arch(ck.model), "mobilenet_v2");
    int backbone_moved = 0;
    for (const auto& [k, t] : ck.model) {
      if (k.rfind("features.", 0) != 0 || t.dtype() != DType::Float32) continue;
      const Tensor* t0 = io::find_tensor(init, k);
      ASSERT_NE(t0, nullptr) << k;
      backbone_moved += !allclose(*t0, t, 0, 0);
    }
    if (rc.backbone_moves)
      EXPECT_GT(backbone_moved, 0);
    else
      EXPECT_EQ(backbone_moved, 0) << "a frozen backbone stays bit-identical";

    r = run_graft({"eval", "--weights", run + "/best.pth", "--data", dir / "data"});
    ASSERT_EQ(r.rc, 0) << r.output;
    const size_t at = r.output.find("top-1 ");
    ASSERT_NE(at, std::string::npos) << r.output;
    const double top1 = std::stod(r.output.substr(at + 6));
    EXPECT_GE(top1, 0.0);
    EXPECT_LE(top1, 1.0);

    std::vector<std::string> predict = {"predict", "--weights", run + "/best.pth", "--topk", "1"};
    for (const auto& [name, rgb] : kColours)
      predict.push_back(dir / ("data/test/" + name + "/0.png"));
    r = run_graft(predict);
    ASSERT_EQ(r.rc, 0) << r.output;
    std::istringstream lines(r.output);
    std::string line;
    int predictions = 0;
    while (std::getline(lines, line)) {
      if (line.rfind("  ", 0) != 0) continue;
      ++predictions;
      EXPECT_TRUE(line.find("apple") != std::string::npos ||
                  line.find("banana") != std::string::npos ||
                  line.find("cherry") != std::string::npos)
          << line;
    }
    EXPECT_EQ(predictions, 3) << r.output;
  }

  // A ResNet's weights do not fit --arch mobilenet_v2: one line says why.
  GRAFT_REQUIRE_FIXTURE("train_init.pth");
  CliResult r =
      run_graft({"train", "--arch", "mobilenet_v2", "--weights", fixture("train_init.pth"),
                 "--data", dir / "data", "--epochs", "1", "--out", dir / "wrong"});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(r.has("does not fit --arch mobilenet_v2")) << r.output;
  EXPECT_TRUE(r.has("the file looks like a resnet18")) << r.output;
  // An unknown --arch lists the registered ones.
  r = run_graft({"train", "--arch", "mobilenet_v3", "--data", dir / "data", "--out", dir / "u"});
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(r.has("unknown architecture 'mobilenet_v3' (known: mobilenet_v2, resnet18"))
      << r.output;

  // torch reads graft's checkpoint into torchvision's mobilenet_v2, strictly.
  if (std::system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torchvision unavailable: torch.load check skipped";
  const std::string py =
      "/usr/bin/python3 -c \"import sys, torch, torchvision; "
      "c = torch.load(sys.argv[1], weights_only=True); assert c['arch'] == 'mobilenet_v2'; "
      "m = torchvision.models.mobilenet_v2(num_classes=3); "
      "m.load_state_dict(c['state_dict'], strict=True); m.eval(); "
      "assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 3)\" ";
  EXPECT_EQ(std::system((py + shell_quote(dir / "run-finetune/best.pth") + " 2>&1").c_str()), 0);
}

// forward and inspect take the model from the file's keys (a bare torchvision
// state_dict says nothing of its arch).
TEST(MobileNetV2Cli, ForwardAndInspectInferTheArch) {
  GRAFT_REQUIRE_FIXTURE("mobilenet_v2_ref.pth");
  CliTempDir dir("mnv2fwd");
  const std::string weights = fixture("mobilenet_v2_c10.pth");
  const Reference ref{io::load_weights_file(fixture("mobilenet_v2_ref.pth"))};
  io::save_npy(dir / "x.npy", ref.get("input"));
  CliResult r = run_graft(
      {"forward", "--weights", weights, "--input", dir / "x.npy", "--output", dir / "y.npy"});
  ASSERT_EQ(r.rc, 0) << r.output;
  // Eval-mode float32 against torch's float64 logits: the forward bound above.
  EXPECT_TRUE(close_to(io::load_npy(dir / "y.npy"), ref.get("f64/eval_logits").to(DType::Float32),
                       kFloat32ForwardTol));

  r = run_graft({"inspect", "--plan", weights});
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("into mobilenet_v2 with 10 classes")) << r.output;
  r = run_graft({"inspect", "--plan", weights, "--num-classes", "3"});
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(
      r.has("likely cause: a different head size: the file's classifier.1 has 10 classes, the "
            "model's 3"))
      << r.output;
  r = run_graft({"inspect", "--graph", "--arch", "mobilenet_v2", "--num-classes", "3",
                 "--image-size", "32", "--mode", "feature-extract"});
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("trainable tensors: classifier.1.weight, classifier.1.bias\n")) << r.output;
}

// `graft demo --arch mobilenet_v2`, shrunk: 64 source images, K=2, one epoch.
TEST(MobileNetV2Cli, DemoRuns) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  CliTempDir dir("mnv2demo");
  const CliResult r = run_graft({"demo",
                                 "--arch",
                                 "mobilenet_v2",
                                 "--k",
                                 "2",
                                 "--modes",
                                 "feature-extract,lr0.1x",
                                 "--source-epochs",
                                 "1",
                                 "--source-limit",
                                 "64",
                                 "--source-batch",
                                 "32",
                                 "--epochs",
                                 "1",
                                 "--batch",
                                 "10",
                                 "--val-every",
                                 "1",
                                 "--out",
                                 dir / "demo"});
  ASSERT_EQ(r.rc, 0) << r.output;
  const auto src = train::load_checkpoint(dir / "demo/source.pth", true);
  EXPECT_EQ(src.arch, "mobilenet_v2");
  std::istringstream csv(read_file(dir / "demo/results.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "k,mode,test_acc,seconds");
  std::set<std::string> modes;
  while (std::getline(csv, line)) {
    std::stringstream ss(line);
    std::string k, mode, acc;
    std::getline(ss, k, ',');
    std::getline(ss, mode, ',');
    std::getline(ss, acc, ',');
    EXPECT_EQ(k, "2");
    modes.insert(mode);
    EXPECT_GE(std::stod(acc), 0.0);
    EXPECT_LE(std::stod(acc), 1.0);
  }
  EXPECT_EQ(modes, (std::set<std::string>{"feature-extract", "lr0.1x"}));
}

}  // namespace
