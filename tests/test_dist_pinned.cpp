// Pinned host memory (core/cuda.h: empty_pinned, is_pinned, copy_async) and
// the transports of DDP's buckets (dist/ddp.h), in one process: a two-rank
// stand-in for the process group averages each bucket on the host with a
// known peer gradient, so the test sees what MPI would read from the buckets.
// The CUDA cases run on the emulated device in CI, where a device-to-pinned
// copy lands only when its stream gets there (kernels/cuda/emu/runtime.cpp)
// and fresh pinned memory holds 0xFF bytes (NaN): a bucket read before its
// copies landed gives NaN or stale gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/cuda.h"
#include "core/device.h"
#include "core/error.h"
#include "core/ops.h"
#include "dist/ddp.h"
#include "dist/nccl.h"
#include "nn/layers.h"
#include "tests/test_util.h"

namespace graft::testing {
namespace {

#define REQUIRE_CUDA()                                                                    \
  if (!cuda_available()) {                                                                \
    /* The emulated build always has a device: a skip there would hide the path. */       \
    if (cuda::is_emulated()) GTEST_FAIL() << device_unavailable_reason(DeviceType::CUDA); \
    GTEST_SKIP() << device_unavailable_reason(DeviceType::CUDA);                          \
  }

// ---------------------------------------------------------------- pinned memory

TEST(PinnedMemory, RoundTripsThroughTheDevice) {
  REQUIRE_CUDA();
  Tensor host = cuda::empty_pinned({3, 5}, DType::Float64);
  EXPECT_TRUE(host.device().is_cpu());
  EXPECT_TRUE(cuda::is_pinned(host));
  EXPECT_TRUE(cuda::is_pinned(host.narrow(0, 1, 2))) << "a view of pinned memory is pinned";
  EXPECT_FALSE(cuda::is_pinned(zeros({3, 5}, opts(DType::Float64)))) << "pageable";
  EXPECT_FALSE(cuda::is_pinned(Tensor()));
  double* p = host.data_ptr<double>();
  for (int i = 0; i < 15; ++i) p[i] = 0.5 * i - 3.25;
  Tensor dev = empty({3, 5}, opts(DType::Float64, Device::cuda()));
  EXPECT_FALSE(cuda::is_pinned(dev));
  cuda::copy_async(dev, host);
  Tensor back = cuda::empty_pinned({15}, DType::Float64);  // another shape, same count
  cuda::copy_async(back, dev);
  cuda::synchronize(0);
  // Exact: bytes are copied.
  EXPECT_EQ(back.to_vector<double>(), host.to_vector<double>());
  EXPECT_EQ(dev.to(Device::cpu()).to_vector<double>(), host.to_vector<double>());
  // Empty tensors are pinned too, and their copies do nothing.
  Tensor none = cuda::empty_pinned({0, 4}, DType::Float32);
  EXPECT_TRUE(cuda::is_pinned(none));
  EXPECT_NO_THROW(cuda::copy_async(none, empty({0, 4}, opts(DType::Float32, Device::cuda()))));
  // Sizes past empty()'s 4 TiB are refused the same way, before the host allocation.
  EXPECT_NE(error_of([] {
              cuda::empty_pinned({int64_t{1} << 41}, DType::Float64);
            }).find("empty_pinned: shape [2199023255552] is too large"),
            std::string::npos);
}

TEST(PinnedMemory, CopyAsyncRefusesWhatCannotBeAsynchronous) {
  REQUIRE_CUDA();
  Tensor dev = zeros({4}, opts(DType::Float32, Device::cuda()));
  EXPECT_NE(error_of([&] { cuda::copy_async(zeros({4}), dev); }).find("pageable memory"),
            std::string::npos);
  const Tensor pinned = cuda::empty_pinned({4}, DType::Float32);
  EXPECT_NE(error_of([&] { cuda::copy_async(pinned, zeros({4})); }).find("between a CUDA tensor"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::copy_async(cuda::empty_pinned({4}, DType::Float64), dev);
            }).find("dtypes differ"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::copy_async(cuda::empty_pinned({5}, DType::Float32), dev);
            }).find("4 elements into 5"),
            std::string::npos);
  Tensor dev2 = zeros({2, 4}, opts(DType::Float32, Device::cuda()));
  EXPECT_NE(error_of([&] {
              cuda::copy_async(cuda::empty_pinned({4, 2}, DType::Float32), dev2.t());
            }).find("contiguous"),
            std::string::npos);
}

// Without a CUDA device (a CPU-only build, or no GPU) the API says why.
TEST(PinnedMemory, WithoutCudaIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is available";
  const std::string why = device_unavailable_reason(DeviceType::CUDA);
  ASSERT_FALSE(why.empty());
  EXPECT_NE(error_of([] { cuda::empty_pinned({2}, DType::Float32); }).find(why), std::string::npos);
  if (!cuda::has_backend()) {
    EXPECT_NE(why.find("built without the CUDA backend"), std::string::npos) << why;
  }
  EXPECT_FALSE(cuda::is_pinned(zeros({2})));
  EXPECT_NE(error_of([] { cuda::copy_async(zeros({2}), zeros({2})); }).find("between a CUDA"),
            std::string::npos);
}

// ---------------------------------------------------------------- DDP transports

// Rank 0 of two; rank 1's gradient is kPeer everywhere. A mean all-reduce
// adds it on the host and halves (as MpiWork does: sum, then / size), and
// records whether the bucket it was given was pinned.
constexpr double kPeer = 0.25;

class TwoRankStandIn : public dist::ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void set_timeout(double) override {}
  double timeout() const override { return 60; }
  void broadcast(Tensor&, int) override {}  // rank 0 is the root: its tensor stays
  void all_reduce(Tensor& t, dist::ReduceOp op) override { all_reduce_async(t, op)->wait(); }
  std::unique_ptr<dist::Work> all_reduce_async(Tensor t, dist::ReduceOp op) override {
    EXPECT_TRUE(t.device().is_cpu());
    EXPECT_EQ(op, dist::ReduceOp::Mean);
    pinned.push_back(cuda::is_pinned(t));
    NoGradGuard ng;
    t.add_(full(t.sizes(), kPeer, opts(t.dtype()))).mul_(0.5);
    return std::make_unique<Done>();
  }
  Tensor all_gather(const Tensor&) override { GRAFT_FAIL("TwoRankStandIn: no all-gather"); }
  void barrier() override {}
  void finish(bool) override {}

  std::vector<bool> pinned;  // per all-reduce

 private:
  struct Done : dist::Work {
    bool test() override { return true; }
    void wait() override {}
  };
};

// Sets an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::shared_ptr<nn::Sequential> small_model(Device device) {
  Generator gen(7);
  auto m = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(6, 5, true, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(5, 3, true, &gen)});
  m->to(DType::Float64);
  m->to(device);
  return m;
}

// Small buckets: the 4 parameters (59 float64 values) fill 3 buckets.
dist::DdpOptions small_buckets() {
  dist::DdpOptions o;
  o.first_bucket_bytes = 8;
  o.bucket_bytes = 128;
  return o;
}

Tensor loss_of(nn::Module& m, int step, Device device) {
  Generator gen(100 + static_cast<uint64_t>(step));
  const Tensor x = randn({4, 6}, opts(DType::Float64), &gen).to(device);
  return sum(mul(m.forward(x), m.forward(x)));
}

// Each step: the local gradients (a backward outside the DDP step), then the
// DDP step's, which must be (local + peer) / 2 for every parameter.
void check_ddp_averages(Device device, dist::DistributedDataParallel::Transport transport) {
  auto model = small_model(device);
  TwoRankStandIn pg;
  dist::DistributedDataParallel ddp(pg, *model, small_buckets());
  ASSERT_EQ(ddp.transport(), transport);
  ASSERT_EQ(ddp.num_buckets(), 3);
  const bool pinned = transport == dist::DistributedDataParallel::Transport::PinnedMpi;
  for (int64_t b = 0; b < ddp.num_buckets(); ++b) {
    EXPECT_EQ(cuda::is_pinned(ddp.bucket_buffer(b)), pinned) << "bucket " << b;
    EXPECT_TRUE(ddp.bucket_buffer(b).device().is_cpu()) << "bucket " << b;
  }
  for (int step = 0; step < 3; ++step) {
    model->zero_grad();
    loss_of(*model, step, device).backward();
    std::vector<Tensor> local;
    for (const auto& [name, p] : model->named_parameters())
      local.push_back(p.grad().to(Device::cpu()));
    model->zero_grad();
    pg.pinned.clear();
    ddp.before_backward();
    loss_of(*model, step, device).backward();
    ddp.after_backward();
    ASSERT_EQ(pg.pinned, std::vector<bool>(3, pinned)) << "step " << step;
    size_t k = 0;
    for (const auto& [name, p] : model->named_parameters()) {
      ASSERT_TRUE(p.grad().defined()) << name;
      EXPECT_EQ(p.grad().device(), device) << name;
      const auto got = p.grad().to(Device::cpu()).to_vector<double>();
      const auto mine = local[k++].to_vector<double>();
      ASSERT_EQ(got.size(), mine.size()) << name;
      for (size_t i = 0; i < got.size(); ++i) {
        // Both backward passes run the same kernels on the same data; a
        // device may add in another order between them (~1e-16 relative), so
        // 1e-12 x max(1, |expected|). A bucket read before its copies landed
        // holds NaN or the previous step's gradients (off by O(1)).
        const double want = (mine[i] + kPeer) * 0.5;
        EXPECT_NEAR(got[i], want, 1e-12 * std::max(1.0, std::abs(want)))
            << "step " << step << " " << name << "[" << i << "]";
      }
    }
  }
}

TEST(DdpTransport, CpuBucketsArePageableAndAveraged) {
  check_ddp_averages(Device::cpu(), dist::DistributedDataParallel::Transport::Mpi);
}

// The staging path: pinned buckets, one device-to-host copy per gradient,
// the averages back from the bucket.
TEST(DdpTransport, CudaBucketsArePinnedAndAveragedThroughTheHost) {
  REQUIRE_CUDA();
  if (dist::nccl_compiled()) {
    // Without the variable, CUDA buckets would go to NCCL.
    ScopedEnv env("GRAFT_DIST_BACKEND", "mpi");
    check_ddp_averages(Device::cuda(), dist::DistributedDataParallel::Transport::PinnedMpi);
  } else {
    check_ddp_averages(Device::cuda(), dist::DistributedDataParallel::Transport::PinnedMpi);
    ScopedEnv env("GRAFT_DIST_BACKEND", "mpi");
    check_ddp_averages(Device::cuda(), dist::DistributedDataParallel::Transport::PinnedMpi);
  }
}

TEST(DdpTransport, BackendVariableIsChecked) {
  auto model = small_model(Device::cpu());
  TwoRankStandIn pg;
  {
    ScopedEnv env("GRAFT_DIST_BACKEND", "gloo");
    EXPECT_NE(error_of([&] {
                dist::DistributedDataParallel ddp(pg, *model);
              }).find("GRAFT_DIST_BACKEND=gloo is not a transport (nccl or mpi"),
              std::string::npos);
  }
  ScopedEnv env("GRAFT_DIST_BACKEND", "nccl");
  const std::string err = error_of([&] { dist::DistributedDataParallel ddp(pg, *model); });
  if (dist::nccl_compiled()) {
    EXPECT_NE(err.find("all-reduces CUDA tensors, but the model is on the cpu"), std::string::npos)
        << err;
  } else {
    EXPECT_NE(err.find("GRAFT_DIST_BACKEND=nccl, but this graft was built without NCCL"),
              std::string::npos)
        << err;
    const std::string direct = error_of([&] { dist::make_nccl_comm(pg, Device::cuda()); });
    EXPECT_NE(direct.find("NCCL was asked for, but this graft was built without it"),
              std::string::npos)
        << direct;
  }
}

}  // namespace
}  // namespace graft::testing
