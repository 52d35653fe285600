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

#include "core/alloc.h"
#include "core/conv_params.h"
#include "core/dispatch.h"
#include "core/op_tables.h"
#include "core/tensor.h"

namespace graft {

class Generator;

enum class ReduceOp : uint8_t { Sum, Mean, Max, Min, Prod };
enum class ArgReduceOp : uint8_t { Max, Min };

// Element-wise ops: UnaryOp and BinaryOp come from core/op_tables.h.
// out = op(in). `in` and `out` have the same shape and dtype (LogicalNot: both bool).
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
// The reduction kernels reduce rows. The front end (core/ops_reduce.cpp) lays
// the input out: `in` is contiguous, viewed as [len / inner, rows, inner], and
// row r holds the `len` elements in[a, r, b], taken in the order i = a * inner + b.
// inner == len gives plain rows ([rows, len], the reduced dims last); a
// smaller inner lets a contiguous [A, K, B] input reduced over A and B be read
// in place (inner = B). Output element r (contiguous, `rows` elements) is row
// r's result.
struct ReduceRows {
  int64_t rows = 0, len = 0, inner = 0;
};
// The kernels' check of that contract (`plain`: inner == len is required).
inline void check_reduce_rows(const Tensor& in, const ReduceRows& rr, bool plain,
                              const char* what) {
  GRAFT_CHECK(
      in.is_contiguous() && in.numel() == rr.rows * rr.len &&
          (plain ? rr.inner == rr.len : rr.len == 0 || (rr.inner > 0 && rr.len % rr.inner == 0)),
      what, ": the input is not laid out as ", plain ? "plain " : "", "reduction rows");
}
using ReduceFn = void (*)(ReduceOp op, const Tensor& in, const ReduceRows& rows, const Tensor& out);
// Index of each row's max/min (first occurrence); `values` may be undefined.
// Plain rows only (inner == len).
using ArgReduceFn = void (*)(ArgReduceOp op, const Tensor& in, const ReduceRows& rows,
                             const Tensor& values, const Tensor& indices);
// Variance of each row with Bessel-style `correction` (1 = unbiased). Plain rows only.
using VarFn = void (*)(const Tensor& in, const ReduceRows& rows, double correction,
                       const Tensor& out);
// Batched matrix product out[b] = a[b] @ b[b] (+ out[b] when accumulate).
// a: [B,M,K], b: [B,K,N], out: [B,M,N] contiguous. In each matrix of a and b
// one of the last two strides is 1 (the front end ensures this).
using BmmFn = void (*)(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate);
// out = in.index_select(dim, index); index is int64 1-D contiguous.
using IndexSelectFn = void (*)(const Tensor& in, int64_t dim, const Tensor& index,
                               const Tensor& out);
// out[..i..] += src[..j..] where i = index[j] along dim (index_select's adjoint).
using IndexAddFn = void (*)(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
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
// Tensors named "grad_*" that a caller does not need may be passed undefined
// (an output mask); kernels skip them. All nn kernels take contiguous tensors.
struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
};
// out[N,O,OH,OW] = conv(input[N,C,H,W], weight[O,C/groups,kh,kw]) + bias[O]
// (bias may be undefined). Output sizes are already validated.
using Conv2dForwardFn = void (*)(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                 const F::Conv2dParams& p, const Tensor& out);
// grad_input (overwritten, input's shape) from grad_out and weight.
using Conv2dBackwardInputFn = void (*)(const Tensor& grad_out, const Tensor& weight,
                                       const F::Conv2dParams& p, const Tensor& grad_input);
// grad_weight (overwritten) from grad_out and input.
using Conv2dBackwardWeightFn = void (*)(const Tensor& grad_out, const Tensor& input,
                                        const F::Conv2dParams& p, const Tensor& grad_weight);
// Training-mode batch norm over dim 1 of input [N,C,*]. Writes out, the
// batch mean and 1/sqrt(biased var + eps) per channel (save_mean/save_invstd,
// [C]), and when running_mean/var are defined updates them in place with the
// unbiased variance. weight/bias may be undefined.
using BatchNormForwardTrainFn = void (*)(const Tensor& input, const Tensor& weight,
                                         const Tensor& bias, const Tensor& running_mean,
                                         const Tensor& running_var, double momentum, double eps,
                                         const Tensor& out, const Tensor& save_mean,
                                         const Tensor& save_invstd);
// Eval-mode batch norm with the running statistics.
using BatchNormForwardEvalFn = void (*)(const Tensor& input, const Tensor& weight,
                                        const Tensor& bias, const Tensor& running_mean,
                                        const Tensor& running_var, double eps, const Tensor& out);
// Backward of either mode: `mean`/`invstd` are save_mean/save_invstd (training)
// or running_mean and 1/sqrt(running_var+eps) (eval, where the statistics are
// constants). Any of grad_input/grad_weight/grad_bias may be undefined.
using BatchNormBackwardFn = void (*)(const Tensor& grad_out, const Tensor& input,
                                     const Tensor& weight, const Tensor& mean, const Tensor& invstd,
                                     bool training, double eps, const Tensor& grad_input,
                                     const Tensor& grad_weight, const Tensor& grad_bias);
// Max pooling over [N,C,H,W]; indices (int64) are flat positions h*W+w in each
// plane, or undefined when nothing will differentiate (values only).
using MaxPool2dForwardFn = void (*)(const Tensor& input, const Pool2dParams& p, const Tensor& out,
                                    const Tensor& indices);
// grad_input (overwritten) scatters grad_out through indices.
using MaxPool2dBackwardFn = void (*)(const Tensor& grad_out, const Tensor& indices,
                                     const Tensor& grad_input);
// Adaptive average pooling [N,C,H,W] -> out [N,C,OH,OW] with torch's bins
// start = floor(o*in/out), end = ceil((o+1)*in/out).
using AdaptiveAvgPool2dForwardFn = void (*)(const Tensor& input, const Tensor& out);
using AdaptiveAvgPool2dBackwardFn = void (*)(const Tensor& grad_out, const Tensor& grad_input);
// (log_)softmax along `dim` (wrapped); out has input's shape.
using SoftmaxForwardFn = void (*)(const Tensor& input, int64_t dim, bool log, const Tensor& out);
// grad_input from grad_out and the forward output.
using SoftmaxBackwardFn = void (*)(const Tensor& grad_out, const Tensor& output, int64_t dim,
                                   bool log, const Tensor& grad_input);
// reduction: 0 none, 1 mean, 2 sum (F::Reduction's order).
constexpr int kReduceNone = 0, kReduceMean = 1, kReduceSum = 2;
// nll_loss on log_probs [N,C], target [N] int64. out is [N] (none) or [] scalar.
using NllLossForwardFn = void (*)(const Tensor& log_probs, const Tensor& target, int reduction,
                                  int64_t ignore_index, const Tensor& out);
// grad_input [N,C] (overwritten) from grad_out ([N] or []).
using NllLossBackwardFn = void (*)(const Tensor& grad_out, const Tensor& target, int reduction,
                                   int64_t ignore_index, const Tensor& grad_input);
// Fused log_softmax + nll with label smoothing on logits [N,C]. Writes the loss
// (out, [N] or []) and the log-probabilities (log_probs, [N,C]) kept for backward.
using CrossEntropyForwardFn = void (*)(const Tensor& logits, const Tensor& target, int reduction,
                                       int64_t ignore_index, double label_smoothing,
                                       const Tensor& out, const Tensor& log_probs);
// grad_logits = scale_i * (softmax - (1-ls)*onehot - ls/C), scale_i from grad_out
// and the reduction (1/non-ignored count for mean); ignored rows get zero.
using CrossEntropyBackwardFn = void (*)(const Tensor& grad_out, const Tensor& log_probs,
                                        const Tensor& target, int reduction, int64_t ignore_index,
                                        double label_smoothing, const Tensor& grad_logits);
// out[N,O] = input[N,K] @ weight[O,K]^T + bias[O] (bias may be undefined).
using LinearForwardFn = void (*)(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                 const Tensor& out);
// grad_input [N,K] = grad_out @ weight (overwritten).
using LinearBackwardInputFn = void (*)(const Tensor& grad_out, const Tensor& weight,
                                       const Tensor& grad_input);
// grad_weight [O,K] = grad_out^T @ input (overwritten).
using LinearBackwardWeightFn = void (*)(const Tensor& grad_out, const Tensor& input,
                                        const Tensor& grad_weight);
// Sum of grad_out over every dim but 1 -> [C] (conv/linear bias grad; linear passes [N,O]).
using BiasBackwardFn = void (*)(const Tensor& grad_out, const Tensor& grad_bias);

GRAFT_DECLARE_KERNEL(conv2d_forward, Conv2dForwardFn)
GRAFT_DECLARE_KERNEL(conv2d_backward_input, Conv2dBackwardInputFn)
GRAFT_DECLARE_KERNEL(conv2d_backward_weight, Conv2dBackwardWeightFn)
GRAFT_DECLARE_KERNEL(batch_norm_forward_train, BatchNormForwardTrainFn)
GRAFT_DECLARE_KERNEL(batch_norm_forward_eval, BatchNormForwardEvalFn)
GRAFT_DECLARE_KERNEL(batch_norm_backward, BatchNormBackwardFn)
GRAFT_DECLARE_KERNEL(max_pool2d_forward, MaxPool2dForwardFn)
GRAFT_DECLARE_KERNEL(max_pool2d_backward, MaxPool2dBackwardFn)
GRAFT_DECLARE_KERNEL(adaptive_avg_pool2d_forward, AdaptiveAvgPool2dForwardFn)
GRAFT_DECLARE_KERNEL(adaptive_avg_pool2d_backward, AdaptiveAvgPool2dBackwardFn)
GRAFT_DECLARE_KERNEL(softmax_forward, SoftmaxForwardFn)
GRAFT_DECLARE_KERNEL(softmax_backward, SoftmaxBackwardFn)
GRAFT_DECLARE_KERNEL(nll_loss_forward, NllLossForwardFn)
GRAFT_DECLARE_KERNEL(nll_loss_backward, NllLossBackwardFn)
GRAFT_DECLARE_KERNEL(cross_entropy_forward, CrossEntropyForwardFn)
GRAFT_DECLARE_KERNEL(cross_entropy_backward, CrossEntropyBackwardFn)
GRAFT_DECLARE_KERNEL(linear_forward, LinearForwardFn)
GRAFT_DECLARE_KERNEL(linear_backward_input, LinearBackwardInputFn)
GRAFT_DECLARE_KERNEL(linear_backward_weight, LinearBackwardWeightFn)
GRAFT_DECLARE_KERNEL(bias_backward, BiasBackwardFn)

}  // namespace graft
