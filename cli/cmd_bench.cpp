// `graft bench`: training-step and inference throughput of a model, with
// warmup, repetitions and median/min/max; --json writes the numbers with the
// machine, build and versions; --profile adds per-layer forward and backward
// time (benchmarks/README.md documents both).
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/command.h"
#include "core/autograd.h"
#include "core/cuda.h"
#include "core/ops_nn.h"
#include "core/parallel.h"
#include "nn/models/registry.h"
#include "optim/optimizer.h"
#include "optim/params.h"

extern char** environ;

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string arch = "resnet18", device = "cpu", what = "both", json_path;
  int64_t batch = 32, size = 224, steps = 5, warmup = 1, repeat = 3, classes = 1000;
  bool freeze_backbone = false, profile = false;
  int threads = 0;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void synchronize(graft::Device d) {
  if (d.is_cuda()) graft::device_backend(d.type).synchronize(d.index);
}

// Seconds per call of fn in each of `repeat` repetitions of `steps` calls,
// after `warmup` untimed calls.
std::vector<double> time_repetitions(const BenchArgs& a, const std::function<void()>& fn,
                                     graft::Device d) {
  for (int64_t i = 0; i < a.warmup; ++i) fn();
  synchronize(d);
  std::vector<double> per_call;
  for (int64_t r = 0; r < a.repeat; ++r) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < a.steps; ++i) fn();
    synchronize(d);
    per_call.push_back(seconds_since(t0) / static_cast<double>(a.steps));
  }
  return per_call;
}

json summary(std::vector<double> v) {  // median, min, max
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {{"median", median}, {"min", v.front()}, {"max", v.back()}};
}

// Throughput of one mode, printed and returned as JSON.
json report(const char* label, const std::vector<double>& seconds, int64_t batch) {
  std::vector<double> ms, ips;
  for (double s : seconds) {
    ms.push_back(1e3 * s);
    ips.push_back(static_cast<double>(batch) / s);
  }
  json r = {{"ms_per_step", summary(ms)}, {"images_per_s", summary(ips)}, {"samples_ms", ms}};
  std::printf("%-11s %8.1f img/s  %8.2f ms/step median  (min %.2f, max %.2f ms over %zu)\n", label,
              r["images_per_s"]["median"].get<double>(), r["ms_per_step"]["median"].get<double>(),
              r["ms_per_step"]["min"].get<double>(), r["ms_per_step"]["max"].get<double>(),
              ms.size());
  return r;
}

// Per-layer times: forward hooks time every module without children, and the
// autograd nodes recorded while a layer ran are charged to its backward.
// On CUDA every boundary synchronizes, so profiled steps run slower than the
// plain timing above; the shares are what it is for.
class LayerProfiler {
 public:
  LayerProfiler(graft::nn::Module& model, graft::Device device) : device_(device) {
    for (const auto& [name, m] : model.named_modules()) {
      if (name.empty() || !m->children().empty()) continue;
      const size_t index = layers_.size();
      layers_.push_back({name, m->type_name()});
      handles_.push_back(m->register_forward_pre_hook([this](auto&, const auto&) {
        synchronize(device_);
        start_seq_ = graft::autograd::peek_sequence_nr();
        start_ = Clock::now();
        return graft::Tensor();
      }));
      handles_.push_back(m->register_forward_hook([this, index](auto&, const auto&, const auto&) {
        synchronize(device_);
        layers_[index].forward_s += seconds_since(start_);
        ranges_.push_back({start_seq_, graft::autograd::peek_sequence_nr(), index});
        return graft::Tensor();
      }));
    }
    // Backward of the ops between layers (residual adds, flatten, the loss);
    // their forward time is not measured.
    layers_.push_back({"(outside layers)", "", 0, 0, false});
    graft::autograd::set_node_observer([this](const graft::autograd::Node& node, bool done) {
      synchronize(device_);
      if (!done) {
        node_start_ = Clock::now();
        return;
      }
      layers_[layer_of(node.sequence_nr)].backward_s += seconds_since(node_start_);
    });
  }
  ~LayerProfiler() {
    graft::autograd::set_node_observer(nullptr);
    for (auto& h : handles_) h.remove();
  }
  void new_step() { ranges_.clear(); }

  // Prints the table and returns it as JSON (milliseconds per step).
  json report(int64_t steps) const {
    double fwd_total = 0, bwd_total = 0;
    for (const auto& l : layers_) {
      fwd_total += l.forward_s;
      bwd_total += l.backward_s;
    }
    const double scale = 1e3 / static_cast<double>(steps);
    std::printf("\n%-28s %-18s %10s %7s %10s %7s\n", "layer", "type", "fwd ms", "fwd %", "bwd ms",
                "bwd %");
    json rows = json::array();
    for (const auto& l : layers_) {
      auto pct = [](double part, double total) { return total > 0 ? 100 * part / total : 0.0; };
      if (l.timed_forward) {
        std::printf("%-28s %-18s %10.3f %6.1f%% %10.3f %6.1f%%\n", l.name.c_str(), l.type.c_str(),
                    l.forward_s * scale, pct(l.forward_s, fwd_total), l.backward_s * scale,
                    pct(l.backward_s, bwd_total));
      } else {
        std::printf("%-28s %-18s %10s %7s %10.3f %6.1f%%\n", l.name.c_str(), l.type.c_str(), "-",
                    "", l.backward_s * scale, pct(l.backward_s, bwd_total));
      }
      rows.push_back({{"layer", l.name},
                      {"type", l.type},
                      {"forward_ms", l.timed_forward ? json(l.forward_s * scale) : json()},
                      {"backward_ms", l.backward_s * scale}});
    }
    std::printf("%-28s %-18s %10.3f %7s %10.3f\n", "total", "", fwd_total * scale, "",
                bwd_total * scale);
    return rows;
  }

 private:
  struct Layer {
    std::string name, type;
    double forward_s = 0, backward_s = 0;
    bool timed_forward = true;
  };
  struct Range {
    uint64_t begin, end;
    size_t layer;
  };
  size_t layer_of(uint64_t seq) const {
    // Ranges come in forward order with increasing, disjoint sequence numbers.
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), seq,
                               [](uint64_t s, const Range& r) { return s < r.begin; });
    if (it != ranges_.begin() && seq < std::prev(it)->end) return std::prev(it)->layer;
    return layers_.size() - 1;
  }

  graft::Device device_;
  std::vector<Layer> layers_;
  std::vector<Range> ranges_;
  std::vector<graft::HookHandle> handles_;
  Clock::time_point start_, node_start_;
  uint64_t start_seq_ = 0;
};

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

json environment(const BenchArgs& a) {
  json env = json::object();
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (kv.rfind("GRAFT_", 0) == 0 || kv.rfind("OMP_", 0) == 0)
      env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return {{"machine",
           {{"host", host},
            {"cpu", cpu_model()},
            {"hardware_threads", std::thread::hardware_concurrency()},
            {"graft_threads", graft::get_num_threads()},
            {"device", a.device}}},
          {"build",
           {{"graft_version", GRAFT_VERSION},
            {"compiler", GRAFT_COMPILER},
            {"build_type", GRAFT_BUILD_TYPE},
            {"cxx_flags", GRAFT_CXX_FLAGS},
            {"march", GRAFT_MARCH_FLAG},
            {"cuda_backend", graft::cuda::has_backend()}}},
          {"environment", env}};
}

int run_bench(const BenchArgs& a) {
  using namespace graft;
  if (a.threads > 0) set_num_threads(a.threads);
  const Device device = require_device(a.device);
  manual_seed(0);
  auto model = nn::build_model(a.arch, a.classes);
  if (a.freeze_backbone) {
    model->requires_grad_(false);
    model->classifier()->requires_grad_(true);
  }
  model->to(device);
  const Tensor x = randn({a.batch, 3, a.size, a.size}).to(device);
  const Tensor y = randint(0, a.classes, {a.batch}).to(device);
  std::printf("%s  batch %lld  %lldx%lld  %s  threads %d%s\n", a.arch.c_str(),
              static_cast<long long>(a.batch), static_cast<long long>(a.size),
              static_cast<long long>(a.size), device.str().c_str(), get_num_threads(),
              a.freeze_backbone ? "  (backbone frozen)" : "");
  json out = environment(a);
  out["config"] = {{"arch", a.arch},
                   {"batch_size", a.batch},
                   {"image_size", a.size},
                   {"warmup", a.warmup},
                   {"repeat", a.repeat},
                   {"steps", a.steps},
                   {"freeze_backbone", a.freeze_backbone}};
  const bool train = a.what == "train" || a.what == "both";
  const bool infer = a.what == "infer" || a.what == "both";

  std::vector<optim::ParamGroup> groups;
  groups.emplace_back(optim::trainable(model->named_parameters()));
  optim::SGD opt(std::move(groups), {.lr = 0.01, .momentum = 0.9});
  auto train_step = [&] {
    Tensor loss = F::cross_entropy((*model)(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (void)loss.item();
  };
  auto infer_step = [&] { (void)sum((*model)(x)).item(); };

  if (train) {
    model->train();
    out["train"] = report("train step", time_repetitions(a, train_step, device), a.batch);
  }
  if (infer) {
    model->eval();
    NoGradGuard g;
    out["inference"] = report("inference", time_repetitions(a, infer_step, device), a.batch);
  }
  if (a.profile) {
    // A training step when training is benchmarked (forward and backward), else inference.
    if (train) model->train();
    LayerProfiler profiler(*model, device);
    std::optional<NoGradGuard> no_grad;
    if (!train) no_grad.emplace();
    for (int64_t i = 0; i < a.steps; ++i) {
      profiler.new_step();
      train ? train_step() : infer_step();
    }
    out["profile"] = {{"mode", train ? "train" : "inference"},
                      {"steps", a.steps},
                      {"layers", profiler.report(a.steps)}};
  }
  if (!a.json_path.empty()) {
    std::ofstream f(a.json_path);
    GRAFT_CHECK(f.good(), "bench: cannot write ", a.json_path);
    f << out.dump(2) << "\n";
    GRAFT_CHECK(f.good(), "bench: cannot write ", a.json_path);
    std::printf("wrote %s\n", a.json_path.c_str());
  }
  return 0;
}

// "--steps: must be at least 1, got 0" (CLI11's PositiveNumber prints a range up to 1.8e308).
CLI::Validator at_least(int64_t min) {
  return CLI::Validator(
      [min](std::string& v) {
        try {
          if (std::stoll(v) >= min) return std::string();
        } catch (const std::exception&) {
          return "expected an integer, got " + v;
        }
        return "must be at least " + std::to_string(min) + ", got " + v;
      },
      ">=" + std::to_string(min));
}

std::function<int()> setup_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--arch", a->arch, "the model: " + graft::nn::model_names())
      ->capture_default_str();
  app.add_option("--batch-size", a->batch, "batch size")->check(at_least(1))->capture_default_str();
  app.add_option("--image-size", a->size, "input size")->check(at_least(1))->capture_default_str();
  app.add_option("--steps", a->steps, "timed steps per repetition")
      ->check(at_least(1))
      ->capture_default_str();
  app.add_option("--repeat", a->repeat, "repetitions (median, min and max are over these)")
      ->check(at_least(1))
      ->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed steps first")
      ->check(at_least(0))
      ->capture_default_str();
  app.add_option("--what", a->what, "train | infer | both")
      ->check(CLI::IsMember({"train", "infer", "both"}))
      ->capture_default_str();
  app.add_flag("--freeze-backbone", a->freeze_backbone, "train only the head (feature extraction)");
  app.add_flag("--profile", a->profile, "per-layer forward and backward time (table; JSON too)");
  app.add_option("--json", a->json_path, "write results, machine, build and versions here");
  app.add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads");
  return [a]() { return run_bench(*a); };
}

GRAFT_COMMAND("bench", "Training-step and inference images/s of a model (median of repetitions)",
              setup_bench);

}  // namespace
