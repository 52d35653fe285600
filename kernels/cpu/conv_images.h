// The batch split of the CPU convolutions (conv.cpp, conv_winograd.cpp).
#pragma once

#include <cstdint>

#include "core/parallel.h"

namespace graft::cpu {

// Runs fn(image_begin, image_end) over a batch of N images: split across
// threads, each GEMM then single-threaded (Eigen does not nest inside a
// parallel region), when the batch has at least as many images as threads;
// otherwise all images in one call, Eigen threading each GEMM.
template <typename Fn>
void for_images(int64_t N, Fn&& fn) {
  if (N >= get_num_threads() && get_num_threads() > 1) {
    parallel_for(0, N, 1, fn);
  } else {
    fn(0, N);
  }
}

}  // namespace graft::cpu
