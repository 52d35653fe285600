// CPU reductions: sum/mean/prod/max/min/var and argmax/argmin of rows laid
// out by the front end (core/ops_reduce.cpp; core/kernels.h's ReduceRows):
// every output element reduces one row; rows run in parallel.
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/kernels.h"
#include "core/parallel.h"

namespace graft::cpu {

namespace {

// Reduces each row of `src` (laid out as core/kernels.h's ReduceRows) into
// dst[r]: acc starts at init (or at the row's first element when
// `from_first`), step(acc, v) takes the row's elements in order and
// finish(acc) gives the result. Each task walks its rows [r0, r1) together,
// one [r0, r1) x inner block of every outer index a at a time, so rows
// interleaved in memory (inner < len) are read sequentially; each row still
// sees its elements in the order i = a * inner + b.
template <typename T, typename Acc, typename Step, typename Finish>
void reduce_rows(const T* src, T* dst, const ReduceRows& rr, Acc init, bool from_first, Step step,
                 Finish finish) {
  const int64_t outer = rr.len == 0 ? 0 : rr.len / rr.inner, inner = rr.inner;
  const int64_t a_stride = rr.rows * inner;
  parallel_for(0, rr.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(rr.len, 1)),
               [&](int64_t r0, int64_t r1) {
                 std::vector<Acc> acc(r1 - r0, init);
                 for (int64_t a = 0; a < outer; ++a)
                   for (int64_t r = r0; r < r1; ++r) {
                     const T* p = src + a * a_stride + r * inner;
                     Acc x = acc[r - r0];
                     int64_t b = 0;
                     if (from_first && a == 0) x = static_cast<Acc>(p[b++]);
                     for (; b < inner; ++b) x = step(x, static_cast<Acc>(p[b]));
                     acc[r - r0] = x;
                   }
                 for (int64_t r = r0; r < r1; ++r) dst[r] = static_cast<T>(finish(acc[r - r0]));
               });
}

template <typename T, typename Acc>
void reduce_typed(ReduceOp op, const T* src, T* dst, const ReduceRows& rr) {
  const auto same = [](Acc a) { return a; };
  switch (op) {
    case ReduceOp::Sum:
      reduce_rows<T, Acc>(
          src, dst, rr, Acc(0), false, [](Acc a, Acc v) { return a + v; }, same);
      break;
    case ReduceOp::Mean: {
      const Acc n = static_cast<Acc>(rr.len);
      reduce_rows<T, Acc>(
          src, dst, rr, Acc(0), false, [](Acc a, Acc v) { return a + v; },
          [n](Acc a) { return a / n; });
      break;
    }
    case ReduceOp::Prod:
      reduce_rows<T, Acc>(
          src, dst, rr, Acc(1), false, [](Acc a, Acc v) { return a * v; }, same);
      break;
    case ReduceOp::Max:
    case ReduceOp::Min: {
      // The first NaN of a row is its result (torch propagates NaN).
      const bool is_max = op == ReduceOp::Max;
      reduce_rows<T, Acc>(
          src, dst, rr, Acc(0), true,
          [is_max](Acc a, Acc v) {
            if constexpr (std::is_floating_point_v<Acc>) {
              if (std::isnan(a)) return a;
              if (std::isnan(v)) return v;
            }
            return (is_max ? v > a : v < a) ? v : a;
          },
          same);
      break;
    }
  }
}

void reduce_cpu(ReduceOp op, const Tensor& in, const ReduceRows& rr, const Tensor& out) {
  check_reduce_rows(in, rr, false, "reduce");
  GRAFT_CHECK(out.is_contiguous() && out.numel() == rr.rows, "reduce: bad output");
  GRAFT_CHECK(rr.len > 0 || (op != ReduceOp::Max && op != ReduceOp::Min),
              "max/min: cannot reduce over an empty dimension");
  GRAFT_DISPATCH_NUMERIC(in.dtype(), "reduce", [&] {
    using Acc = std::conditional_t<std::is_floating_point_v<scalar_t>, double, int64_t>;
    reduce_typed<scalar_t, Acc>(op, in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rr);
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

void arg_reduce_cpu(ArgReduceOp op, const Tensor& src, const ReduceRows& rr, const Tensor& values,
                    const Tensor& indices) {
  check_reduce_rows(src, rr, true, "arg_reduce");
  const int64_t rows = rr.rows, len = rr.len;
  GRAFT_CHECK(len > 0, "argmax/argmin/max/min: cannot reduce over an empty dimension");
  GRAFT_CHECK(indices.is_contiguous() && indices.numel() == rows &&
                  (!values.defined() || (values.is_contiguous() && values.numel() == rows)),
              "arg_reduce: bad output");
  GRAFT_DISPATCH_NUMERIC(src.dtype(), "argmax/argmin", [&] {
    arg_reduce_rows<scalar_t>(op, src.data_ptr<scalar_t>(),
                              values.defined() ? values.data_ptr<scalar_t>() : nullptr,
                              indices.data_ptr<int64_t>(), rows, len);
  });
}

// Two-pass variance per row (mean first, then squared deviations) in double,
// which avoids the cancellation of the sum-of-squares formula.
void var_cpu(const Tensor& src, const ReduceRows& rr, double correction, const Tensor& out) {
  check_reduce_rows(src, rr, true, "var");
  const int64_t rows = rr.rows, len = rr.len;
  GRAFT_CHECK(out.is_contiguous() && out.numel() == rows, "var: bad output");
  GRAFT_DISPATCH_FLOAT(src.dtype(), "var", [&] {
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
