// NCCL all-reduce for DDP buckets on CUDA (dist/ddp.h), when graft is built
// with NCCL (cmake -DGRAFT_NCCL=AUTO|ON: the real CUDA backend, not the
// emulated one, and nccl.h and libnccl found). nccl.h stays out of this header:
// dist/nccl.cu, part of libgraft_cuda, implements the communicator and
// registers its factory when the backend is loaded.
//
// UNVERIFIED: no machine graft is tested on (this one, CI) has a GPU, so this
// path has only been compiled and linked, never run.
#pragma once

#include <memory>

#include "core/tensor.h"
#include "dist/process_group.h"

namespace graft::dist {

// Whether this graft was built with NCCL (GRAFT_NCCL).
bool nccl_compiled();

// A communicator over one CUDA device per rank of a process group.
class DeviceComm {
 public:
  virtual ~DeviceComm() = default;
  // Averages `t` (contiguous float32/float64 on the communicator's device)
  // over the ranks, in place, queued on graft's current stream of the device.
  // The Work's test()/wait() poll its completion; wait() fails after the
  // group's timeout, naming the rank, and aborts the communicator.
  virtual std::unique_ptr<Work> all_reduce_mean_async(const Tensor& t) = 0;
};

// Collective: every rank of `pg` calls it, each with its own device. The
// unique id is made on rank 0 and broadcast over `pg`. Throws when graft was
// built without NCCL.
std::unique_ptr<DeviceComm> make_nccl_comm(ProcessGroup& pg, Device device);

// libgraft_cuda's side: registers the factory make_nccl_comm calls.
using NcclCommFactory = std::unique_ptr<DeviceComm> (*)(ProcessGroup& pg, Device device);
void register_nccl_comm_factory(NcclCommFactory factory);

}  // namespace graft::dist
