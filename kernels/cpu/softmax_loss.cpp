// CPU softmax / log_softmax (numerically stable: shift by the max) along any
// dim, and the classification losses: nll_loss and the fused cross entropy
// (log_softmax + nll + label smoothing) whose backward is softmax - target.
#include <cmath>
#include <limits>

#include "core/kernels.h"
#include "core/parallel.h"
#include "core/strided.h"

namespace graft::cpu {

namespace {

template <typename T>
void softmax_row(const T* x, T* y, int64_t len, int64_t stride, bool log) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < len; ++i) mx = std::max(mx, x[i * stride]);
  double sum = 0;
  for (int64_t i = 0; i < len; ++i) sum += std::exp(static_cast<double>(x[i * stride] - mx));
  if (log) {
    const T lse = static_cast<T>(std::log(sum));
    for (int64_t i = 0; i < len; ++i) y[i * stride] = x[i * stride] - mx - lse;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t i = 0; i < len; ++i) y[i * stride] = std::exp(x[i * stride] - mx) * inv;
  }
}

template <typename T>
void softmax_forward(const Tensor& input, int64_t dim, bool log, const Tensor& out) {
  const DimSplit r(input.sizes(), dim);
  const T* x = input.data_ptr<T>();
  T* y = out.data_ptr<T>();
  parallel_for(0, r.outer * r.inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(r.len, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t k = b; k < e; ++k) {
                   const int64_t o = k / r.inner, i = k % r.inner;
                   const int64_t base = o * r.len * r.inner + i;
                   softmax_row(x + base, y + base, r.len, r.inner, log);
                 }
               });
}

template <typename T>
void softmax_backward(const Tensor& grad_out, const Tensor& output, int64_t dim, bool log,
                      const Tensor& grad_input) {
  const DimSplit r(output.sizes(), dim);
  const T* g = grad_out.data_ptr<T>();
  const T* y = output.data_ptr<T>();
  T* gi = grad_input.data_ptr<T>();
  parallel_for(0, r.outer * r.inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(r.len, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t k = b; k < e; ++k) {
                   const int64_t o = k / r.inner, i = k % r.inner;
                   const int64_t base = o * r.len * r.inner + i, s = r.inner;
                   double dot = 0;  // log: sum(g); softmax: sum(g*y)
                   for (int64_t j = 0; j < r.len; ++j)
                     dot += log ? static_cast<double>(g[base + j * s])
                                : static_cast<double>(g[base + j * s]) * y[base + j * s];
                   const T d = static_cast<T>(dot);
                   for (int64_t j = 0; j < r.len; ++j) {
                     const int64_t q = base + j * s;
                     gi[q] = log ? g[q] - std::exp(y[q]) * d : y[q] * (g[q] - d);
                   }
                 }
               });
}

// Checks a target index and says whether the row counts (not ignored).
inline bool target_counts(int64_t t, int64_t C, int64_t ignore_index, int64_t row) {
  if (t == ignore_index) return false;
  GRAFT_CHECK(t >= 0 && t < C, "target ", t, " at row ", row, " is out of bounds for ", C,
              " classes");
  return true;
}

// Loss rows -> out (per row for None; summed, and divided by the count of
// counted rows for Mean, 0/0 = NaN as torch).
template <typename T>
void reduce_loss(const std::vector<double>& row_loss, int64_t counted, int reduction,
                 const Tensor& out) {
  T* o = out.data_ptr<T>();
  if (reduction == kReduceNone) {
    for (size_t i = 0; i < row_loss.size(); ++i) o[i] = static_cast<T>(row_loss[i]);
    return;
  }
  double total = 0;
  for (double v : row_loss) total += v;
  o[0] = static_cast<T>(reduction == kReduceMean ? total / static_cast<double>(counted) : total);
}

template <typename T>
void nll_forward(const Tensor& log_probs, const Tensor& target, int reduction, int64_t ignore_index,
                 const Tensor& out) {
  const int64_t N = log_probs.size(0), C = log_probs.size(1);
  const T* lp = log_probs.data_ptr<T>();
  const int64_t* t = target.data_ptr<int64_t>();
  std::vector<double> loss(N, 0.0);
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (!target_counts(t[i], C, ignore_index, i)) continue;
    loss[i] = -static_cast<double>(lp[i * C + t[i]]);
    ++counted;
  }
  reduce_loss<T>(loss, counted, reduction, out);
}

// Per-row gradient scale of a loss: grad_out[i] (None), g (Sum), g/count (Mean).
template <typename T>
std::vector<double> row_scales(const Tensor& grad_out, const int64_t* t, int64_t N, int64_t C,
                               int reduction, int64_t ignore_index) {
  std::vector<double> scale(N, 0.0);
  const T* g = grad_out.data_ptr<T>();
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i) counted += target_counts(t[i], C, ignore_index, i) ? 1 : 0;
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == ignore_index) continue;
    if (reduction == kReduceNone)
      scale[i] = static_cast<double>(g[i]);
    else if (reduction == kReduceMean)
      scale[i] = static_cast<double>(g[0]) / static_cast<double>(counted);
    else
      scale[i] = static_cast<double>(g[0]);
  }
  return scale;
}

template <typename T>
void nll_backward(const Tensor& grad_out, const Tensor& target, int reduction, int64_t ignore_index,
                  const Tensor& grad_input) {
  const int64_t N = grad_input.size(0), C = grad_input.size(1);
  const int64_t* t = target.data_ptr<int64_t>();
  const std::vector<double> scale = row_scales<T>(grad_out, t, N, C, reduction, ignore_index);
  T* gi = grad_input.data_ptr<T>();
  std::fill(gi, gi + N * C, T(0));
  for (int64_t i = 0; i < N; ++i)
    if (t[i] != ignore_index) gi[i * C + t[i]] = static_cast<T>(-scale[i]);
}

template <typename T>
void ce_forward(const Tensor& logits, const Tensor& target, int reduction, int64_t ignore_index,
                double ls, const Tensor& out, const Tensor& log_probs) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const T* x = logits.data_ptr<T>();
  T* lp = log_probs.data_ptr<T>();
  const int64_t* t = target.data_ptr<int64_t>();
  std::vector<double> loss(N, 0.0);
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i) {
    softmax_row(x + i * C, lp + i * C, C, 1, true);
    if (!target_counts(t[i], C, ignore_index, i)) continue;
    ++counted;
    // (1-ls) * nll + ls/C * sum_c(-log p_c): torch's label-smoothing split.
    double smooth = 0;
    if (ls > 0)
      for (int64_t c = 0; c < C; ++c) smooth -= static_cast<double>(lp[i * C + c]);
    loss[i] =
        (1 - ls) * -static_cast<double>(lp[i * C + t[i]]) + ls / static_cast<double>(C) * smooth;
  }
  reduce_loss<T>(loss, counted, reduction, out);
}

template <typename T>
void ce_backward(const Tensor& grad_out, const Tensor& log_probs, const Tensor& target,
                 int reduction, int64_t ignore_index, double ls, const Tensor& grad_logits) {
  const int64_t N = log_probs.size(0), C = log_probs.size(1);
  const int64_t* t = target.data_ptr<int64_t>();
  const std::vector<double> scale = row_scales<T>(grad_out, t, N, C, reduction, ignore_index);
  const T* lp = log_probs.data_ptr<T>();
  T* gi = grad_logits.data_ptr<T>();
  const double off = ls / static_cast<double>(C);
  for (int64_t i = 0; i < N; ++i) {
    T* row = gi + i * C;
    if (t[i] == ignore_index) {
      std::fill(row, row + C, T(0));
      continue;
    }
    const T s = static_cast<T>(scale[i]);
    for (int64_t c = 0; c < C; ++c) row[c] = s * (std::exp(lp[i * C + c]) - static_cast<T>(off));
    row[t[i]] -= s * static_cast<T>(1 - ls);
  }
}

void softmax_forward_cpu(const Tensor& input, int64_t dim, bool log, const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), log ? "log_softmax" : "softmax",
                       [&] { softmax_forward<scalar_t>(input, dim, log, out); });
}
void softmax_backward_cpu(const Tensor& grad_out, const Tensor& output, int64_t dim, bool log,
                          const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(output.dtype(), "softmax_backward",
                       [&] { softmax_backward<scalar_t>(grad_out, output, dim, log, grad_input); });
}
void nll_forward_cpu(const Tensor& log_probs, const Tensor& target, int reduction,
                     int64_t ignore_index, const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(log_probs.dtype(), "nll_loss", [&] {
    nll_forward<scalar_t>(log_probs, target, reduction, ignore_index, out);
  });
}
void nll_backward_cpu(const Tensor& grad_out, const Tensor& target, int reduction,
                      int64_t ignore_index, const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(grad_input.dtype(), "nll_loss_backward", [&] {
    nll_backward<scalar_t>(grad_out, target, reduction, ignore_index, grad_input);
  });
}
void ce_forward_cpu(const Tensor& logits, const Tensor& target, int reduction, int64_t ignore_index,
                    double ls, const Tensor& out, const Tensor& log_probs) {
  GRAFT_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    ce_forward<scalar_t>(logits, target, reduction, ignore_index, ls, out, log_probs);
  });
}
void ce_backward_cpu(const Tensor& grad_out, const Tensor& log_probs, const Tensor& target,
                     int reduction, int64_t ignore_index, double ls, const Tensor& grad_logits) {
  GRAFT_DISPATCH_FLOAT(log_probs.dtype(), "cross_entropy_backward", [&] {
    ce_backward<scalar_t>(grad_out, log_probs, target, reduction, ignore_index, ls, grad_logits);
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(softmax_forward, CPU, softmax_forward_cpu);
GRAFT_REGISTER_KERNEL(softmax_backward, CPU, softmax_backward_cpu);
GRAFT_REGISTER_KERNEL(nll_loss_forward, CPU, nll_forward_cpu);
GRAFT_REGISTER_KERNEL(nll_loss_backward, CPU, nll_backward_cpu);
GRAFT_REGISTER_KERNEL(cross_entropy_forward, CPU, ce_forward_cpu);
GRAFT_REGISTER_KERNEL(cross_entropy_backward, CPU, ce_backward_cpu);

}  // namespace graft::cpu
