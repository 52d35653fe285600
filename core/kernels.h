// The kernel contract between op front ends (core/ops.cpp, core/ops_nn.cpp)
// and the backends (kernels/cpu, kernels/cuda). Front ends validate shapes and
// dtypes, allocate outputs and handle broadcasting; kernels only compute.
//
// Conventions for every kernel below:
//  - all tensors are on the same device;
//  - outputs are allocated by the front end (contiguous unless noted);
//  - inputs may be arbitrary strided views unless noted ("contiguous").
#pragma once

#include <cstdint>
#include <vector>

#include "core/dispatch.h"
#include "core/tensor.h"

namespace graft {

class Generator;

enum class UnaryOp : uint8_t {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Relu, Sign, Reciprocal,
  Square, Floor, Ceil, Round, Log1p, Expm1, LogicalNot,
};
enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
  // grad * (x > 0): used by relu's backward (a = grad, b = x or the output)
  ReluBackward,
};
enum class ReduceOp : uint8_t { Sum, Mean, Max, Min, Prod };
enum class ArgReduceOp : uint8_t { Max, Min };

const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);
bool is_comparison(BinaryOp op);  // result dtype is bool

// out = op(in). `in` and `out` have the same shape and dtype (LogicalNot: out is bool).
using UnaryFn = void (*)(UnaryOp op, const Tensor& in, const Tensor& out);
// out = op(a, b). a and b are already expanded to out's shape and share one
// dtype; out has that dtype, or bool for comparisons. out may alias a (in-place).
using BinaryFn = void (*)(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
// out = op(a, scalar) (or op(scalar, a) when `scalar_first`).
using BinaryScalarFn = void (*)(BinaryOp op, const Tensor& a, double scalar, bool scalar_first,
                                const Tensor& out);
// Element-wise copy with dtype conversion; any strides on both sides, same shape.
using CopyFn = void (*)(const Tensor& src, const Tensor& dst);
using FillFn = void (*)(const Tensor& out, double value);
// out = cond ? a : b, all expanded to out's shape; cond is bool.
using WhereFn = void (*)(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
// Reduces `in` over `dims` (sorted, unique, non-empty) into `out`, which has
// in's shape with the reduced dims set to 1 (keepdim form).
using ReduceFn = void (*)(ReduceOp op, const Tensor& in, const std::vector<int64_t>& dims,
                          const Tensor& out);
// Index of the max/min along `dim` (first occurrence); outputs in keepdim form.
// `values` may be undefined.
using ArgReduceFn = void (*)(ArgReduceOp op, const Tensor& in, int64_t dim, const Tensor& values,
                             const Tensor& indices);
// Variance over dims with Bessel-style `correction` (1 = unbiased); keepdim form.
using VarFn = void (*)(const Tensor& in, const std::vector<int64_t>& dims, double correction,
                       const Tensor& out);
// Batched matrix product out[b] = a[b] @ b[b] (+ out[b] when accumulate).
// a: [B,M,K], b: [B,K,N], out: [B,M,N] contiguous. In each matrix of a and b
// one of the last two strides is 1 (the front end ensures this).
using BmmFn = void (*)(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate);
// out = in.index_select(dim, index); index is int64 1-D contiguous.
using IndexSelectFn = void (*)(const Tensor& in, int64_t dim, const Tensor& index,
                               const Tensor& out);
// out[..i..] += src[..j..] where i = index[j] along dim (index_select's adjoint).
using IndexAddFn = void (*)(const Tensor& out, int64_t dim, const Tensor& index,
                            const Tensor& src);
// out = in.gather(dim, index); index int64 with out's shape.
using GatherFn = void (*)(const Tensor& in, int64_t dim, const Tensor& index, const Tensor& out);
// out.scatter_add_(dim, index, src) (gather's adjoint).
using ScatterAddFn = void (*)(const Tensor& out, int64_t dim, const Tensor& index,
                              const Tensor& src);

GRAFT_DECLARE_KERNEL(unary, UnaryFn)
GRAFT_DECLARE_KERNEL(binary, BinaryFn)
GRAFT_DECLARE_KERNEL(binary_scalar, BinaryScalarFn)
GRAFT_DECLARE_KERNEL(copy, CopyFn)
GRAFT_DECLARE_KERNEL(fill, FillFn)
GRAFT_DECLARE_KERNEL(where, WhereFn)
GRAFT_DECLARE_KERNEL(reduce, ReduceFn)
GRAFT_DECLARE_KERNEL(arg_reduce, ArgReduceFn)
GRAFT_DECLARE_KERNEL(var, VarFn)
GRAFT_DECLARE_KERNEL(bmm, BmmFn)
GRAFT_DECLARE_KERNEL(index_select, IndexSelectFn)
GRAFT_DECLARE_KERNEL(index_add, IndexAddFn)
GRAFT_DECLARE_KERNEL(gather, GatherFn)
GRAFT_DECLARE_KERNEL(scatter_add, ScatterAddFn)

// ---- nn kernels (front ends in core/ops_nn.cpp) ----
// NN-KERNELS: declarations for conv, batch norm, pooling, softmax and losses go here.

}  // namespace graft
