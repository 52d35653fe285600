// Thread control for CPU kernels (OpenMP underneath) and a parallel_for that
// splits [begin, end) into chunks of at least `grain` iterations.
#pragma once

#include <cstdint>
#include <functional>

namespace graft {

void set_num_threads(int n);  // also sets Eigen's thread count
int get_num_threads();
bool in_parallel_region();

// Calls fn(chunk_begin, chunk_end) on disjoint chunks, in parallel when the
// range is larger than `grain` and we are not already inside a parallel region.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace graft
