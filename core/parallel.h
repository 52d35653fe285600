// Thread control for CPU kernels (OpenMP underneath) and a parallel_for that
// splits [begin, end) into chunks of at least `grain` iterations.
#pragma once

#include <cstdint>
#include <functional>

namespace graft {

void set_num_threads(int n);  // also sets Eigen's thread count
int get_num_threads();
bool in_parallel_region();

// The instruction set of the CPU GEMM that conv, linear and bmm use on
// float32/float64. Baseline is the build's -march (GRAFT_MARCH, x86-64-v3 by
// default); x86-64 builds also carry an AVX-512 copy, chosen at the first
// GEMM when the CPU has AVX-512, unless GRAFT_CPU_ISA=baseline|avx512|auto
// says otherwise (an ISA this CPU or build lacks is refused with the reason).
enum class CpuIsa { Baseline, Avx512 };
const char* cpu_isa_name(CpuIsa isa);  // "baseline", "avx512"
bool cpu_gemm_isa_available(CpuIsa isa);
CpuIsa cpu_gemm_isa();
void set_cpu_gemm_isa(CpuIsa isa);  // throws graft::Error when unavailable

// The CPU algorithm for 3x3 stride-1 convolutions (groups 1, no dilation,
// padding 0-2), forward and both gradients: im2col + GEMM, or Winograd
// (kernels/cpu/conv_winograd.h). Auto picks Winograd F(4x4,3x3) or
// F(2x2,3x3) for the shapes where each was measured to pay
// (kernels/cpu/conv.cpp). Read from
// GRAFT_CONV_CPU=auto|gemm|winograd|winograd4 at the first convolution; other values
// are refused. Other convolutions always run im2col + GEMM.
enum class CpuConvAlgo { Auto, Gemm, Winograd, Winograd4 };
// "auto", "gemm", "winograd" (F(2x2,3x3)), "winograd4" (F(4x4,3x3) forward
// and input gradient, F(2x2,3x3) weight gradient)
const char* cpu_conv_algo_name(CpuConvAlgo algo);
CpuConvAlgo cpu_conv_algo();
void set_cpu_conv_algo(CpuConvAlgo algo);

// Calls fn(chunk_begin, chunk_end) on disjoint chunks, in parallel when the
// range is larger than `grain` and we are not already inside a parallel region.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace graft
