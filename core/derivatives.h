// Recording of backward nodes. Each op front end calls the matching function
// here after computing its output (only when an input requires grad); the
// formulas themselves are all in core/derivatives.cpp, in the order of the
// forward ops in core/ops.h and core/ops_nn.h.
#pragma once

#include <optional>
#include <vector>

#include "core/autograd.h"
#include "core/kernels.h"
#include "core/ops.h"
#include "core/ops_nn.h"

namespace graft::derivatives {

// Generic helper: makes a FunctionNode named `name` over `inputs`, saving `saved`.
void record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs,
            const std::vector<Tensor>& saved, autograd::FunctionNode::Backward fn);

// ---- views ----
void view(const Tensor& self, const Tensor& out);  // view, reshape, flatten, squeeze, unsqueeze
void permute(const Tensor& self, const Shape& dims, const Tensor& out);
void slice(const Tensor& self, int64_t dim, int64_t start, int64_t step, const Tensor& out);
void select(const Tensor& self, int64_t dim, int64_t index, const Tensor& out);
void expand(const Tensor& self, const Tensor& out);
void to_dtype(const Tensor& self, const Tensor& out);
void to_device(const Tensor& self, const Tensor& out);
void clone(const Tensor& self, const Tensor& out);

// ---- element-wise ----
void unary(UnaryOp op, const Tensor& self, const Tensor& out);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void binary_scalar(BinaryOp op, const Tensor& a, double scalar, bool scalar_first,
                   const Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
void clamp(const Tensor& self, std::optional<double> min, std::optional<double> max,
           const Tensor& out);

// ---- reductions ----
void sum(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim, const Tensor& out);
void mean(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim, const Tensor& out);
void prod(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim, const Tensor& out);
// amax/amin and max/min values: gradient split evenly among tied extrema.
void amax_amin(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim,
               const Tensor& out);
void var(const Tensor& self, const std::vector<int64_t>& dims, double correction, bool keepdim,
         const Tensor& out);
void max_min_dim(const Tensor& self, int64_t dim, bool keepdim, const Tensor& indices,
                 const Tensor& values);

// ---- linear algebra, joining, indexing ----
void bmm(const Tensor& a, const Tensor& b, const Tensor& out);
void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out);
void index_select(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& out);
void gather(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                 const Tensor& out);

// ---- nn ops (core/ops_nn.h) ----
// The forward front ends pass the original inputs (graph edges) and the
// contiguous copies the kernels used (saved for backward).
void conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Tensor& input_c,
            const Tensor& weight_c, const F::Conv2dParams& p, const Tensor& out);
// mean/invstd: batch statistics (training) or running_mean and
// 1/sqrt(running_var+eps) (eval). eps is the forward's (cuDNN's backward
// requires the same value).
void batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias,
                const Tensor& input_c, const Tensor& weight_c, const Tensor& mean,
                const Tensor& invstd, bool training, double eps, const Tensor& out);
void max_pool2d(const Tensor& input, const Tensor& indices, const Tensor& out);
void adaptive_avg_pool2d(const Tensor& input, const Tensor& out);
// input is [M, K] (the front end reshapes leading dims).
void linear(const Tensor& input, const Tensor& weight, const Tensor& bias, const Tensor& input_c,
            const Tensor& weight_c, const Tensor& out);
void softmax(const Tensor& input, int64_t dim, bool log, const Tensor& out);
void nll_loss(const Tensor& log_probs, const Tensor& target, int reduction, int64_t ignore_index,
              const Tensor& out);
void cross_entropy(const Tensor& logits, const Tensor& target, int reduction, int64_t ignore_index,
                   double label_smoothing, const Tensor& log_probs, const Tensor& out);

}  // namespace graft::derivatives
