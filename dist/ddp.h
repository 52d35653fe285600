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
// - CUDA parameters are staged through host memory (no NCCL path yet).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
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
    Tensor buffer;  // CPU, contiguous, the parameters' dtype
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
  std::vector<Bucket> buckets_;
  std::vector<HookHandle> hooks_;
  size_t next_launch_ = 0;
  bool armed_ = false;
  std::vector<BucketTiming> timings_;
  double backward_start_ = 0, backward_end_ = 0;
};

}  // namespace graft::dist
