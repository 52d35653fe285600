// CUDA copy with dtype conversion, fill and where. Copy and fill handle every
// dtype pair in a single kernel (the dtype is a run-time switch, uniform per
// launch); where only moves bytes, so it is instantiated per element size.
#include <cstdint>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

__global__ void convert_kernel(int64_t n, OffsetCalc<2> calc, bool contiguous, char* dst,
                               DType dst_t, int dst_size, const char* src, DType src_t,
                               int src_size) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t off[2] = {i, i};
    if (!contiguous) calc.offsets(i, off);
    store_scalar(dst + off[0] * dst_size, dst_t, load_scalar(src + off[1] * src_size, src_t));
  }
}

__global__ void fill_kernel(int64_t n, OffsetCalc<1> calc, bool contiguous, char* dst, DType dst_t,
                            int dst_size, Scalar value) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t off[1] = {i};
    if (!contiguous) calc.offsets(i, off);
    store_scalar(dst + off[0] * dst_size, dst_t, value);
  }
}

void copy_cuda(const Tensor& src, const Tensor& dst) {
  GRAFT_CHECK(src.sizes() == dst.sizes(), "copy: shape mismatch ", shape_str(src.sizes()), " vs ",
              shape_str(dst.sizes()));
  GRAFT_CHECK(src.device() == dst.device(), "copy: tensors on ", src.device().str(), " and ",
              dst.device().str(), " (use to(device) to move between devices)");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int device = dst.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  const bool contiguous = src.is_contiguous() && dst.is_contiguous();
  if (contiguous && src.dtype() == dst.dtype()) {
    if (src.raw_data() != dst.raw_data()) {
      GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(),
                                       cudaMemcpyDeviceToDevice, stream));
    }
    return;
  }
  OffsetCalc<2> calc;
  if (!contiguous) calc = make_offset_calc<2>(dst.sizes(), {&dst, &src});
  launch<convert_kernel>(grid_for(n, kBlock), kBlock, 0, stream, n, calc, contiguous,
                         static_cast<char*>(dst.raw_data()), dst.dtype(),
                         static_cast<int>(dst.itemsize()), static_cast<const char*>(src.raw_data()),
                         src.dtype(), static_cast<int>(src.itemsize()));
  GRAFT_CUDA_CHECK_LAUNCH();
}

void fill_cuda(const Tensor& out, double value) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  const bool contiguous = out.is_contiguous();
  OffsetCalc<1> calc;
  if (!contiguous) calc = make_offset_calc<1>(out.sizes(), {&out});
  launch<fill_kernel>(grid_for(n, kBlock), kBlock, 0, current_stream(device), n, calc, contiguous,
                      static_cast<char*>(out.raw_data()), out.dtype(),
                      static_cast<int>(out.itemsize()), Scalar{true, value, 0});
  GRAFT_CUDA_CHECK_LAUNCH();
}

template <typename Bits>
struct WhereF {
  __device__ Bits operator()(bool c, Bits a, Bits b) const { return c ? a : b; }
};

void where_cuda(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  GRAFT_CHECK(cond.dtype() == DType::Bool, "where: condition must be bool, got ",
              dtype_name(cond.dtype()));
  GRAFT_DISPATCH_BITS(out.itemsize(), "where", [&] {
    launch_elementwise<bits_t, bool, bits_t, bits_t>(out, WhereF<bits_t>{}, cond, a, b);
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(copy, copy_cuda);
GRAFT_REGISTER_CUDA_KERNEL(fill, fill_cuda);
GRAFT_REGISTER_CUDA_KERNEL(where, where_cuda);

}  // namespace graft::cuda
