// CPU reductions: sum/mean/prod/max/min/var over any set of dims, argmax/argmin.
// The reduced dims are permuted to the end and made contiguous, so every
// output element reduces one contiguous row; rows run in parallel.
#include <cmath>
#include <limits>
#include <numeric>

#include "core/autograd.h"
#include "core/kernels.h"
#include "core/parallel.h"

namespace graft::cpu {

namespace {

// [kept..., reduced...] contiguous copy (a no-op when already in that layout).
Tensor rows_last(const Tensor& in, const std::vector<int64_t>& dims, int64_t& rows,
                 int64_t& row_len) {
  Shape perm;
  std::vector<bool> reduced(in.dim(), false);
  for (int64_t d : dims) reduced[d] = true;
  row_len = 1;
  rows = 1;
  for (int64_t d = 0; d < in.dim(); ++d)
    if (!reduced[d]) {
      perm.push_back(d);
      rows *= in.sizes()[d];
    }
  for (int64_t d : dims) {
    perm.push_back(d);
    row_len *= in.sizes()[d];
  }
  NoGradGuard g;
  return in.permute(perm).contiguous();
}

template <typename T, typename Acc>
void reduce_rows(ReduceOp op, const T* src, T* dst, int64_t rows, int64_t len) {
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const T* row = src + r * len;
                   Acc acc = 0;
                   switch (op) {
                     case ReduceOp::Sum:
                     case ReduceOp::Mean: {
                       acc = 0;
                       for (int64_t i = 0; i < len; ++i) acc += static_cast<Acc>(row[i]);
                       if (op == ReduceOp::Mean) acc /= static_cast<Acc>(len);
                       break;
                     }
                     case ReduceOp::Prod: {
                       acc = 1;
                       for (int64_t i = 0; i < len; ++i) acc *= static_cast<Acc>(row[i]);
                       break;
                     }
                     case ReduceOp::Max:
                     case ReduceOp::Min: {
                       const bool is_max = op == ReduceOp::Max;
                       acc = static_cast<Acc>(row[0]);
                       for (int64_t i = 1; i < len; ++i) {
                         const Acc v = static_cast<Acc>(row[i]);
                         if constexpr (std::is_floating_point_v<Acc>) {
                           if (std::isnan(acc)) break;
                           if (std::isnan(v)) {
                             acc = v;
                             break;
                           }
                         }
                         if (is_max ? v > acc : v < acc) acc = v;
                       }
                       break;
                     }
                   }
                   dst[r] = static_cast<T>(acc);
                 }
               });
}

void reduce_cpu(ReduceOp op, const Tensor& in, const std::vector<int64_t>& dims,
                const Tensor& out) {
  int64_t rows = 0, len = 0;
  Tensor src = rows_last(in, dims, rows, len);
  GRAFT_CHECK(out.is_contiguous() && out.numel() == rows, "reduce: bad output");
  GRAFT_CHECK(len > 0 || (op != ReduceOp::Max && op != ReduceOp::Min),
              "max/min: cannot reduce over an empty dimension");
  GRAFT_DISPATCH_NUMERIC(in.dtype(), "reduce", [&] {
    using Acc = std::conditional_t<std::is_floating_point_v<scalar_t>, double, int64_t>;
    reduce_rows<scalar_t, Acc>(op, src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rows, len);
  });
}

// Index of the first max/min of each row; a NaN wins (torch propagates NaN).
template <typename T>
void arg_reduce_rows(ArgReduceOp op, const T* src, T* values, int64_t* indices, int64_t rows,
                     int64_t len) {
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const T* row = src + r * len;
                   int64_t best = 0;
                   for (int64_t i = 1; i < len; ++i) {
                     if constexpr (std::is_floating_point_v<T>) {
                       if (std::isnan(row[best])) break;
                       if (std::isnan(row[i])) {
                         best = i;
                         break;
                       }
                     }
                     if (op == ArgReduceOp::Max ? row[i] > row[best] : row[i] < row[best]) best = i;
                   }
                   indices[r] = best;
                   if (values) values[r] = row[best];
                 }
               });
}

void arg_reduce_cpu(ArgReduceOp op, const Tensor& in, int64_t dim, const Tensor& values,
                    const Tensor& indices) {
  int64_t rows = 0, len = 0;
  Tensor src = rows_last(in, {dim}, rows, len);
  GRAFT_CHECK(len > 0, "argmax/argmin/max/min: cannot reduce over an empty dimension");
  GRAFT_CHECK(indices.is_contiguous() && indices.numel() == rows &&
                  (!values.defined() || (values.is_contiguous() && values.numel() == rows)),
              "arg_reduce: bad output");
  GRAFT_DISPATCH_NUMERIC(in.dtype(), "argmax/argmin", [&] {
    arg_reduce_rows<scalar_t>(op, src.data_ptr<scalar_t>(),
                              values.defined() ? values.data_ptr<scalar_t>() : nullptr,
                              indices.data_ptr<int64_t>(), rows, len);
  });
}

// Two-pass variance per row (mean first, then squared deviations) in double,
// which avoids the cancellation of the sum-of-squares formula.
void var_cpu(const Tensor& in, const std::vector<int64_t>& dims, double correction,
             const Tensor& out) {
  int64_t rows = 0, len = 0;
  Tensor src = rows_last(in, dims, rows, len);
  GRAFT_CHECK(out.is_contiguous() && out.numel() == rows, "var: bad output");
  GRAFT_DISPATCH_FLOAT(in.dtype(), "var", [&] {
    const scalar_t* ps = src.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    const double denom = std::max(0.0, static_cast<double>(len) - correction);
    parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
                 [&](int64_t r0, int64_t r1) {
                   for (int64_t r = r0; r < r1; ++r) {
                     const scalar_t* row = ps + r * len;
                     double mean = 0;
                     for (int64_t i = 0; i < len; ++i) mean += static_cast<double>(row[i]);
                     mean /= static_cast<double>(len);
                     double ss = 0;
                     for (int64_t i = 0; i < len; ++i) {
                       const double d = static_cast<double>(row[i]) - mean;
                       ss += d * d;
                     }
                     // len <= correction gives inf (or NaN for an empty row), as in torch
                     po[r] = static_cast<scalar_t>(ss / denom);
                   }
                 });
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(reduce, CPU, reduce_cpu);
GRAFT_REGISTER_KERNEL(arg_reduce, CPU, arg_reduce_cpu);
GRAFT_REGISTER_KERNEL(var, CPU, var_cpu);

}  // namespace graft::cpu
