#include "dist/ddp.h"

#include <cstring>

#include "core/autograd.h"
#include "core/cuda.h"
#include "core/env.h"
#include "core/error.h"
#include "core/ops.h"

namespace graft::dist {

namespace {
NcclCommFactory g_nccl_factory = nullptr;
}  // namespace

bool nccl_compiled() {
#ifdef GRAFT_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

void register_nccl_comm_factory(NcclCommFactory factory) { g_nccl_factory = factory; }

std::unique_ptr<DeviceComm> make_nccl_comm(ProcessGroup& pg, Device device) {
  GRAFT_CHECK(nccl_compiled(), "rank ", pg.rank(),
              ": NCCL was asked for, but this graft was built without it (GRAFT_NCCL=OFF, an "
              "emulated or CPU-only CUDA build, or no nccl.h and libnccl at build time)");
  // libgraft_cuda registers the factory when it is loaded, which a CUDA device does.
  GRAFT_CHECK(g_nccl_factory != nullptr, "rank ", pg.rank(),
              ": NCCL is compiled in, but the CUDA backend that provides it is not loaded (",
              device_unavailable_reason(DeviceType::CUDA), ")");
  return g_nccl_factory(pg, device);
}

DistributedDataParallel::DistributedDataParallel(ProcessGroup& pg, nn::Module& model,
                                                 DdpOptions options)
    : pg_(pg), model_(model), opts_(options) {
  GRAFT_CHECK(opts_.bucket_bytes > 0 && opts_.first_bucket_bytes > 0, "rank ", pg_.rank(),
              ": DDP bucket sizes must be positive");
  for (const auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) params_.push_back({name, p});
  GRAFT_CHECK(!params_.empty(), "rank ", pg_.rank(),
              ": distributed training needs at least one trainable parameter (all are frozen)");
  const DType dtype = params_.front().tensor.dtype();
  device_ = params_.front().tensor.device();
  for (const Param& p : params_)
    GRAFT_CHECK(p.tensor.device() == device_, "rank ", pg_.rank(), ": parameter ", p.name,
                " is on ", p.tensor.device().str(), " but ", params_.front().name, " is on ",
                device_.str(), ": DDP needs the model on one device");
  const auto backend = env_string("GRAFT_DIST_BACKEND");
  GRAFT_CHECK(!backend || *backend == "nccl" || *backend == "mpi", "rank ", pg_.rank(),
              ": GRAFT_DIST_BACKEND=", backend.value_or(""),
              " is not a transport (nccl or mpi; unset: NCCL for CUDA models when compiled in)");
  if (backend == "nccl") {
    GRAFT_CHECK(nccl_compiled(), "rank ", pg_.rank(),
                ": GRAFT_DIST_BACKEND=nccl, but this graft was built without NCCL (GRAFT_NCCL=OFF, "
                "an emulated or CPU-only CUDA build, or no nccl.h and libnccl at build time); "
                "unset it, or set it to mpi to stage CUDA buckets through pinned host memory");
    GRAFT_CHECK(device_.is_cuda(), "rank ", pg_.rank(),
                ": GRAFT_DIST_BACKEND=nccl all-reduces CUDA tensors, but the model is on the ",
                device_.str(), "; unset it or set it to mpi");
  }
  if (device_.is_cpu())
    transport_ = Transport::Mpi;
  else if (backend != "mpi" && nccl_compiled())
    transport_ = Transport::Nccl;
  else
    transport_ = Transport::PinnedMpi;
  // Buckets in reverse registration order: roughly the order in which
  // backward produces the gradients.
  std::vector<int64_t> sizes;
  int64_t cap = opts_.first_bucket_bytes, bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    Param& p = params_[k];
    GRAFT_CHECK(p.tensor.dtype() == dtype, "rank ", pg_.rank(), ": parameter ", p.name, " is ",
                dtype_name(p.tensor.dtype()), " but ", params_.front().name, " is ",
                dtype_name(dtype), ": DDP buckets need one dtype");
    if (buckets_.empty() || bytes >= cap) {
      if (!buckets_.empty()) cap = opts_.bucket_bytes;
      buckets_.emplace_back();
      sizes.push_back(0);
      bytes = 0;
    }
    p.bucket = buckets_.size() - 1;
    p.offset = sizes.back();
    sizes.back() += p.tensor.numel();
    bytes += static_cast<int64_t>(p.tensor.nbytes());
    buckets_.back().params.push_back(k);
  }
  if (transport_ == Transport::Nccl) nccl_ = make_nccl_comm(pg_, device_);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Tensor& buffer = buckets_[b].buffer;
    switch (transport_) {
      case Transport::Mpi:
        buffer = zeros({sizes[b]}, opts(dtype));
        break;
      case Transport::PinnedMpi:
        // Every element is written by a gradient copy before it is read.
        buffer = cuda::empty_pinned({sizes[b]}, dtype);
        break;
      case Transport::Nccl:
        buffer = zeros({sizes[b]}, opts(dtype, device_));
        break;
    }
  }
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].tensor.register_hook([this, k](const Tensor& g) {
      on_grad(k, g);
      return Tensor();
    }));
}

DistributedDataParallel::~DistributedDataParallel() {
  for (auto& h : hooks_) h.remove();
}

const Tensor& DistributedDataParallel::bucket_buffer(int64_t b) const {
  GRAFT_CHECK(b >= 0 && b < num_buckets(), "DDP: bucket ", b, " of ", num_buckets());
  return buckets_[static_cast<size_t>(b)].buffer;
}

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_names() const {
  std::vector<std::vector<std::string>> names;
  for (const auto& b : buckets_) {
    names.emplace_back();
    for (size_t k : b.params) names.back().push_back(params_[k].name);
  }
  return names;
}

void DistributedDataParallel::broadcast_tensor(const Tensor& t) {
  NoGradGuard ng;
  if (t.device().is_cpu() && t.is_contiguous()) {
    Tensor view = t;
    pg_.broadcast(view, 0);
    return;
  }
  Tensor host = t.to(Device::cpu()).contiguous().clone();
  pg_.broadcast(host, 0);
  t.copy_(host.to(t.device()));
}

void DistributedDataParallel::broadcast_parameters() {
  for (const auto& [name, p] : model_.named_parameters()) broadcast_tensor(p);
  for (const auto& [name, b] : model_.named_buffers()) broadcast_tensor(b);
}

void DistributedDataParallel::before_forward() {
  if (!opts_.broadcast_buffers || pg_.size() == 1) return;
  for (const auto& [name, b] : model_.named_buffers()) broadcast_tensor(b);
}

void DistributedDataParallel::before_backward() {
  GRAFT_CHECK(!armed_, "rank ", pg_.rank(),
              ": DDP: before_backward() twice without after_backward()");
  for (auto& p : params_) p.ready = false;
  for (auto& b : buckets_) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.work.reset();
  }
  next_launch_ = 0;
  timings_.assign(buckets_.size(), {});
  backward_start_ = now();
  armed_ = true;
}

void DistributedDataParallel::on_grad(size_t index, const Tensor& grad) {
  if (!armed_) return;  // a backward outside the training step (not synchronised)
  Param& p = params_[index];
  GRAFT_CHECK(!p.ready, "rank ", pg_.rank(), ": DDP: parameter ", p.name,
              " got a second gradient in one backward pass");
  Bucket& b = buckets_[p.bucket];
  {
    NoGradGuard ng;
    GRAFT_CHECK(grad.numel() == p.tensor.numel(), "rank ", pg_.rank(), ": DDP: the gradient of ",
                p.name, " has ", grad.numel(), " elements for a parameter of ", p.tensor.numel());
    if (transport_ == Transport::Mpi) {
      const Tensor g = grad.to(Device::cpu()).to(b.buffer.dtype()).contiguous();
      const size_t item = b.buffer.itemsize();
      std::memcpy(static_cast<char*>(b.buffer.raw_data()) + static_cast<size_t>(p.offset) * item,
                  g.raw_data(), g.nbytes());
    } else {
      GRAFT_CHECK(grad.device() == device_, "rank ", pg_.rank(), ": DDP: the gradient of ", p.name,
                  " is on ", grad.device().str(), ", its parameter on ", device_.str());
      const Tensor g = grad.to(b.buffer.dtype()).contiguous();
      Tensor slice = b.buffer.narrow(0, p.offset, p.tensor.numel());
      if (transport_ == Transport::PinnedMpi)
        cuda::copy_async(slice, g);  // one device-to-host copy, read after launch_ready's sync
      else
        slice.copy_(g.view({p.tensor.numel()}));  // device to device
    }
  }
  p.ready = true;
  --b.pending;
  launch_ready();
  // Give MPI a chance to progress the buckets in flight (OpenMPI has no
  // progress thread by default).
  for (size_t k = 0; k < next_launch_; ++k)
    if (buckets_[k].work) buckets_[k].work->test();
}

void DistributedDataParallel::launch_ready() {
  // Strictly in bucket order, so every rank issues the same collectives in
  // the same order.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_];
    if (transport_ == Transport::Nccl) {
      b.work = nccl_->all_reduce_mean_async(b.buffer);
    } else {
      // The bucket's device-to-host copies must have landed before MPI reads it.
      if (transport_ == Transport::PinnedMpi) cuda::synchronize(device_.index);
      b.work = pg_.all_reduce_async(b.buffer, ReduceOp::Mean);
    }
    timings_[next_launch_].start = b.work->start_seconds;
    timings_[next_launch_].bytes = static_cast<int64_t>(b.buffer.nbytes());
    timings_[next_launch_].params = static_cast<int64_t>(b.params.size());
    ++next_launch_;
  }
}

void DistributedDataParallel::after_backward() {
  GRAFT_CHECK(armed_, "rank ", pg_.rank(), ": DDP: after_backward() without before_backward()");
  armed_ = false;
  backward_end_ = now();
  for (const auto& p : params_)
    GRAFT_CHECK(p.ready, "rank ", pg_.rank(), ": DDP: parameter ", p.name,
                " received no gradient in this backward pass; every trainable parameter must "
                "take part in the loss (freeze unused ones with --freeze)");
  for (size_t k = 0; k < buckets_.size(); ++k) {
    buckets_[k].work->wait();
    timings_[k].end = buckets_[k].work->end_seconds;
  }
  NoGradGuard ng;
  for (auto& p : params_) {
    const Bucket& b = buckets_[p.bucket];
    const Tensor avg = b.buffer.narrow(0, p.offset, p.tensor.numel()).view(p.tensor.sizes());
    if (transport_ == Transport::PinnedMpi) {
      // Host to device from the pinned bucket, queued on the stream: the
      // bucket's next writes (the next backward's copies) are queued after
      // it, and MPI touches the bucket only after the stream is synchronised.
      Tensor g = empty(p.tensor.sizes(), opts(avg.dtype(), device_));
      cuda::copy_async(g, avg);
      p.tensor.set_grad(g);
    } else {
      p.tensor.set_grad(avg.clone());
    }
  }
}

}  // namespace graft::dist
