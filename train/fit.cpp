#include "train/fit.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "core/autograd.h"
#include "core/ops_nn.h"
#include "optim/clip.h"

namespace graft::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const auto total = static_cast<int64_t>(std::llround(s));
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  } else if (total >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(total));
  }
  return buf;
}

std::vector<double> group_lrs(const optim::Optimizer& opt) {
  std::vector<double> lrs;
  for (const auto& g : opt.param_groups()) lrs.push_back(g.lr());
  return lrs;
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  NoGradGuard g;
  return static_cast<int64_t>(sum(eq(argmax(logits, 1), labels)).item());
}

}  // namespace

bool hflip_draw(Generator& gen) { return gen.next_double() < 0.5; }

Tensor hflip_images(const Tensor& images, const std::vector<char>& which) {
  GRAFT_CHECK(images.dim() == 4, "hflip: expected a [B,C,H,W] batch, got ",
              shape_str(images.sizes()));
  GRAFT_CHECK(which.empty() || static_cast<int64_t>(which.size()) == images.size(0),
              "hflip: ", which.size(), " flags for a batch of ", images.size(0));
  Tensor out = images.to(DType::Float32).contiguous().clone();
  const int64_t batch = out.size(0), planes = out.size(1) * out.size(2), width = out.size(3);
  float* p = out.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {
    if (!which.empty() && !which[static_cast<size_t>(b)]) continue;
    float* img = p + b * planes * width;
    for (int64_t r = 0; r < planes; ++r) std::reverse(img + r * width, img + (r + 1) * width);
  }
  return out;
}

Tensor random_hflip(const Tensor& images, Generator& gen) {
  GRAFT_CHECK(images.dim() == 4, "random_hflip: expected a [B,C,H,W] batch, got ",
              shape_str(images.sizes()));
  std::vector<char> which(static_cast<size_t>(images.size(0)));
  for (auto& w : which) w = hflip_draw(gen) ? 1 : 0;
  return hflip_images(images, which);
}

std::string format_epoch(const EpochRecord& r, int64_t total_epochs, double eta_seconds) {
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "epoch %lld/%lld  loss %.4f  acc %.4f",
                        static_cast<long long>(r.epoch), static_cast<long long>(total_epochs),
                        r.train_loss, r.train_acc);
  if (r.val_loss && n > 0 && n < static_cast<int>(sizeof buf))
    n += std::snprintf(buf + n, sizeof buf - n, "  val_loss %.4f  val_acc %.4f", *r.val_loss,
                       *r.val_acc);
  if (n > 0 && n < static_cast<int>(sizeof buf))
    std::snprintf(buf + n, sizeof buf - n, "  %.1f img/s  %s  ETA %s", r.images_per_sec,
                  format_duration(r.seconds).c_str(), format_duration(eta_seconds).c_str());
  return buf;
}

EvalResult evaluate(nn::Module& model, data::DataLoader& loader, int64_t num_classes, Device device,
                    DType dtype, const SumOverRanks& sum_over_ranks) {
  GRAFT_CHECK(num_classes > 0, "evaluate: num_classes must be positive");
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  std::vector<int64_t> confusion(static_cast<size_t>(num_classes * num_classes), 0);
  int64_t top1 = 0, top5 = 0;
  double loss_sum = 0;
  loader.start();
  data::Batch b;
  while (loader.next(b)) {
    Tensor x = b.images.to(device);
    if (x.dtype() != dtype) x = x.to(dtype);
    Tensor logits = model(x);
    GRAFT_CHECK(logits.dim() == 2 && logits.size(1) == num_classes, "evaluate: the model gives ",
                shape_str(logits.sizes()), " logits for ", num_classes, " classes");
    const Tensor labels = b.labels.to(device);
    loss_sum += F::cross_entropy(logits, labels, F::Reduction::Sum).item();
    const auto scores = logits.to_vector<float>();
    const auto truth = b.labels.to_vector<int64_t>();
    const int64_t k = std::min<int64_t>(5, num_classes);
    std::vector<int64_t> order(static_cast<size_t>(num_classes));
    for (size_t i = 0; i < truth.size(); ++i) {
      const float* row = scores.data() + i * static_cast<size_t>(num_classes);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [row](int64_t a, int64_t c) { return row[a] > row[c]; });
      const int64_t t = truth[i];
      GRAFT_CHECK(t >= 0 && t < num_classes, "evaluate: label ", t, " out of range [0, ",
                  num_classes, ")");
      top1 += order[0] == t;
      top5 += std::find(order.begin(), order.begin() + k, t) != order.begin() + k;
      ++confusion[static_cast<size_t>(t * num_classes + order[0])];
    }
    r.count += static_cast<int64_t>(truth.size());
  }
  model.train(was_training);
  if (sum_over_ranks) {
    // Counts stay exact in double up to 2^53.
    std::vector<double> sums = {loss_sum, static_cast<double>(top1), static_cast<double>(top5),
                                static_cast<double>(r.count)};
    sums.insert(sums.end(), confusion.begin(), confusion.end());
    sum_over_ranks(sums);
    loss_sum = sums[0];
    top1 = std::llround(sums[1]);
    top5 = std::llround(sums[2]);
    r.count = std::llround(sums[3]);
    for (size_t i = 0; i < confusion.size(); ++i) confusion[i] = std::llround(sums[4 + i]);
  }
  GRAFT_CHECK(r.count > 0, "evaluate: the data set is empty");
  r.loss = loss_sum / static_cast<double>(r.count);
  r.top1 = static_cast<double>(top1) / static_cast<double>(r.count);
  r.top5 = static_cast<double>(top5) / static_cast<double>(r.count);
  r.confusion = tensor<int64_t>(confusion, {num_classes, num_classes});
  return r;
}

namespace {

// One training step on a batch; returns the batch's mean loss.
double train_step(nn::Module& model, optim::Optimizer& opt, const data::Batch& b,
                  Generator& flip_gen, const FitOptions& o, EpochProgress& p) {
  Tensor x = (o.input_fn ? o.input_fn(b.images, flip_gen)
              : o.hflip  ? random_hflip(b.images, flip_gen)
                         : b.images)
                 .to(o.device);
  if (x.dtype() != o.dtype) x = x.to(o.dtype);
  const Tensor y = b.labels.to(o.device);
  if (o.before_forward) o.before_forward();
  Tensor logits = model(x);
  Tensor loss = F::cross_entropy(logits, y, F::Reduction::Mean, -100, o.label_smoothing);
  const double lv = loss.item();
  GRAFT_CHECK(std::isfinite(lv), "the training loss became ", lv, " at epoch ", p.epoch + 1,
              ", batch ", p.batch + 1,
              ": the run diverged; lower the learning rate (--lr) or check the inputs");
  opt.zero_grad();
  if (o.before_backward) o.before_backward();
  loss.backward();
  if (o.after_backward) o.after_backward();
  if (o.clip_grad_norm) {
    std::vector<Tensor> ps;
    for (const auto& g : opt.param_groups())
      for (const auto& prm : g.params) ps.push_back(prm.second);
    optim::clip_grad_norm_(ps, *o.clip_grad_norm);
  }
  opt.step();
  const int64_t n = b.labels.numel();
  p.loss_sum += lv * static_cast<double>(n);
  p.correct += count_correct(logits, y);
  p.seen += n;
  ++p.batch;
  ++p.steps;
  if (o.on_step) o.on_step({p.epoch + 1, p.batch, p.steps, lv, n});
  return lv;
}

bool stop_requested(const FitOptions& o, int64_t steps) {
  const bool here =
      (o.stop && o.stop->load()) || (o.stop_after_steps >= 0 && steps >= o.stop_after_steps);
  return o.agree_stop ? o.agree_stop(here) : here;
}

enum class EpochEnd { Done, StepLimit, Interrupted };

// Runs the batches of epoch p.epoch from batch p.batch on.
EpochEnd run_batches(nn::Module& model, optim::Optimizer& opt, data::DataLoader& train,
                     const FitOptions& o, EpochProgress& p) {
  const bool tty = !o.quiet && isatty(fileno(stderr));
  Generator flip_gen = Generator(o.seed).fork(static_cast<uint64_t>(p.epoch) + 1);
  const int64_t batches = train.size();
  const auto t0 = Clock::now();
  const int64_t seen0 = p.seen;
  EpochEnd end = EpochEnd::Done;
  train.start(p.epoch, p.batch);
  data::Batch b;
  while (train.next(b)) {
    train_step(model, opt, b, flip_gen, o, p);
    if (tty) {
      std::fprintf(stderr, "\r  epoch %lld/%lld  batch %lld/%lld  loss %.4f  %.1f img/s   ",
                   static_cast<long long>(p.epoch + 1), static_cast<long long>(o.epochs),
                   static_cast<long long>(p.batch), static_cast<long long>(batches),
                   p.loss_sum / static_cast<double>(p.seen),
                   static_cast<double>(p.seen - seen0) / std::max(seconds_since(t0), 1e-9));
    }
    if (o.max_steps > 0 && p.steps >= o.max_steps) {
      end = EpochEnd::StepLimit;
      break;
    }
    if (p.batch < batches && stop_requested(o, p.steps)) {
      end = EpochEnd::Interrupted;
      break;
    }
  }
  train.stop();
  if (tty) std::fprintf(stderr, "\r%*s\r", 78, "");
  return end;
}

void say_why_stopped(const FitOptions& o, EpochEnd end, const EpochProgress& p) {
  if (o.quiet || o.max_steps <= 0) return;
  if (end == EpochEnd::StepLimit)
    std::cerr << "stopped at --max-steps " << o.max_steps << " (batch " << p.batch << " of epoch "
              << p.epoch + 1 << "/" << o.epochs << ")" << std::endl;
  else if (end == EpochEnd::Done && p.epoch + 1 == o.epochs)
    std::cerr << "stopped after --epochs " << o.epochs << " (" << p.steps << " of --max-steps "
              << o.max_steps << " steps)" << std::endl;
}

}  // namespace

std::vector<EpochRecord> fit(nn::Module& model, optim::Optimizer& opt, optim::Schedule* scheduler,
                             data::DataLoader& train, data::DataLoader* val, const FitOptions& o) {
  GRAFT_CHECK(o.epochs > 0, "fit: epochs must be positive, got ", o.epochs);
  GRAFT_CHECK(o.num_classes > 0, "fit: num_classes must be positive");
  std::vector<EpochRecord> records;
  const auto run_start = Clock::now();
  EpochProgress p = o.resume;
  for (int64_t epoch = o.start_epoch; epoch < o.epochs; ++epoch) {
    if (epoch != o.start_epoch) p = EpochProgress{epoch, 0, p.steps, 0, 0, 0};
    p.epoch = epoch;
    if (o.max_steps > 0 && p.steps >= o.max_steps) break;
    if (p.batch == 0 && stop_requested(o, p.steps)) {
      if (o.interrupted) *o.interrupted = true;
      break;
    }
    model.train();
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lrs = group_lrs(opt);
    const auto t0 = Clock::now();
    const int64_t seen0 = p.seen;
    const EpochEnd end = run_batches(model, opt, train, o, p);
    if (end == EpochEnd::Interrupted) {
      if (o.interrupted) *o.interrupted = true;
      if (o.on_interrupt) o.on_interrupt(p);
      break;
    }
    if (p.seen == 0) break;
    // An epoch cut short by max_steps is not over: its schedule step waits
    // for the resume that finishes it.
    const bool partial = p.batch < train.size();
    if (scheduler && !partial) scheduler->step();
    rec.seconds = seconds_since(t0);
    double loss_sum = p.loss_sum;
    int64_t correct = p.correct, seen = p.seen, seen_now = p.seen - seen0;
    if (o.sum_over_ranks) {
      std::vector<double> sums = {loss_sum, static_cast<double>(correct), static_cast<double>(seen),
                                  static_cast<double>(seen_now)};
      o.sum_over_ranks(sums);
      loss_sum = sums[0];
      correct = std::llround(sums[1]);
      seen = std::llround(sums[2]);
      seen_now = std::llround(sums[3]);
    }
    rec.train_loss = loss_sum / static_cast<double>(seen);
    rec.train_acc = static_cast<double>(correct) / static_cast<double>(seen);
    rec.images_per_sec = static_cast<double>(seen_now) / std::max(rec.seconds, 1e-9);
    rec.steps = p.steps;
    const bool last = epoch + 1 == o.epochs || end == EpochEnd::StepLimit;
    if (val && (last || (epoch + 1) % std::max<int64_t>(o.val_every, 1) == 0)) {
      const EvalResult e = evaluate(o.val_model ? *o.val_model : model, *val, o.num_classes,
                                    o.device, o.dtype, o.sum_over_ranks);
      rec.val_loss = e.loss;
      rec.val_acc = e.top1;
    }
    records.push_back(rec);
    if (!o.quiet) {
      const double done = static_cast<double>(records.size());
      const double eta =
          seconds_since(run_start) / done * static_cast<double>(o.epochs - epoch - 1);
      std::cerr << format_epoch(rec, o.epochs, eta) << std::endl;
    }
    say_why_stopped(o, end, p);
    if (o.on_epoch_end) {
      // A part-done epoch's sums are saved as all ranks' (see sum_over_ranks).
      EpochProgress saved = p;
      saved.loss_sum = loss_sum;
      saved.correct = correct;
      saved.seen = seen;
      o.on_epoch_end(rec, partial ? saved : EpochProgress{epoch + 1, 0, p.steps, 0, 0, 0});
    }
    if (end == EpochEnd::StepLimit) break;
  }
  return records;
}

}  // namespace graft::train
