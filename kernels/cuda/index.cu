// CUDA indexing kernels: index_select / index_add (its adjoint) and gather /
// scatter_add (its adjoint). Selection kernels only move bytes, so they are
// instantiated per element size; the accumulating ones use atomic adds and
// support the CPU backend's numeric dtypes (8- and 16-bit integers through a
// compare-and-swap on their aligned 32-bit word). As on the CPU, an index k
// of a dim of size n is valid when -n <= k < n (negative counts from the
// end), and a 0-d operand is a dim of size 1. An out-of-range index sets the
// device error flag (reported at the next read-back) and its element is
// skipped.
#include <cstdint>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

// A 0-d operand indexes like a 1-element dim (as the CPU backend's).
TensorGeom index_geom(const Tensor& t) {
  TensorGeom g = make_geom(t);
  if (g.ndim == 0) {
    g.ndim = 1;
    g.sizes[0] = 1;
    g.strides[0] = 0;
  }
  return g;
}

// Index k into a dim of `size` elements, negative counting from the end;
// false when out of range.
__device__ __forceinline__ bool wrap_index(int64_t& k, int64_t size) {
  if (k < -size || k >= size) return false;
  if (k < 0) k += size;
  return true;
}

// Splits `linear` (over `g`'s sizes, row-major) into coordinates.
__device__ __forceinline__ void unravel(int64_t linear, const TensorGeom& g,
                                        int64_t (&coord)[kMaxDims]) {
  for (int d = g.ndim - 1; d >= 0; --d) {
    coord[d] = linear % g.sizes[d];
    linear /= g.sizes[d];
  }
}
__device__ __forceinline__ int64_t offset_of(const int64_t (&coord)[kMaxDims],
                                             const TensorGeom& g) {
  int64_t off = 0;
  for (int d = 0; d < g.ndim; ++d) off += coord[d] * g.strides[d];
  return off;
}

// index_select: out (iteration space) [.., j, ..] = in[.., index[j], ..]
template <typename Bits>
__global__ void index_select_kernel(int64_t n, TensorGeom out_g, TensorGeom in_g, int dim,
                                    const int64_t* __restrict__ index, int64_t index_stride,
                                    const Bits* in, Bits* out, int* flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t c[kMaxDims];
    unravel(i, out_g, c);
    const int64_t o = offset_of(c, out_g);
    int64_t k = index[c[dim] * index_stride];
    if (!wrap_index(k, in_g.sizes[dim])) {
      raise_device_error(flag, kIndexOutOfRange);
      continue;
    }
    c[dim] = k;
    out[o] = in[offset_of(c, in_g)];
  }
}

// gather: out[c] = in[c with c[dim] = index[c]]
template <typename Bits>
__global__ void gather_kernel(int64_t n, TensorGeom out_g, TensorGeom in_g, TensorGeom idx_g,
                              int dim, const int64_t* __restrict__ index, const Bits* in, Bits* out,
                              int* flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t c[kMaxDims];
    unravel(i, out_g, c);
    const int64_t o = offset_of(c, out_g);
    int64_t k = index[offset_of(c, idx_g)];
    if (!wrap_index(k, in_g.sizes[dim])) {
      raise_device_error(flag, kIndexOutOfRange);
      continue;
    }
    c[dim] = k;
    out[o] = in[offset_of(c, in_g)];
  }
}

template <typename T>
__device__ __forceinline__ void atomic_add(T* p, T v) {
  if constexpr (std::is_same_v<T, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  } else if constexpr (sizeof(T) < 4) {
    // No 8/16-bit atomicAdd: add into the aligned 32-bit word that holds *p,
    // wrapping like the CPU's integer add, and retry until no one interfered.
    const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
    unsigned int* word = reinterpret_cast<unsigned int*>(addr & ~uintptr_t{3});
    const unsigned shift = static_cast<unsigned>(addr & 3) * 8;
    const unsigned mask = (sizeof(T) == 1 ? 0xffu : 0xffffu) << shift;
    // The loop starts from a guess (0) rather than a plain read of *word: other
    // threads update the word atomically meanwhile, so a plain read races with
    // them (racecheck reports it); a wrong guess costs one failed atomicCAS,
    // which returns the current value.
    unsigned int old = 0, assumed;
    do {
      assumed = old;
      const T cur = static_cast<T>((assumed & mask) >> shift);
      const unsigned sum =
          static_cast<unsigned>(static_cast<std::make_unsigned_t<T>>(static_cast<T>(cur + v)));
      old = atomicCAS(word, assumed, (assumed & ~mask) | (sum << shift));
    } while (old != assumed);
  } else {
    atomicAdd(p, v);
  }
}

// Accumulates src (iteration space `it_g`: src for index_add, index for
// scatter_add) into out at c with c[dim] replaced by the index.
// index_add: index is 1-D, looked up at c[dim]; scatter_add: looked up at c.
template <typename T>
__global__ void accumulate_kernel(int64_t n, TensorGeom it_g, TensorGeom src_g, TensorGeom out_g,
                                  TensorGeom idx_g, bool per_element_index, int dim,
                                  const int64_t* __restrict__ index, const T* src, T* out,
                                  int* flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t c[kMaxDims];
    unravel(i, it_g, c);
    const T v = src[offset_of(c, src_g)];
    int64_t k = per_element_index ? index[offset_of(c, idx_g)] : index[c[dim] * idx_g.strides[0]];
    if (!wrap_index(k, out_g.sizes[dim])) {
      raise_device_error(flag, kIndexOutOfRange);
      continue;
    }
    c[dim] = k;
    atomic_add(out + offset_of(c, out_g), v);
  }
}

void check_index(const Tensor& index, const char* name) {
  GRAFT_CHECK(index.dtype() == DType::Int64, name, ": index must be int64, got ",
              dtype_name(index.dtype()));
}

void index_select_cuda(const Tensor& in, int64_t dim, const Tensor& index, const Tensor& out) {
  check_index(index, "index_select");
  GRAFT_CHECK(index.dim() <= 1, "index_select: index must be 1-D");
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  const int64_t index_stride = index.dim() == 1 ? index.strides()[0] : 0;
  int* flag = device_error_flag(device);
  GRAFT_DISPATCH_BITS(out.itemsize(), "index_select", [&] {
    launch<index_select_kernel<bits_t>>(
        grid_for(n, kBlock), kBlock, 0, current_stream(device), n, index_geom(out), index_geom(in),
        static_cast<int>(dim), index.data_ptr<int64_t>(), index_stride,
        static_cast<const bits_t*>(in.raw_data()), static_cast<bits_t*>(out.raw_data()), flag);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void gather_cuda(const Tensor& in, int64_t dim, const Tensor& index, const Tensor& out) {
  check_index(index, "gather");
  GRAFT_CHECK(index.sizes() == out.sizes(), "gather: index shape ", shape_str(index.sizes()),
              " must match the output shape ", shape_str(out.sizes()));
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  int* flag = device_error_flag(device);
  GRAFT_DISPATCH_BITS(out.itemsize(), "gather", [&] {
    launch<gather_kernel<bits_t>>(
        grid_for(n, kBlock), kBlock, 0, current_stream(device), n, index_geom(out), index_geom(in),
        index_geom(index), static_cast<int>(dim), index.data_ptr<int64_t>(),
        static_cast<const bits_t*>(in.raw_data()), static_cast<bits_t*>(out.raw_data()), flag);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void accumulate(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
                bool per_element_index, const char* name) {
  check_index(index, name);
  GRAFT_CHECK(out.dtype() == src.dtype(), name, ": dtype mismatch ", dtype_name(out.dtype()),
              " vs ", dtype_name(src.dtype()));
  const Tensor& it = per_element_index ? index : src;
  const int64_t n = it.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  int* flag = device_error_flag(device);
  const TensorGeom idx_g = index_geom(index);  // a 0-d index: stride 0
  GRAFT_DISPATCH_NUMERIC(out.dtype(), name, [&] {
    launch<accumulate_kernel<scalar_t>>(
        grid_for(n, kBlock), kBlock, 0, current_stream(device), n, index_geom(it), index_geom(src),
        index_geom(out), idx_g, per_element_index, static_cast<int>(dim), index.data_ptr<int64_t>(),
        src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), flag);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void index_add_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  GRAFT_CHECK(index.dim() <= 1 && index.numel() == (src.dim() == 0 ? 1 : src.sizes()[dim]),
              "index_add: index must be 1-D with src.size(dim) entries");
  accumulate(out, dim, index, src, /*per_element_index=*/false, "index_add");
}

void scatter_add_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  GRAFT_CHECK(index.dim() == src.dim() && index.dim() == out.dim(),
              "scatter_add: index, src and out must have the same number of dims");
  for (int64_t d = 0; d < index.dim(); ++d) {
    GRAFT_CHECK(
        index.sizes()[d] <= src.sizes()[d] && (d == dim || index.sizes()[d] <= out.sizes()[d]),
        "scatter_add: index shape ", shape_str(index.sizes()), " exceeds src ",
        shape_str(src.sizes()), " or out ", shape_str(out.sizes()));
  }
  accumulate(out, dim, index, src, /*per_element_index=*/true, "scatter_add");
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(index_select, index_select_cuda);
GRAFT_REGISTER_CUDA_KERNEL(index_add, index_add_cuda);
GRAFT_REGISTER_CUDA_KERNEL(gather, gather_cuda);
GRAFT_REGISTER_CUDA_KERNEL(scatter_add, scatter_add_cuda);

}  // namespace graft::cuda
