// Error checks that turn CUDA, cuBLAS and cuDNN failures into graft::Error
// with the failing call and its status code.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"

#define GRAFT_CUDA_CHECK(call)                                                      \
  do {                                                                              \
    const cudaError_t graft_err_ = (call);                                          \
    if (graft_err_ != cudaSuccess) {                                                \
      (void)cudaGetLastError();                                                     \
      GRAFT_FAIL("CUDA error in ", #call, ": ", cudaGetErrorName(graft_err_), " (", \
                 cudaGetErrorString(graft_err_), ") at ", __FILE__, ":", __LINE__); \
    }                                                                               \
  } while (0)

// After a kernel launch: reports launch-configuration errors immediately.
#define GRAFT_CUDA_CHECK_LAUNCH() GRAFT_CUDA_CHECK(cudaGetLastError())

namespace graft::cuda {
const char* cublas_status_name(cublasStatus_t s);
}  // namespace graft::cuda

#define GRAFT_CUBLAS_CHECK(call)                                                                \
  do {                                                                                          \
    const cublasStatus_t graft_st_ = (call);                                                    \
    if (graft_st_ != CUBLAS_STATUS_SUCCESS) {                                                   \
      GRAFT_FAIL("cuBLAS error in ", #call, ": ", ::graft::cuda::cublas_status_name(graft_st_), \
                 " (", static_cast<int>(graft_st_), ") at ", __FILE__, ":", __LINE__);          \
    }                                                                                           \
  } while (0)

#define GRAFT_CUDNN_CHECK(call)                                                        \
  do {                                                                                 \
    const cudnnStatus_t graft_st_ = (call);                                            \
    if (graft_st_ != CUDNN_STATUS_SUCCESS) {                                           \
      GRAFT_FAIL("cuDNN error in ", #call, ": ", cudnnGetErrorString(graft_st_), " (", \
                 static_cast<int>(graft_st_), ") at ", __FILE__, ":", __LINE__);       \
    }                                                                                  \
  } while (0)
