// Run-time choice of the CPU GEMM copy (see gemm.h) and the settings every
// copy shares.
#include "kernels/cpu/gemm.h"

#include <Eigen/Core>
#include <atomic>
#include <string>

#include "core/env.h"
#include "core/error.h"
#include "core/parallel.h"

#if GRAFT_HAVE_AVX512_GEMM
#include "kernels/cpu/isa/gemm_isa.h"
#endif

namespace graft {

namespace {

// Why `isa` cannot run here, or "" when it can.
std::string isa_unavailable_reason(CpuIsa isa) {
  if (isa == CpuIsa::Baseline) return "";
#if GRAFT_HAVE_AVX512_GEMM
  // libgcc's/compiler-rt's CPUID check also requires the OS to save the
  // AVX-512 registers (XCR0), so a true here means the instructions run.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "";
  return "this CPU (or its OS) lacks AVX-512 F/BW/DQ/VL";
#else
  return "this build has no AVX-512 GEMM (GRAFT_CPU_DISPATCH=OFF or not an x86-64 GCC/Clang build)";
#endif
}

CpuIsa isa_from_env() {
  constexpr CpuIsa kIsas[] = {CpuIsa::Baseline, CpuIsa::Avx512};
  const size_t choice =
      env_choice("GRAFT_CPU_ISA", {"auto", cpu_isa_name(kIsas[0]), cpu_isa_name(kIsas[1])}, 0);
  if (choice == 0)
    return cpu_gemm_isa_available(CpuIsa::Avx512) ? CpuIsa::Avx512 : CpuIsa::Baseline;
  const CpuIsa isa = kIsas[choice - 1];
  const std::string why = isa_unavailable_reason(isa);
  GRAFT_CHECK(why.empty(), "GRAFT_CPU_ISA=", cpu_isa_name(isa), " cannot be used: ", why);
  return isa;
}

// -1 until the first GEMM or set_cpu_gemm_isa() decides.
std::atomic<int> g_isa{-1};

CpuIsa current_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    // Racing first calls compute the same answer from the same environment.
    v = static_cast<int>(isa_from_env());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<CpuIsa>(v);
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::Avx512 ? "avx512" : "baseline"; }

bool cpu_gemm_isa_available(CpuIsa isa) { return isa_unavailable_reason(isa).empty(); }

CpuIsa cpu_gemm_isa() { return current_isa(); }

void set_cpu_gemm_isa(CpuIsa isa) {
  const std::string why = isa_unavailable_reason(isa);
  GRAFT_CHECK(why.empty(), "set_cpu_gemm_isa(", cpu_isa_name(isa), "): ", why);
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

namespace cpu {

namespace {

template <typename T>
using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t,
                        T*, int64_t, bool);

#if GRAFT_HAVE_AVX512_GEMM
constexpr GemmFn<float> kAvx512F32 = graft_gemm_f32_avx512;
constexpr GemmFn<double> kAvx512F64 = graft_gemm_f64_avx512;
#else
constexpr GemmFn<float> kAvx512F32 = nullptr;
constexpr GemmFn<double> kAvx512F64 = nullptr;
#endif

// The chosen copy: `avx512` (null when not built) or this file's baseline.
template <typename T>
GemmFn<T> chosen(GemmFn<T> avx512) {
  return avx512 && current_isa() == CpuIsa::Avx512 ? avx512 : &gemm_eigen<T>;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  chosen<float>(kAvx512F32)(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
          const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate) {
  chosen<double>(kAvx512F64)(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

namespace {
// The baseline copy's settings, copied into the others.
void sync_copies() {
#if GRAFT_HAVE_AVX512_GEMM
  graft_gemm_configure_avx512(Eigen::nbThreads(), Eigen::l1CacheSize(), Eigen::l2CacheSize(),
                              Eigen::l3CacheSize());
#endif
}
}  // namespace

void set_gemm_threads(int n) {
  Eigen::setNbThreads(n);
  sync_copies();
}

void set_gemm_cache_sizes(std::ptrdiff_t l1, std::ptrdiff_t l2, std::ptrdiff_t l3) {
  Eigen::setCpuCacheSizes(l1, l2, l3);
  sync_copies();
}

}  // namespace cpu

}  // namespace graft
