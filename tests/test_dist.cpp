// Data-parallel training over MPI (dist/, issue 17): `graft train` under
// `mpirun --allow-run-as-root --oversubscribe -np 2`, compared with one
// process, with torch's DistributedSampler, and under faults.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <tuple>

#include "cli_util.h"
#include "core/cuda.h"
#include "core/device.h"
#include "core/ops.h"
#include "data/loader.h"
#include "dist/nccl.h"
#include "dist/process_group.h"
#include "io/npy.h"
#include "io/state_dict.h"

namespace graft::testing {
namespace {

using Clock = std::chrono::steady_clock;

const std::string kMpirun = GRAFT_MPIEXEC;

#define SKIP_WITHOUT_MPI()                                                                        \
  if (kMpirun.empty())                                                                            \
    GTEST_SKIP() << "mpirun not found at configure time (apt-get install openmpi-bin "            \
                    "libopenmpi-dev, which scripts/setup.sh installs): multi-rank tests skipped"; \
  if (!dist::mpi_compiled())                                                                      \
  GTEST_SKIP() << "graft built without MPI (GRAFT_MPI=OFF): DistLaunch.BuiltWithoutMpiSaysSo "    \
                  "checks the error instead"

struct Timed {
  CliResult r;
  double seconds = 0;
  double end = 0;  // steady clock when the command returned
  // Seconds from the "graft-test: rank R stops at T" line (GRAFT_TEST_DIST_FAIL)
  // to the end of the command: how long the other ranks took to fail.
  double after_stop() const {
    const auto at = r.output.find("stops at ");
    if (at == std::string::npos) return 1e9;
    return end - std::stod(r.output.substr(at + 9));
  }
};

// Runs `cmd` through sh (stdout and stderr together).
Timed run_shell(const std::string& cmd) {
  Timed t;
  const auto t0 = Clock::now();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return t;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) t.r.output.append(buf.data(), n);
  const int status = pclose(p);
  t.r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  const auto t1 = Clock::now();
  t.seconds = std::chrono::duration<double>(t1 - t0).count();
  t.end = std::chrono::duration<double>(t1.time_since_epoch()).count();
  return t;
}

// In the sanitizer build, OpenMPI's allocations that live until exit are not
// graft's leaks: tests/lsan_mpi.supp names OpenMPI's libraries. Their stacks
// run through MCA components that MPI_Finalize unloads and that have no frame
// pointers, so LeakSanitizer records malloc stacks with the slow unwinder
// (fast_unwind_on_malloc=0), which reaches OpenMPI's own frames; with the
// fast one every leak stopped at an <unknown module> and escaped the list.
// (Checked on a 10-line MPI program built with -fsanitize=address: 3,300
// reported allocations without these settings, none with them.)
// Also: no cross-memory-attach copies between ranks
// (btl_vader_single_copy_mechanism=none), which containers that forbid
// ptrace refuse at run time; shared-memory copies work everywhere.
std::string lsan_env() {
  return " OMPI_MCA_btl_vader_single_copy_mechanism=none LSAN_OPTIONS=suppressions=" +
         shell_quote(GRAFT_LSAN_MPI_SUPP) + ":fast_unwind_on_malloc=0";
}

std::string graft_args(const std::vector<std::string>& args) {
  std::string s = shell_quote(GRAFT_CLI_PATH);
  for (const auto& a : args) s += " " + shell_quote(a);
  return s;
}

// mpirun -np N graft ARGS; `env` is exported to every rank. One OpenMP thread
// per rank: the ranks share the machine's cores.
Timed mpirun(int np, const std::vector<std::string>& args, const std::string& env = "") {
  return run_shell(env + lsan_env() + " OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive " +
                   shell_quote(kMpirun) + " --allow-run-as-root --oversubscribe -np " +
                   std::to_string(np) + " " + graft_args(args));
}

// 32 examples of 3x16x16 with 4 classes, in `dir`.
void write_data(const CliTempDir& dir) {
  std::vector<float> x(32 * 3 * 16 * 16);
  // Independent uniform values (a 64-bit LCG): examples must differ, or
  // deep BatchNorm layers see near-constant channels and float32 rounding
  // dominates their variance.
  uint64_t state = 12345;
  auto uniform = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  for (float& v : x) v = static_cast<float>(2 * uniform() - 1);
  std::vector<int64_t> y(32);
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int64_t>((i * 7) % 4);
  io::save_npy(dir / "x.npy", tensor<float>(x, {32, 3, 16, 16}));
  io::save_npy(dir / "y.npy", tensor<int64_t>(y, {32}));
}

// The recipe shared by the runs compared: BN frozen in eval mode (per-rank
// BN statistics would differ from one process's batch of 16: that is what
// --sync-bn is for), layer4 frozen (it joins no bucket).
std::vector<std::string> recipe(const CliTempDir& dir, int64_t batch,
                                const std::string& steps = "5", const std::string& lr = "0.05") {
  return {"train",
          "--train-npy",
          dir / "x.npy",
          "--train-labels",
          dir / "y.npy",
          "--batch-size",
          std::to_string(batch),
          "--max-steps",
          steps,
          "--dtype",
          "float64",
          "--freeze",
          "*bn*",
          "--freeze",
          "*downsample.1*",
          "--freeze",
          "layer4.*",
          "--bn",
          "frozen",
          "--lr",
          lr,
          "--seed",
          "3"};
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The largest element-wise difference between two state dicts, absolute
// (relative = false) or |a - b| / max(1, |a|), and the tensor it is in.
double max_diff(const io::NamedTensors& a, const io::NamedTensors& b, std::string* worst,
                bool relative = false) {
  std::map<std::string, Tensor> bm(b.begin(), b.end());
  double m = 0;
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [name, ta] : a) {
    EXPECT_TRUE(bm.count(name)) << name;
    if (!bm.count(name)) continue;
    const auto va = ta.to(DType::Float64).to_vector<double>();
    const auto vb = bm[name].to(DType::Float64).to_vector<double>();
    EXPECT_EQ(va.size(), vb.size()) << name;
    for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) {
      const double err =
          std::abs(va[i] - vb[i]) / (relative ? std::max(1.0, std::abs(va[i])) : 1.0);
      if (!(err <= m)) {
        m = err;
        if (worst) *worst = name;
      }
    }
  }
  return m;
}
double max_abs_diff(const io::NamedTensors& a, const io::NamedTensors& b, std::string* worst) {
  return max_diff(a, b, worst);
}
// max |a - b| / max(1, |a|) over every tensor of two weight files.
double max_rel_diff(const std::string& pa, const std::string& pb, std::string* worst) {
  return max_diff(io::load_weights_file(pa), io::load_weights_file(pb), worst, true);
}

std::vector<std::vector<int64_t>> parse_lines(const std::string& text) {
  std::vector<std::vector<int64_t>> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    lines.emplace_back();
    int64_t v;
    while (ls >> v) lines.back().push_back(v);
  }
  return lines;
}

// ---------------------------------------------------------------- sampler

// torch.utils.data.DistributedSampler's indices, generated by torch at test
// time: the interleaving and padding exactly (no shuffle), and, given torch's
// own permutation, the same shard of it (graft shuffles with its own RNG, so
// the permutation itself is graft's; what must match is what the sampler
// does with it).
TEST(DistSampler, MatchesTorchDistributedSampler) {
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1"), 0)
      << "python3-torch is needed (scripts/setup.sh installs it)";
  const std::string script = std::string(GRAFT_SOURCE_DIR) + "/tests/dist_torch.py";
  // Sizes that divide evenly, need padding, and need more padding than
  // there are examples (n < world).
  for (auto [n, world] : std::vector<std::pair<int64_t, int64_t>>{
           {16, 2}, {17, 2}, {10, 4}, {7, 3}, {2, 5}, {1, 3}, {33, 8}}) {
    const Timed t = run_shell("/usr/bin/python3 " + shell_quote(script) + " sampler " +
                              std::to_string(n) + " " + std::to_string(world) + " 5 2");
    ASSERT_EQ(t.r.rc, 0) << t.r.output;
    const auto lines = parse_lines(t.r.output);
    ASSERT_EQ(lines.size(), static_cast<size_t>(2 * world + 1)) << t.r.output;
    std::vector<int64_t> identity(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) identity[static_cast<size_t>(i)] = i;
    const std::vector<int64_t>& torch_perm = lines.back();
    for (int64_t r = 0; r < world; ++r) {
      EXPECT_EQ(data::distributed_shard(identity, world, r), lines[static_cast<size_t>(r)])
          << "n " << n << " world " << world << " rank " << r << " (no shuffle)";
      EXPECT_EQ(data::distributed_shard(torch_perm, world, r),
                lines[static_cast<size_t>(world + r)])
          << "n " << n << " world " << world << " rank " << r << " (shuffled)";
    }
  }
}

// The DataLoader's sharded epoch is distributed_shard of the one-process
// order (same seed and epoch): the ranks' batches together are the batch a
// single process with world x the batch size would take.
TEST(DistSampler, LoaderShardsTheSingleProcessOrder) {
  auto ds =
      std::make_shared<data::TensorDataset>(zeros({21, 1, 1, 1}), zeros({21}, opts(DType::Int64)));
  data::DataLoader::Options o;
  o.batch_size = 4;
  o.shuffle = true;
  o.seed = 11;
  const auto single = data::DataLoader(ds, o).epoch_order(3);
  std::vector<int64_t> seen;
  for (int64_t r = 0; r < 3; ++r) {
    o.num_replicas = 3;
    o.rank = r;
    data::DataLoader shard(ds, o);
    EXPECT_EQ(shard.size(), 2) << "7 examples per rank in batches of 4";
    const auto mine = shard.epoch_order(3);
    EXPECT_EQ(mine, data::distributed_shard(single, 3, r));
    seen.insert(seen.end(), mine.begin(), mine.end());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()) - seen.begin(), 21)
      << "every example is some rank's";
}

// Without padding (evaluation) the shards of 22 examples on 4 ranks hold 6, 6,
// 5 and 5 examples, each example exactly once; with padding every rank has 6.
TEST(DistSampler, UnpaddedShardsHoldEachExampleOnce) {
  auto ds =
      std::make_shared<data::TensorDataset>(zeros({22, 1, 1, 1}), zeros({22}, opts(DType::Int64)));
  data::DataLoader::Options o;
  o.batch_size = 5;
  o.num_replicas = 4;
  std::vector<int64_t> seen;
  for (int64_t r = 0; r < 4; ++r) {
    o.rank = r;
    o.pad_shards = false;
    data::DataLoader shard(ds, o);
    const auto mine = shard.epoch_order(0);
    EXPECT_EQ(static_cast<int64_t>(mine.size()), r < 2 ? 6 : 5) << "rank " << r;
    EXPECT_EQ(shard.size(), r < 2 ? 2 : 1) << "rank " << r << ": batches of 5";
    for (size_t j = 0; j < mine.size(); ++j) EXPECT_EQ(mine[j], r + 4 * static_cast<int64_t>(j));
    seen.insert(seen.end(), mine.begin(), mine.end());
    o.pad_shards = true;
    EXPECT_EQ(data::DataLoader(ds, o).epoch_order(0).size(), 6u) << "rank " << r << ", padded";
  }
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), 22u) << "no example twice";
  for (int64_t i = 0; i < 22; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);
}

// ---------------------------------------------------------------- equivalence

// 2 ranks x batch 8 equal 1 process x batch 16 over 5 steps (3 epochs of 2
// batches, shuffled): the averaged gradient of two halves is the gradient of
// the whole batch. Tolerance 1e-10 in float64: the two runs differ only in
// the order of the sums over the batch (two partial sums of 8, halved,
// instead of one sum of 16), ~1e-16 relative per step; measured 5.6e-17.
TEST(DistTrain, TwoRanksOfEightEqualOneProcessOfSixteen) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_equiv");
  write_data(dir);
  const CliResult one = run_graft(plus(recipe(dir, 16), {"--save", dir / "one.pth", "--quiet"}),
                                  "OMP_NUM_THREADS=1 ");
  ASSERT_EQ(one.rc, 0) << one.output;
  const Timed two =
      mpirun(2, plus(recipe(dir, 8), {"--save", dir / "two.pth", "--out", dir / "run"}));
  ASSERT_EQ(two.r.rc, 0) << two.r.output;
  EXPECT_TRUE(two.r.has("distributed: 2 ranks, batch 8 per rank (16 in all)")) << two.r.output;
  // Rank 0 alone prints: one summary line per epoch.
  size_t epochs = 0;
  for (size_t at = 0; (at = two.r.output.find("epoch 1/3", at)) != std::string::npos; ++at)
    ++epochs;
  EXPECT_EQ(epochs, 1u) << two.r.output;
  EXPECT_TRUE(fs::exists(dir / "run/metrics.csv"));

  const io::NamedTensors a = io::load_weights_file(dir / "one.pth");
  const io::NamedTensors b = io::load_weights_file(dir / "two.pth");
  std::string worst;
  const double d = max_abs_diff(a, b, &worst);
  std::cout << "max difference " << d << " (" << worst << ")\n";
  EXPECT_LE(d, 1e-10) << worst;
  // The runs trained: the trained layers moved away from a fresh model's.
  const Timed init = run_shell(
      graft_args(plus(recipe(dir, 16, "1", "0"), {"--save", dir / "init.pth", "--quiet"})));
  ASSERT_EQ(init.r.rc, 0) << init.r.output;
  const io::NamedTensors z = io::load_weights_file(dir / "init.pth");
  EXPECT_GT(max_abs_diff(z, b, nullptr), 1e-3) << "the distributed run did not train";
  // Metrics are the world's: one process's epoch 1 loss and accuracy.
  const std::string ref_dir = dir / "ref";
  const CliResult ref =
      run_graft(plus(recipe(dir, 16), {"--out", ref_dir, "--quiet"}), "OMP_NUM_THREADS=1 ");
  ASSERT_EQ(ref.rc, 0) << ref.output;
  const std::string m1 = metrics_without_timing(ref_dir + "/metrics.csv");
  const std::string m2 = metrics_without_timing(dir / "run/metrics.csv");
  // The loss sums are added in another order: compare the first row's
  // accuracy column exactly and the loss to 1e-9 relative.
  auto row = [](const std::string& m, int r) {
    std::istringstream in(m);
    std::string line;
    for (int i = 0; i <= r; ++i) std::getline(in, line);
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    return f;
  };
  const auto r1 = row(m1, 1), r2 = row(m2, 1);
  ASSERT_GE(r1.size(), 3u);
  ASSERT_GE(r2.size(), 3u);
  EXPECT_NEAR(std::stod(r1[1]), std::stod(r2[1]), 1e-6 * std::abs(std::stod(r1[1])))
      << "the loss of epoch 1 (printed with %g, 6 digits)";
  EXPECT_EQ(r1[2], r2[2]) << "the accuracy of epoch 1";
}

// With --sync-bn, BatchNorm in training mode normalises with the world's
// batch statistics (all-reduced forward, and their gradients backward), so
// 2 ranks x batch 8 train exactly as 1 process x batch 16, running statistics
// included. float64: tolerance 1e-10 x max(1, |w|); the runs differ in the
// order of the sums (per-rank partial sums, two-pass variance vs the fused
// kernel), ~1e-16 relative, grown ~1e4x by 5 steps at lr 0.05; measured
// 5.4e-13 (a running_var; without --sync-bn such runs differ by ~10).
// float32, at lr 0.005 (at 0.05 such random-data runs are chaotic and float32
// rounding grew to 30% in 5 steps): tolerance 1e-4; measured 4.7e-6.
TEST(DistTrain, SyncBnTwoRanksOfEightEqualOneProcessOfSixteen) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_syncbn");
  write_data(dir);
  for (const auto& [dtype, lr, tol] : std::vector<std::tuple<std::string, std::string, double>>{
           {"float64", "0.05", 1e-10}, {"float32", "0.005", 1e-4}}) {
    const std::vector<std::string> base = {"train",          dir / "x.npy",
                                           "--train-labels", dir / "y.npy",
                                           "--max-steps",    "5",
                                           "--dtype",        dtype,
                                           "--lr",           lr,
                                           "--quiet"};
    std::vector<std::string> args = base;
    args.insert(args.begin() + 1, "--train-npy");
    const std::string one = dir / ("one_" + dtype + ".pth"), two = dir / ("two_" + dtype + ".pth");
    const CliResult r1 =
        run_graft(plus(args, {"--batch-size", "16", "--save", one}), "OMP_NUM_THREADS=1 ");
    ASSERT_EQ(r1.rc, 0) << r1.output;
    const Timed r2 = mpirun(2, plus(args, {"--batch-size", "8", "--sync-bn", "--save", two}));
    ASSERT_EQ(r2.r.rc, 0) << r2.r.output;
    std::string worst;
    const double d = max_rel_diff(one, two, &worst);
    std::cout << dtype << ": max relative difference " << d << " (" << worst << ")\n";
    EXPECT_LE(d, tol) << dtype << ": " << worst;
  }
}

// CUDA ranks stage their gradient buckets and SyncBatchNorm statistics
// through host memory and MPI. Two ranks on cuda:0 and cuda:1 (the emulated
// build gives each process two emulated devices, so this runs in CI) with
// --sync-bn equal one CPU process of 16. Float64: the CUDA kernels sum in
// another order than Eigen (~1e-16 relative per op), grown by 3 steps of BN
// over 16 examples at lr 0.05 as in the CPU case above; the same 1e-10 bound.
TEST(DistCuda, SyncBnTwoCudaRanksEqualOneCpuProcess) {
  SKIP_WITHOUT_MPI();
  if (!cuda_available()) {
    // The emulated build always has a device: a skip there would hide the path.
    if (cuda::is_emulated()) GTEST_FAIL() << device_unavailable_reason(DeviceType::CUDA);
    GTEST_SKIP() << device_unavailable_reason(DeviceType::CUDA);
  }
  CliTempDir dir("dist_cuda");
  write_data(dir);
  const std::vector<std::string> args = {
      "train", "--train-npy", dir / "x.npy", "--train-labels", dir / "y.npy", "--max-steps",
      "3",     "--dtype",     "float64",     "--lr",           "0.05",        "--quiet"};
  const std::string one = dir / "cpu.pth", two = dir / "cuda.pth";
  const CliResult r1 =
      run_graft(plus(args, {"--batch-size", "16", "--save", one}), "OMP_NUM_THREADS=1 ");
  ASSERT_EQ(r1.rc, 0) << r1.output;
  const Timed r2 =
      mpirun(2, plus(args, {"--batch-size", "8", "--sync-bn", "--device", "cuda", "--save", two}),
             "GRAFT_EMULATED_DEVICES=2 ");
  ASSERT_EQ(r2.r.rc, 0) << r2.r.output;
  std::string worst;
  const double d = max_rel_diff(one, two, &worst);
  std::cout << "cuda ranks vs one cpu process: max relative difference " << d << " (" << worst
            << ")\n";
  EXPECT_LE(d, 1e-10) << worst;
}

// Without --sync-bn, graft's DDP is torch's: 2 ranks x batch 8 from the same
// torchvision weights, BN in training mode with per-rank statistics and rank
// 0's buffers broadcast at every forward, equal torch DDP on gloo (generated
// now by tests/dist_torch.py) after 5 SGD steps. Tolerance 1e-8 x max(1,
// |torch|) in float64: graft's convolutions sum in another order than torch's
// (im2col GEMM vs mkldnn), ~1e-16 relative per op, grown by 5 steps of BN
// normalisation over 8 examples and momentum; measured 5.1e-12 (a running_var).
TEST(DistTrain, TwoRanksEqualTorchDdpOnGloo) {
  SKIP_WITHOUT_MPI();
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import torch.distributed, torchvision' "
                        ">/dev/null 2>&1"),
            0)
      << "python3-torch and python3-torchvision are needed (scripts/setup.sh installs them)";
  CliTempDir dir("dist_torch");
  write_data(dir);
  const std::string py = "OMP_NUM_THREADS=1 /usr/bin/python3 " +
                         shell_quote(std::string(GRAFT_SOURCE_DIR) + "/tests/dist_torch.py");
  const Timed init = run_shell(py + " init " + shell_quote(dir / "init.pth") + " 4");
  ASSERT_EQ(init.r.rc, 0) << init.r.output;
  const Timed ref = run_shell(py + " ddp " + shell_quote(dir / "x.npy") + " " +
                              shell_quote(dir / "y.npy") + " " + shell_quote(dir / "init.pth") +
                              " " + shell_quote(dir / "torch.pth") + " 2 8 5 0.05");
  ASSERT_EQ(ref.r.rc, 0) << ref.r.output;
  const Timed t = mpirun(
      2, {"train", "--train-npy", dir / "x.npy", "--train-labels", dir / "y.npy", "--weights",
          dir / "init.pth", "--batch-size", "8", "--max-steps", "5", "--no-shuffle", "--dtype",
          "float64", "--lr", "0.05", "--quiet", "--save", dir / "graft.pth"});
  ASSERT_EQ(t.r.rc, 0) << t.r.output;
  std::string worst_name;
  const double worst = max_rel_diff(dir / "torch.pth", dir / "graft.pth", &worst_name);
  std::cout << "max relative difference to torch " << worst << " (" << worst_name << ")\n";
  EXPECT_LE(worst, 1e-8) << worst_name;
  EXPECT_GT(max_rel_diff(dir / "init.pth", dir / "torch.pth", nullptr), 1e-3)
      << "torch's run did not train";
}

// metrics.csv as numbers: one row per epoch (the header dropped).
std::vector<std::vector<double>> metrics_rows(const std::string& path) {
  std::vector<std::vector<double>> rows;
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    rows.emplace_back();
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) rows.back().push_back(std::stod(cell));
  }
  return rows;
}

// Validation is split between the ranks (each example on one rank, no
// DistributedSampler padding) and its sums are added over them, so the
// reported val_loss and val_acc are the whole validation set's: those of one
// process. 13 validation examples: rank 0 has 7, rank 1 has 6, so a rank's
// own share (k/7 or k/6) cannot pass for the world's (k/13).
// --cache-features in a data-parallel run: the ranks split the backbone pass
// and gather the features; training the head on them is the uncached run.
TEST(DistTrain, ValidationAndCachedFeaturesAreTheWholeWorlds) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_val");
  write_data(dir);
  std::vector<float> vx(13 * 3 * 16 * 16);
  for (size_t i = 0; i < vx.size(); ++i) vx[i] = static_cast<float>(std::sin(0.37 * double(i)));
  std::vector<int64_t> vy(13);
  for (size_t i = 0; i < vy.size(); ++i) vy[i] = static_cast<int64_t>(i % 4);
  io::save_npy(dir / "vx.npy", tensor<float>(vx, {13, 3, 16, 16}));
  io::save_npy(dir / "vy.npy", tensor<int64_t>(vy, {13}));
  const std::vector<std::string> val = {"--val-npy", dir / "vx.npy", "--val-labels",
                                        dir / "vy.npy"};
  const CliResult one = run_graft(
      plus(plus(recipe(dir, 16), val), {"--out", dir / "one", "--quiet"}), "OMP_NUM_THREADS=1 ");
  ASSERT_EQ(one.rc, 0) << one.output;
  const Timed two = mpirun(2, plus(plus(recipe(dir, 8), val), {"--out", dir / "two", "--quiet"}));
  ASSERT_EQ(two.r.rc, 0) << two.r.output;
  const auto r1 = metrics_rows(dir / "one/metrics.csv"), r2 = metrics_rows(dir / "two/metrics.csv");
  ASSERT_EQ(r1.size(), 3u);
  ASSERT_EQ(r2.size(), 3u);
  for (size_t e = 0; e < r1.size(); ++e) {
    // Columns 3 and 4: val_loss and val_acc. The weights agree to ~1e-16
    // (float64, TwoRanksOfEightEqualOneProcessOfSixteen), so the loss agrees
    // to its 6 printed digits; the accuracy is a count of 13, exact.
    EXPECT_NEAR(r1[e][3], r2[e][3], 1e-5 * r1[e][3]) << "val_loss of epoch " << e + 1;
    EXPECT_EQ(r1[e][4], r2[e][4]) << "val_acc of epoch " << e + 1;
  }

  // Only the head (fc) trains and BN is frozen: the features are exact to cache.
  const std::vector<std::string> head_only = {"train",
                                              "--train-npy",
                                              dir / "x.npy",
                                              "--train-labels",
                                              dir / "y.npy",
                                              "--batch-size",
                                              "8",
                                              "--max-steps",
                                              "5",
                                              "--freeze",
                                              "conv1.*",
                                              "--freeze",
                                              "bn1.*",
                                              "--freeze",
                                              "layer*",
                                              "--bn",
                                              "frozen",
                                              "--lr",
                                              "0.05",
                                              "--seed",
                                              "3"};
  const Timed cached = mpirun(
      2, plus(plus(head_only, val),
              {"--cache-features", "on", "--out", dir / "cached", "--save", dir / "cached.pth"}));
  ASSERT_EQ(cached.r.rc, 0) << cached.r.output;
  EXPECT_TRUE(
      cached.r.has("features cached: the backbone ran once over 32 training and 13 "
                   "validation images"))
      << cached.r.output;
  const Timed plain =
      mpirun(2, plus(plus(head_only, val), {"--cache-features", "off", "--out", dir / "plain",
                                            "--save", dir / "plain.pth", "--quiet"}));
  ASSERT_EQ(plain.r.rc, 0) << plain.r.output;
  std::string worst;
  // float32: the backbone ran on other batches (cache batches vs training
  // batches), which may change GEMM blocking and so the features' last bits
  // (~1e-7 relative); 5 head steps at lr 0.05 keep that far below 1e-5.
  const double d = max_rel_diff(dir / "plain.pth", dir / "cached.pth", &worst);
  std::cout << "cached vs uncached, 2 ranks: max relative difference " << d << " (" << worst
            << ")\n";
  EXPECT_LE(d, 1e-5) << worst;
  const auto c = metrics_rows(dir / "cached/metrics.csv"),
             u = metrics_rows(dir / "plain/metrics.csv");
  ASSERT_EQ(c.size(), 3u);
  ASSERT_EQ(u.size(), 3u);
  EXPECT_NE(c[0][1], c[2][1]) << "the head did not train (same loss in epochs 1 and 3)";
  for (size_t e = 0; e < c.size(); ++e) EXPECT_EQ(c[e][4], u[e][4]) << "val_acc of epoch " << e + 1;
}

// ---------------------------------------------------------------- overlap

// The first bucket's all-reduce is issued from the gradient hooks while
// backward still runs: it starts in the first half of backward in every step,
// before the last bucket is ready (timestamps from $GRAFT_DIST_TRACE, written
// by rank 0). This needs autograd to run AccumulateGrad as soon as a leaf's
// gradient is complete (core/autograd.h).
TEST(DistTrain, FirstBucketAllReduceStartsBeforeBackwardEnds) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_overlap");
  write_data(dir);
  const std::string trace = dir / "trace.csv";
  // Everything trained (float32): bucket 0 holds fc and layer4.1.conv2, whose
  // gradients come first in backward.
  const Timed t = mpirun(2,
                         {"train", "--train-npy", dir / "x.npy", "--train-labels", dir / "y.npy",
                          "--batch-size", "8", "--max-steps", "5", "--quiet", "--out", dir / "run"},
                         "GRAFT_DIST_TRACE=" + shell_quote(trace));
  ASSERT_EQ(t.r.rc, 0) << t.r.output;
  std::istringstream in(read_file(trace));
  std::string line;
  std::getline(in, line);
  ASSERT_EQ(line,
            "step,bucket,params,bytes,backward_start,allreduce_start,allreduce_end,backward_end");
  std::map<int, std::vector<std::vector<double>>> steps;
  while (std::getline(in, line)) {
    std::vector<double> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(std::stod(cell));
    ASSERT_EQ(f.size(), 8u) << line;
    steps[static_cast<int>(f[0])].push_back(f);
  }
  ASSERT_EQ(steps.size(), 5u);
  std::vector<double> fractions;
  for (const auto& [step, buckets] : steps) {
    ASSERT_GE(buckets.size(), 2u) << "1 MiB first bucket, then 25 MiB ones";
    const auto& first = buckets.front();
    EXPECT_GT(first[5], first[4]) << "step " << step;
    EXPECT_LT(first[5], first[7]) << "step " << step
                                  << ": the first all-reduce started only after backward";
    const double fraction = (first[5] - first[4]) / (first[7] - first[4]);
    std::cout << "step " << step << ": bucket 0 started at " << fraction << " of backward\n";
    fractions.push_back(fraction);
    EXPECT_LT(first[5], buckets.back()[5]) << "step " << step;
    for (size_t b = 1; b < buckets.size(); ++b)
      EXPECT_LE(buckets[b - 1][5], buckets[b][5]) << "buckets start in order";
    for (const auto& b : buckets) EXPECT_GE(b[6], b[5]);
  }
  // Well before: in the first half of backward in the median step (measured
  // 2-11% on an idle machine, 9-30% with the test suite running beside it, 7%
  // on ResNet18 at 224x224, and 97% when AccumulateGrad still ran last). The
  // median, not every step: with 2 ranks' threads on 2 loaded cores, one
  // step's communication thread can wait for a core, and once (a CI-like
  // `ctest --parallel 2`) a single step went past half.
  std::nth_element(fractions.begin(), fractions.begin() + 2, fractions.end());
  EXPECT_LT(fractions[2], 0.5) << "median over the 5 steps";
}

// ---------------------------------------------------------------- faults

// A rank killed mid-run (SIGKILL after its 3rd step): the other rank fails
// within the timeout with a message, mpirun exits non-zero, and the run
// folder's last checkpoint (epoch 1) stays loadable and resumable.
TEST(DistFaults, KilledRankFailsTheJobWithinTheTimeout) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_kill");
  write_data(dir);
  const Timed t =
      mpirun(2, plus(recipe(dir, 8, "6"), {"--out", dir / "run", "--dist-timeout", "20"}),
             "GRAFT_TEST_DIST_FAIL=1:3:kill");
  EXPECT_NE(t.r.rc, 0) << t.r.output;
  // Within the 20 s timeout (mpirun notices the killed rank at once), plus
  // 20 s for a loaded or sanitized machine to tear the job down.
  EXPECT_LT(t.after_stop(), 40) << t.r.output;
  EXPECT_TRUE(t.r.has("rank 1") || t.r.has("signal 9") || t.r.has("timed out")) << t.r.output;
  ASSERT_TRUE(fs::exists(dir / "run/last.pth")) << t.r.output;
  const Timed resumed = mpirun(2, {"train", "--resume", dir / "run", "--quiet"});
  EXPECT_EQ(resumed.r.rc, 0) << resumed.r.output;
}

// A rank that stops taking part without dying: the other ranks' collectives
// time out with an error naming the rank, and the job ends non-zero.
TEST(DistFaults, HungRankTimesOutWithAClearError) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_hang");
  write_data(dir);
  const Timed t = mpirun(2, plus(recipe(dir, 8), {"--dist-timeout", "4", "--out", dir / "run"}),
                         "GRAFT_TEST_DIST_FAIL=1:2:hang");
  EXPECT_NE(t.r.rc, 0) << t.r.output;
  // The 4 s timeout, at most one step of the other rank before it waits
  // (under 20 s even sanitized), and the teardown.
  EXPECT_LT(t.after_stop(), 40) << t.r.output;
  EXPECT_TRUE(t.r.has("graft: error: rank 0 of 2: ")) << t.r.output;
  EXPECT_TRUE(t.r.has("timed out after 4 s waiting for the other ranks")) << t.r.output;
}

// The resume tests' reference: the uninterrupted 2-rank run of recipe(dir, 8)
// into dir/full (metrics) and dir/full.pth.
void run_uninterrupted(const CliTempDir& dir) {
  const Timed full = mpirun(
      2, plus(recipe(dir, 8), {"--out", dir / "full", "--save", dir / "full.pth", "--quiet"}));
  ASSERT_EQ(full.r.rc, 0) << full.r.output;
}

// Resumes the run folder dir/part on 2 ranks (with `extra` flags) and expects
// the uninterrupted run's weights bit for bit.
void expect_resume_equals_uninterrupted(const CliTempDir& dir,
                                        const std::vector<std::string>& extra = {}) {
  const Timed resumed = mpirun(2, plus(plus({"train", "--resume", dir / "part"}, extra),
                                       {"--save", dir / "resumed.pth", "--quiet"}));
  ASSERT_EQ(resumed.r.rc, 0) << resumed.r.output;
  std::string worst;
  EXPECT_EQ(max_abs_diff(io::load_weights_file(dir / "full.pth"),
                         io::load_weights_file(dir / "resumed.pth"), &worst),
            0.0)
      << worst;
}

// --resume of a distributed run: part-way through an epoch it continues on
// the same world size to the uninterrupted run's exact weights and metrics
// (the part-done epoch's loss sums were saved as all ranks'); another world
// size is refused there, and accepted at an epoch boundary.
TEST(DistResume, MidEpochOnSameWorldSizeEqualsUninterrupted) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_resume");
  write_data(dir);
  run_uninterrupted(dir);
  // Stopped after step 3: 1 of the 2 batches of epoch 2.
  const Timed part =
      mpirun(2, plus(recipe(dir, 8, "3"), {"--epochs", "3", "--out", dir / "part", "--quiet"}));
  ASSERT_EQ(part.r.rc, 0) << part.r.output;
  const CliResult single = run_graft({"train", "--resume", dir / "part", "--max-steps", "5"});
  EXPECT_EQ(single.rc, 1) << single.output;
  EXPECT_TRUE(single.has("resume it with mpirun -np 2")) << single.output;
  expect_resume_equals_uninterrupted(dir, {"--max-steps", "5"});
  EXPECT_EQ(metrics_without_timing(dir / "full/metrics.csv"),
            metrics_without_timing(dir / "part/metrics.csv"));
}

// Ctrl-C that reaches one rank only (rank 1, after its first step: the test's
// stand-in for a signal that reaches the ranks at different times) stops every
// rank after the same step: the job ends as interrupted (130) instead of
// hanging until the timeout, rank 0 saves last.pth, and resuming it gives the
// uninterrupted run's weights bit for bit.
TEST(DistFaults, CtrlCOnOneRankStopsEveryRankAfterTheSameStep) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_sigint");
  write_data(dir);
  run_uninterrupted(dir);
  const Timed part =
      mpirun(2, plus(recipe(dir, 8), {"--out", dir / "part", "--dist-timeout", "30"}),
             "GRAFT_TEST_DIST_FAIL=1:1:sigint ");
  EXPECT_NE(part.r.rc, 0) << part.r.output;
  EXPECT_TRUE(part.r.has("interrupted; continue with: graft train --resume")) << part.r.output;
  EXPECT_FALSE(part.r.has("timed out")) << part.r.output;
  ASSERT_TRUE(fs::exists(dir / "part/last.pth")) << part.r.output;
  expect_resume_equals_uninterrupted(dir);
}

TEST(DistResume, AnotherWorldSizeAtAnEpochBoundary) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_resume_world");
  write_data(dir);
  const Timed two =
      mpirun(2, plus(recipe(dir, 8, "2"), {"--epochs", "2", "--out", dir / "run", "--quiet"}));
  ASSERT_EQ(two.r.rc, 0) << two.r.output;
  const CliResult one = run_graft({"train", "--resume", dir / "run", "--max-steps", "4"});
  EXPECT_EQ(one.rc, 0) << one.output;
  EXPECT_TRUE(one.has("note: the run was trained on 2 rank(s) and continues on 1")) << one.output;
}

// ---------------------------------------------------------------- bad launches

TEST(DistLaunch, RanksWithDifferentFlagsAreRefused) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_flags");
  write_data(dir);
  const std::string a = graft_args(plus(recipe(dir, 8), {"--quiet"}));
  const std::string b = graft_args(plus(recipe(dir, 8), {"--quiet", "--weight-decay", "1e-4"}));
  const Timed t = run_shell(lsan_env() + " OMP_NUM_THREADS=1 " + shell_quote(kMpirun) +
                            " --allow-run-as-root --oversubscribe -np 1 " + a + " : -np 1 " + b);
  EXPECT_NE(t.r.rc, 0) << t.r.output;
  EXPECT_TRUE(t.r.has("rank 1 was started with other graft train flags than rank 0")) << t.r.output;
}

TEST(DistLaunch, MoreRanksThanBatchesIsRefused) {
  SKIP_WITHOUT_MPI();
  CliTempDir dir("dist_world");
  write_data(dir);
  const Timed t = mpirun(3, plus(recipe(dir, 16), {"--quiet"}));
  EXPECT_NE(t.r.rc, 0) << t.r.output;
  EXPECT_TRUE(t.r.has("world size 3 is larger than the 2 batches of the training data"))
      << t.r.output;
}

// No launcher: --distributed says how to start graft (no MPI needed).
TEST(DistLaunch, DistributedWithoutLauncherSaysHowToLaunch) {
  CliTempDir dir("dist_nolaunch");
  write_data(dir);
  const CliResult r = run_graft(plus(recipe(dir, 8), {"--distributed"}),
                                "env -u OMPI_COMM_WORLD_SIZE -u PMI_SIZE ");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(r.has("--distributed: no MPI launcher found")) << r.output;
  const CliResult s =
      run_graft(plus(recipe(dir, 8), {"--sync-bn"}), "env -u OMPI_COMM_WORLD_SIZE -u PMI_SIZE ");
  EXPECT_EQ(s.rc, 1) << s.output;
  EXPECT_TRUE(s.has("--sync-bn needs distributed training")) << s.output;
}

// Built without MPI, a multi-rank launch fails on every rank saying so.
TEST(DistLaunch, BuiltWithoutMpiSaysSo) {
  if (dist::mpi_compiled()) GTEST_SKIP() << "graft was built with MPI";
  CliTempDir dir("dist_nompi");
  write_data(dir);
  const CliResult r = run_graft(plus(recipe(dir, 8), {"--quiet"}),
                                "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 ");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_TRUE(r.has("this graft was built without it")) << r.output;
}

// GRAFT_DIST_BACKEND=nccl in a build without NCCL: every rank fails at start
// saying so, and the job ends non-zero.
TEST(DistLaunch, NcclAskedForButNotBuiltIsRefused) {
  SKIP_WITHOUT_MPI();
  if (dist::nccl_compiled()) GTEST_SKIP() << "graft was built with NCCL";
  CliTempDir dir("dist_nccl");
  write_data(dir);
  const Timed t = mpirun(2, plus(recipe(dir, 8), {"--quiet"}), "GRAFT_DIST_BACKEND=nccl ");
  EXPECT_NE(t.r.rc, 0) << t.r.output;
  EXPECT_TRUE(t.r.has("GRAFT_DIST_BACKEND=nccl, but this graft was built without NCCL"))
      << t.r.output;
}

TEST(DistLaunch, InfoPrintsRankAndWorldSize) {
  const CliResult r = run_graft({"info"},
                                "OMPI_COMM_WORLD_SIZE=4 OMPI_COMM_WORLD_RANK=2 "
                                "OMPI_COMM_WORLD_LOCAL_RANK=0 ");
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.has("distributed: rank 2 of world size 4 (local rank 0, launcher OpenMPI)"))
      << r.output;
}

}  // namespace
}  // namespace graft::testing
