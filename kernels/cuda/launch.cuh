// The one kernel-launch helper: launch<kernel>(grid, block, smem, stream,
// args...) is kernel<<<grid, block, smem, stream>>>(args...) under nvcc and,
// in the emulated build (cmake -DGRAFT_CUDA=EMULATE), the emulator's launch
// of the same kernel source on the host (kernels/cuda/emu/). Errors are
// reported as for <<<>>>: GRAFT_CUDA_CHECK_LAUNCH() right after it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

namespace graft::cuda {

template <auto Kernel, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
#ifdef GRAFT_CUDA_EMULATED
  (void)emu::launch_kernel<Kernel>(grid, block, smem, stream, std::forward<Args>(args)...);
#else
  const auto kernel = Kernel;  // nvcc does not parse <<<>>> on a template parameter itself
                               // clang-format would split ">>>" into "> > >", which nvcc rejects.
  // clang-format off
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
  // clang-format on
#endif
}

}  // namespace graft::cuda
