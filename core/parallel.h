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

// Calls fn(chunk_begin, chunk_end) on disjoint chunks, in parallel when the
// range is larger than `grain` and we are not already inside a parallel region.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace graft
