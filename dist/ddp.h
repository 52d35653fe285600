// DistributedDataParallel as torch defines it, for graft's training loop.
//
// - broadcast_parameters(): rank 0's parameters and buffers go to every rank
//   (at start, so all ranks begin from the same weights).
// - before_forward(): rank 0's buffers (BatchNorm running statistics) are
//   broadcast, as torch's broadcast_buffers=True does at every forward.
// - Gradients: the trainable parameters are packed, in reverse registration
//   order, into buckets of about `bucket_bytes` (the first one smaller,
//   `first_bucket_bytes`, as torch does, so communication starts early).
//   A gradient hook on each parameter copies its gradient into its bucket as
//   autograd produces it; when a bucket is complete its non-blocking
//   all-reduce (mean) starts at once, in bucket order on every rank, so it
//   overlaps the rest of backward. after_backward() waits for all buckets and
//   writes the averaged gradients into .grad. Frozen parameters join no
//   bucket. The optimizer then steps as usual, on identical gradients.
// - The transport of the buckets, chosen from where the parameters live and
//   $GRAFT_DIST_BACKEND (nccl, mpi, or unset):
//   - CPU parameters: the buckets are CPU tensors all-reduced over MPI.
//   - CUDA parameters (each rank on cuda:<local_rank>), with NCCL compiled in
//     (dist/nccl.h) and GRAFT_DIST_BACKEND unset or nccl: the buckets are
//     device tensors; each gradient is copied device-to-device into its slice
//     and the bucket is averaged by ncclAllReduce (ncclAvg) on graft's current
//     stream of the device. That stream also runs backward's kernels, so on
//     the GPU the all-reduce runs between them, not beside them (the host
//     issues it early; a separate stream would overlap it with compute).
//     UNVERIFIED: no machine graft is tested on has a GPU, so the NCCL path
//     has been compiled and linked but never run.
//   - CUDA parameters otherwise (GRAFT_DIST_BACKEND=mpi, or no NCCL): the
//     buckets are pinned host tensors (cuda::empty_pinned). Each gradient is
//     copied device-to-host straight into its slice, asynchronously on the
//     stream; a complete bucket waits for the stream (cuda::synchronize: the
//     kernels queued before its copies too), then its MPI all-reduce starts
//     and overlaps the rest of backward; the averages go back host-to-device
//     from the bucket, queued before any later use of the bucket on that
//     stream. This path runs in CI on the emulated CUDA device.
//   GRAFT_DIST_BACKEND=nccl without NCCL compiled in, or with CPU
//   parameters, is an error. Every rank must choose the same transport.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/nccl.h"
#include "dist/process_group.h"
#include "nn/module.h"

namespace graft::dist {

struct DdpOptions {
  int64_t bucket_bytes = 25 * 1024 * 1024;   // torch's bucket_cap_mb=25
  int64_t first_bucket_bytes = 1024 * 1024;  // torch's first bucket (1 MiB)
  bool broadcast_buffers = true;             // torch's default
};

// When each bucket's all-reduce ran, for one backward pass (seconds on now()'s clock).
struct BucketTiming {
  int64_t bytes = 0;
  int64_t params = 0;
  double start = 0, end = 0;
};

class DistributedDataParallel {
 public:
  DistributedDataParallel(ProcessGroup& pg, nn::Module& model, DdpOptions options = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  void broadcast_parameters();
  void before_forward();
  void before_backward();
  void after_backward();

  enum class Transport { Mpi, PinnedMpi, Nccl };
  Transport transport() const { return transport_; }
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Bucket `b`'s buffer: CPU, pinned CPU or CUDA as transport() says.
  const Tensor& bucket_buffer(int64_t b) const;
  // Parameter names per bucket (bucket 0 is all-reduced first).
  std::vector<std::vector<std::string>> bucket_names() const;
  // The last backward pass: per bucket, and when backward ended
  // (after_backward() was entered).
  const std::vector<BucketTiming>& timings() const { return timings_; }
  double backward_start() const { return backward_start_; }
  double backward_end() const { return backward_end_; }

 private:
  struct Param {
    std::string name;
    Tensor tensor;
    size_t bucket = 0;
    int64_t offset = 0;  // elements into the bucket
    bool ready = false;
  };
  struct Bucket {
    Tensor buffer;  // contiguous, the parameters' dtype; where transport_ says
    std::vector<size_t> params;
    int64_t pending = 0;
    std::unique_ptr<Work> work;
  };
  void on_grad(size_t index, const Tensor& grad);
  void launch_ready();
  void broadcast_tensor(const Tensor& t);

  ProcessGroup& pg_;
  nn::Module& model_;
  DdpOptions opts_;
  std::vector<Param> params_;
  Device device_;  // the parameters'
  Transport transport_ = Transport::Mpi;
  std::unique_ptr<DeviceComm> nccl_;  // Transport::Nccl; outlives the buckets' Work
  std::vector<Bucket> buckets_;
  std::vector<HookHandle> hooks_;
  size_t next_launch_ = 0;
  bool armed_ = false;
  std::vector<BucketTiming> timings_;
  double backward_start_ = 0, backward_end_ = 0;
};

}  // namespace graft::dist
