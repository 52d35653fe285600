#include "core/parallel.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/error.h"
#include "kernels/cpu/gemm.h"

namespace graft {

namespace {

// Test-only switch: GRAFT_TEST_CACHE_SIZES="l1,l2,l3" (bytes) overrides the
// cache sizes Eigen detects at run time. Eigen derives its GEMM blocking, and
// with it the float summation order, from them, so this reproduces on one
// machine the rounding of machines with other caches; the test suite must stay
// green under any setting. Applied when libgraft loads, so the test binaries
// and the `graft` processes they start all honour it. Eigen keeps the sizes in
// inline-function statics; set_gemm_cache_sizes copies them into every
// compiled copy of the GEMM (kernels/cpu/gemm.h).
bool apply_test_cache_sizes() {
  const auto env = env_string("GRAFT_TEST_CACHE_SIZES");
  if (!env) return false;
  std::vector<std::ptrdiff_t> sizes;
  std::stringstream ss(*env);
  for (std::string part; std::getline(ss, part, ',');) {
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v <= 0) break;
    sizes.push_back(static_cast<std::ptrdiff_t>(v));
  }
  if (sizes.size() != 3) {
    std::fprintf(stderr,
                 "graft: GRAFT_TEST_CACHE_SIZES must be \"l1,l2,l3\" in bytes, got \"%s\"\n",
                 env->c_str());
    std::exit(2);
  }
  cpu::set_gemm_cache_sizes(sizes[0], sizes[1], sizes[2]);
  return true;
}

[[maybe_unused]] const bool kTestCacheSizes = apply_test_cache_sizes();

}  // namespace

void set_num_threads(int n) {
  GRAFT_CHECK(n >= 1, "set_num_threads: thread count must be >= 1, got ", n);
  omp_set_num_threads(n);
  cpu::set_gemm_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

bool in_parallel_region() { return omp_in_parallel() != 0; }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (begin >= end) return;
  const int64_t n = end - begin;
  const int threads = get_num_threads();
  if (threads <= 1 || n <= std::max<int64_t>(grain, 1) || in_parallel_region()) {
    fn(begin, end);
    return;
  }
  const int64_t max_chunks = (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
  const int nthreads = static_cast<int>(std::min<int64_t>(threads, max_chunks));
  std::exception_ptr error;
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    const int64_t chunk = (n + nt - 1) / nt;
    const int64_t b = begin + tid * chunk;
    const int64_t e = std::min(end, b + chunk);
    if (b < e) {
      try {
        fn(b, e);
      } catch (...) {
#pragma omp critical(graft_parallel_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace graft
