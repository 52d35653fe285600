// Error checks that turn CUDA failures into graft::Error with the call and code.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define GRAFT_CUDA_CHECK(call)                                                              \
  do {                                                                                      \
    const cudaError_t graft_err_ = (call);                                                  \
    if (graft_err_ != cudaSuccess) {                                                        \
      (void)cudaGetLastError();                                                             \
      GRAFT_FAIL("CUDA error in ", #call, ": ", cudaGetErrorName(graft_err_), " (",         \
                 cudaGetErrorString(graft_err_), ") at ", __FILE__, ":", __LINE__);          \
    }                                                                                       \
  } while (0)

// After a kernel launch: reports launch-configuration errors immediately.
#define GRAFT_CUDA_CHECK_LAUNCH() GRAFT_CUDA_CHECK(cudaGetLastError())
