// NCCL communicator for DDP buckets on CUDA (dist/nccl.h). Part of
// libgraft_cuda, compiled only with GRAFT_NCCL (the real CUDA backend).
//
// UNVERIFIED: compiled and linked, never run (no GPU where graft is tested).
//
// The communicator is non-blocking (ncclConfig_t::blocking = 0): its
// initialisation and each collective return at once, and graft polls
// ncclCommGetAsyncError and a CUDA event against the process group's timeout,
// so a dead or stuck peer becomes a graft::Error naming the rank (and the
// communicator is aborted), never a hang.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/alloc.h"
#include "core/error.h"
#include "dist/nccl.h"
#include "kernels/cuda/runtime.cuh"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error \
    "graft needs NCCL 2.14 or newer (non-blocking communicators, ncclAvg); build with -DGRAFT_NCCL=OFF"
#endif

namespace graft::dist {

namespace {

// Spin briefly, then sleep: ranks may share cores.
void backoff(int spins) {
  if (spins < 200)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 200));
}

class NcclComm final : public DeviceComm {
 public:
  NcclComm(ProcessGroup& pg, Device device) : pg_(pg), device_(device) {
    GRAFT_CHECK(device.is_cuda(), "rank ", pg.rank(), ": NCCL communicates CUDA tensors, got ",
                device.str());
    // The unique id is made on rank 0 and sent to the others over MPI.
    ncclUniqueId id{};
    if (pg.rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0, "ncclUniqueId is sent as int64s");
    Tensor words = empty({static_cast<int64_t>(sizeof(id) / sizeof(int64_t))}, opts(DType::Int64));
    std::memcpy(words.raw_data(), &id, sizeof(id));
    pg.broadcast(words, 0);
    std::memcpy(&id, words.raw_data(), sizeof(id));

    cuda::DeviceGuard guard(device.index);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const double start = now();
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, pg.size(), id, pg.rank(), &config);
    if (r != ncclSuccess && r != ncclInProgress) fail("communicator initialisation", r);
    settle("communicator initialisation", start);
  }
  // Abort, not destroy: it releases the communicator without waiting for the
  // peers, so a dead rank cannot hang the exit. Every bucket's all-reduce was
  // waited for before (or the run is failing anyway).
  ~NcclComm() override {
    if (comm_) (void)ncclCommAbort(comm_);
  }

  std::unique_ptr<Work> all_reduce_mean_async(const Tensor& t) override;

  // Throws when the communicator reports an error; true while an operation
  // is still being issued (ncclInProgress, non-blocking mode).
  bool in_progress(const char* op) {
    GRAFT_CHECK(comm_ != nullptr, "rank ", pg_.rank(), ": NCCL ", op,
                ": the communicator was aborted after an earlier error");
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess) fail(op, r);
    if (state == ncclInProgress) return true;
    if (state != ncclSuccess) fail(op, state);
    return false;
  }
  // After the group's timeout: aborts the communicator and throws.
  void fail_if_late(const char* op, double start) {
    if (now() <= start + pg_.timeout()) return;
    abort();
    GRAFT_FAIL("rank ", pg_.rank(), " of ", pg_.size(), ": NCCL ", op, " timed out after ",
               pg_.timeout(),
               " s waiting for the other ranks (a rank died, hung or runs a different program; "
               "the NCCL communicator is aborted)");
  }

 private:
  void check(ncclResult_t r, const char* op) {
    if (r != ncclSuccess) fail(op, r);
  }
  [[noreturn]] void fail(const char* op, ncclResult_t r) {
    abort();
    GRAFT_FAIL("rank ", pg_.rank(), " of ", pg_.size(), ": NCCL ", op,
               " failed: ", ncclGetErrorString(r), " (", ncclGetLastError(nullptr), ")");
  }
  void abort() {
    if (comm_) (void)ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  // Polls until the operation issued last has been issued.
  void settle(const char* op, double start) {
    for (int spins = 0; in_progress(op); ++spins) {
      fail_if_late(op, start);
      backoff(spins);
    }
  }

  ProcessGroup& pg_;
  Device device_;
  ncclComm_t comm_ = nullptr;
};

// Complete when the event recorded after the all-reduce on the stream has
// passed; the communicator's asynchronous errors fail it at once.
class NcclWork final : public Work {
 public:
  NcclWork(NcclComm* comm, cudaEvent_t done, double start) : comm_(comm), done_(done) {
    start_seconds = start;
  }
  ~NcclWork() override { (void)cudaEventDestroy(done_); }
  bool test() override {
    if (complete_) return true;
    const cudaError_t e = cudaEventQuery(done_);
    if (e == cudaSuccess) {
      complete_ = true;
      end_seconds = now();
      return true;
    }
    if (e != cudaErrorNotReady) GRAFT_CUDA_CHECK(e);
    (void)cudaGetLastError();  // cudaErrorNotReady is not an error
    (void)comm_->in_progress("all-reduce");
    return false;
  }
  void wait() override {
    for (int spins = 0; !test(); ++spins) {
      comm_->fail_if_late("all-reduce", start_seconds);
      backoff(spins);
    }
  }

 private:
  NcclComm* comm_;
  cudaEvent_t done_;
  bool complete_ = false;
};

std::unique_ptr<Work> NcclComm::all_reduce_mean_async(const Tensor& t) {
  GRAFT_CHECK(comm_ != nullptr, "rank ", pg_.rank(),
              ": NCCL all-reduce: the communicator was aborted after an earlier error");
  GRAFT_CHECK(t.device() == device_ && t.is_contiguous(), "rank ", pg_.rank(),
              ": NCCL all-reduce of a ", t.device().str(),
              " tensor; it takes contiguous tensors on ", device_.str());
  ncclDataType_t type = ncclFloat32;
  if (t.dtype() == DType::Float64)
    type = ncclFloat64;
  else
    GRAFT_CHECK(t.dtype() == DType::Float32, "rank ", pg_.rank(),
                ": NCCL all-reduce supports float32 and float64, got ", dtype_name(t.dtype()));
  cuda::DeviceGuard guard(device_.index);
  cudaStream_t stream = cuda::current_stream(device_.index);
  const double start = now();
  const ncclResult_t r = ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()),
                                       type, ncclAvg, comm_, stream);
  if (r != ncclSuccess && r != ncclInProgress) fail("all-reduce", r);
  settle("all-reduce", start);
  cudaEvent_t done = nullptr;
  GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  auto work = std::make_unique<NcclWork>(this, done, start);
  GRAFT_CUDA_CHECK(cudaEventRecord(done, stream));
  t.storage()->bump_version();
  return work;
}

std::unique_ptr<DeviceComm> make(ProcessGroup& pg, Device device) {
  return std::make_unique<NcclComm>(pg, device);
}

const bool registered = [] {
  register_nccl_comm_factory(&make);
  return true;
}();

}  // namespace

}  // namespace graft::dist
