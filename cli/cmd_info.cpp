// `graft info`: version, build options and available devices.
#include <iostream>

#include "cli/command.h"
#include "core/cuda.h"
#include "core/device.h"
#include "core/parallel.h"
#include "dist/nccl.h"
#include "dist/process_group.h"

namespace {

int run_info() {
  const graft::CpuIsa gemm_isa = graft::cpu_gemm_isa();  // refuses a bad GRAFT_CPU_ISA first
  std::cout << "graft " << GRAFT_VERSION << "\n";
  std::cout << "CUDA backend: "
            << (!graft::cuda::has_backend()  ? "none"
                : graft::cuda::is_emulated() ? "compiled (emulated device)"
                                             : "compiled")
            << "\n";
  std::cout << "CPU threads: " << graft::get_num_threads() << "\n";
  std::cout << "CPU GEMM: " << graft::cpu_isa_name(gemm_isa) << " (AVX-512 copy "
            << (graft::cpu_gemm_isa_available(graft::CpuIsa::Avx512) ? "usable" : "not usable")
            << "; GRAFT_CPU_ISA=auto|baseline|avx512)\n";
  std::cout << "CPU 3x3 convolution: " << graft::cpu_conv_algo_name(graft::cpu_conv_algo())
            << " (GRAFT_CONV_CPU=auto|gemm|winograd|winograd4)\n";
  std::cout << "MPI: " << (graft::dist::mpi_compiled() ? "compiled" : "not compiled") << "\n";
  std::cout << "NCCL: "
            << (graft::dist::nccl_compiled() ? "compiled (unverified: never run on a GPU)"
                                             : "not compiled")
            << "\n";
  const auto launch = graft::dist::launch_info();
  std::cout << "distributed: rank " << launch.rank << " of world size " << launch.world_size
            << " (local rank " << launch.local_rank << ", launcher "
            << (launch.launched ? launch.launcher : "none") << ")\n";
  if (graft::cuda_available()) {
    const auto& b = graft::device_backend(graft::DeviceType::CUDA);
    for (int i = 0; i < b.device_count(); ++i)
      std::cout << "cuda:" << i << ": " << b.describe(i) << "\n";
  } else {
    std::cout << graft::device_unavailable_reason(graft::DeviceType::CUDA) << "\n";
  }
  return 0;
}

GRAFT_COMMAND("info", "Print the version, build options and available devices",
              [](CLI::App&) { return std::function<int()>(run_info); });

}  // namespace
