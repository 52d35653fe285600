// CUDA element-wise kernels: unary, binary and tensor-scalar ops. One kernel
// instantiation per (functor, dtype); the op itself is a run-time switch over
// the op tables inside the functor (uniform across a warp, so it costs no
// divergence).
#include "core/elementwise_formulas.h"
#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

// The formulas are core/elementwise_formulas.h's, shared with the CPU; the
// op is chosen at run time inside the functor from the tables.
template <typename T>
struct UnaryF {
  UnaryOp op;
  __device__ T operator()(T x) const { return formula::apply_unary(op, x); }
};
template <typename T>
struct BinaryF {
  BinaryOp op;
  __device__ T operator()(T a, T b) const { return formula::apply_binary(op, a, b); }
};
struct LogicalNotF {
  __device__ bool operator()(bool x) const { return formula::LogicalNot{}(x); }
};
// bool operands compute in int, as on the CPU.
struct BoolBinaryF {
  BinaryOp op;
  __device__ bool operator()(bool a, bool b) const {
    return formula::apply_binary<int>(op, a ? 1 : 0, b ? 1 : 0) != 0;
  }
};
template <typename T>
struct CompareF {
  BinaryOp op;
  __device__ bool operator()(T a, T b) const { return formula::apply_compare(op, a, b); }
};
template <typename T>
struct ScalarF {
  BinaryOp op;
  T c;
  bool scalar_first;
  __device__ T operator()(T x) const {
    return scalar_first ? formula::apply_binary(op, c, x) : formula::apply_binary(op, x, c);
  }
};
template <typename T>
struct ScalarCompareF {
  BinaryOp op;
  double c;
  bool scalar_first;
  __device__ bool operator()(T x) const {
    const double v = static_cast<double>(x);
    return scalar_first ? formula::apply_compare(op, c, v) : formula::apply_compare(op, v, c);
  }
};

// The functors return their input for an op T does not support; this check
// runs on the host before every launch.
template <typename T>
void check_supported(OpResult result, const char* name) {
  GRAFT_CHECK(formula::supports<T>(result), name, ": not supported for dtype ",
              dtype_name(dtype_of<T>));
}

bool is_reduced_float(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

Tensor to_dtype(const Tensor& t, DType d) {
  Tensor out = empty(t.sizes(), TensorOptions{d, t.device()});
  kernel::copy(t.device())(t, out);
  return out;
}

void unary_cuda(UnaryOp op, const Tensor& in, const Tensor& out) {
  if (unary_result(op) == OpResult::Bool) {
    const Tensor b = in.dtype() == DType::Bool ? in : to_dtype(in, DType::Bool);
    launch_elementwise<bool, bool>(out, LogicalNotF{}, b);
    return;
  }
  GRAFT_DISPATCH_NUMERIC(in.dtype(), unary_op_name(op), [&] {
    check_supported<scalar_t>(unary_result(op), unary_op_name(op));
    launch_elementwise<scalar_t, scalar_t>(out, UnaryF<scalar_t>{op}, in);
  });
}

void binary_cuda(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.dtype() == DType::Bool && is_comparison(op)) {
    if (is_reduced_float(a.dtype())) {
      binary_cuda(op, to_dtype(a, DType::Float32), to_dtype(b, DType::Float32), out);
      return;
    }
    GRAFT_DISPATCH_NUMERIC_AND_BOOL(a.dtype(), binary_op_name(op), [&] {
      launch_elementwise<bool, scalar_t, scalar_t>(out, CompareF<scalar_t>{op}, a, b);
    });
    return;
  }
  GRAFT_CHECK(!is_comparison(op), binary_op_name(op), ": comparison output must be bool");
  if (a.dtype() == DType::Bool) {
    check_supported<int>(binary_result(op), binary_op_name(op));
    launch_elementwise<bool, bool, bool>(out, BoolBinaryF{op}, a, b);
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    check_supported<scalar_t>(binary_result(op), binary_op_name(op));
    launch_elementwise<scalar_t, scalar_t, scalar_t>(out, BinaryF<scalar_t>{op}, a, b);
  });
}

void binary_scalar_cuda(BinaryOp op, const Tensor& a, double s, bool scalar_first,
                        const Tensor& out) {
  if (is_comparison(op)) {
    if (is_reduced_float(a.dtype())) {
      binary_scalar_cuda(op, to_dtype(a, DType::Float32), s, scalar_first, out);
      return;
    }
    GRAFT_DISPATCH_NUMERIC_AND_BOOL(a.dtype(), binary_op_name(op), [&] {
      launch_elementwise<bool, scalar_t>(out, ScalarCompareF<scalar_t>{op, s, scalar_first}, a);
    });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    check_supported<scalar_t>(binary_result(op), binary_op_name(op));
    launch_elementwise<scalar_t, scalar_t>(
        out, ScalarF<scalar_t>{op, static_cast<scalar_t>(s), scalar_first}, a);
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(unary, unary_cuda);
GRAFT_REGISTER_CUDA_KERNEL(binary, binary_cuda);
GRAFT_REGISTER_CUDA_KERNEL(binary_scalar, binary_scalar_cuda);

}  // namespace graft::cuda
