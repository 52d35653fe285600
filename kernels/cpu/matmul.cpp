// CPU batched matrix product on the kernels' GEMM (gemm.h).
//
// Each matrix of a, b is read in place: a matrix whose last stride is 1 is
// row-major, one whose second-to-last stride is 1 is column-major (a
// transposed row-major one), so transposed views multiply without a copy.
// Many small matrices run batch-parallel (one single-threaded GEMM per
// thread); big ones run one after another with Eigen's own OpenMP threading.
#include <algorithm>

#include "core/kernels.h"
#include "core/parallel.h"
#include "kernels/cpu/gemm.h"

namespace graft::cpu {

namespace {

// Layout of the matrix formed by the last two dims of a 3-D tensor.
struct MatLayout {
  bool row_major = true;
  int64_t ld = 1;  // outer stride in elements
};

MatLayout layout_of(const Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2);
  const int64_t rs = t.stride(1), cs = t.stride(2);
  // A dim of size 1 may carry any stride; the outer stride is then free and
  // is set to the inner size so that Eigen sees a regular matrix.
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols))
    return {true, rows == 1 ? std::max<int64_t>(cols, 1) : rs};
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows))
    return {false, cols == 1 ? std::max<int64_t>(rows, 1) : cs};
  GRAFT_FAIL("bmm kernel: matrix of shape ", shape_str(t.sizes()), " with strides ",
             shape_str(t.strides()), " has no unit stride in its last two dims");
}

template <typename T>
void bmm_typed(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  T* po = out.data_ptr<T>();
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {  // empty inner dimension: the product is zero
    if (!accumulate) std::fill(po, po + batch * m * n, T(0));
    return;
  }
  const MatLayout la = layout_of(a), lb = layout_of(b);
  const T* pa = a.data_ptr<T>();
  const T* pb = b.data_ptr<T>();
  const int64_t sa = a.stride(0), sb = b.stride(0);
  auto run = [&](int64_t i) {
    const T* ai = pa + i * sa;
    const T* bi = pb + i * sb;
    T* oi = po + i * m * n;
    // A column-major m x k matrix with outer stride ld is the transpose of a
    // row-major k x m one with the same stride.
    gemm(!la.row_major, !lb.row_major, m, n, k, ai, la.ld, bi, lb.ld, oi, n, accumulate);
  };
  // Below ~128^3 flops per matrix Eigen's internal threading does not pay
  // off, so threads take whole matrices instead.
  const int64_t flops = m * n * k;
  constexpr int64_t kSmall = int64_t{128} * 128 * 128;
  if (batch > 1 && flops < kSmall) {
    const int64_t grain = std::max<int64_t>(1, kSmall / std::max<int64_t>(flops, 1) / 8);
    parallel_for(0, batch, grain, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) run(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) run(i);
  }
}

void bmm_cpu(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  GRAFT_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && out.is_contiguous(),
              "bmm kernel: expects 3-D inputs and a contiguous 3-D output");
  switch (a.dtype()) {
    case DType::Float32:
      return bmm_typed<float>(a, b, out, accumulate);
    case DType::Float64:
      return bmm_typed<double>(a, b, out, accumulate);
    case DType::Int64:
      return bmm_typed<int64_t>(a, b, out, accumulate);
    case DType::Int32:
      return bmm_typed<int32_t>(a, b, out, accumulate);
    default:
      GRAFT_FAIL("bmm: unsupported dtype ", dtype_name(a.dtype()),
                 " (expected float32, float64, int64 or int32)");
  }
}

}  // namespace

GRAFT_REGISTER_KERNEL(bmm, CPU, bmm_cpu);

}  // namespace graft::cpu
