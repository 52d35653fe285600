// CPU indexing kernels: index_select / index_add (its adjoint) and
// gather / scatter_add (its adjoint).
//
// index_select and index_add view their operands as [outer, dim, inner]
// blocks (the data operand is made contiguous first, detached so that the copy
// records no autograd history), so each selected slice
// is a contiguous run of `inner` elements. gather and scatter_add walk the
// index tensor element by element with full strides. Out-of-range indices
// throw instead of reading or writing out of bounds.
#include <algorithm>
#include <cstring>

#include "core/kernels.h"
#include "core/parallel.h"
#include "core/strided.h"

namespace graft::cpu {

namespace {

inline int64_t checked_index(int64_t idx, int64_t size, const char* op, int64_t dim) {
  GRAFT_CHECK(idx >= -size && idx < size, op, ": index ", idx, " is out of bounds for dim ", dim,
              " with size ", size);
  return idx < 0 ? idx + size : idx;
}

void index_select_cpu(const Tensor& in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor src = in.detach().contiguous();
  GRAFT_CHECK(out.is_contiguous(), "index_select kernel: output must be contiguous");
  const DimSplit b(src.sizes(), dim);
  const int64_t n_src = src.dim() == 0 ? 1 : src.size(dim);
  const int64_t n_idx = index.numel();
  const int64_t* idx = index.data_ptr<int64_t>();
  const size_t row_bytes = static_cast<size_t>(b.inner) * src.itemsize();
  const char* ps = static_cast<const char*>(src.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  if (row_bytes == 0) return;
  // One task per selected row: (outer o, position j) -> out[o, j, :] = src[o, idx[j], :].
  parallel_for(0, b.outer * n_idx, std::max<int64_t>(1, 16384 / b.inner),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const int64_t o = r / n_idx, j = r % n_idx;
                   const int64_t i = checked_index(idx[j], n_src, "index_select", dim);
                   std::memcpy(po + static_cast<size_t>(r) * row_bytes,
                               ps + static_cast<size_t>(o * n_src + i) * row_bytes, row_bytes);
                 }
               });
}

void index_add_cpu(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src_in) {
  GRAFT_CHECK(out.is_contiguous(), "index_add kernel: output must be contiguous");
  const Tensor src = src_in.detach().contiguous();
  const DimSplit b(out.sizes(), dim);
  const int64_t n_out = out.dim() == 0 ? 1 : out.size(dim);
  const int64_t n_idx = index.numel();
  const int64_t* idx = index.data_ptr<int64_t>();
  GRAFT_DISPATCH_NUMERIC(out.dtype(), "index_add", [&] {
    const scalar_t* ps = src.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    // Repeated indices hit the same output row, so only `outer` is split
    // across threads; rows within one outer block are added in order.
    parallel_for(0, b.outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(n_idx * b.inner, 1)),
                 [&](int64_t o0, int64_t o1) {
                   for (int64_t o = o0; o < o1; ++o)
                     for (int64_t j = 0; j < n_idx; ++j) {
                       const int64_t i = checked_index(idx[j], n_out, "index_add", dim);
                       scalar_t* dst = po + (o * n_out + i) * b.inner;
                       const scalar_t* s = ps + (o * n_idx + j) * b.inner;
                       for (int64_t k = 0; k < b.inner; ++k) dst[k] += s[k];
                     }
                 });
  });
}

// Calls fn(linear position, multi-index) for every element of `shape` in
// row-major order. Serial on purpose: scatter_add may write one output
// element from several positions.
template <typename Fn>
void for_each_index(const Shape& shape, Fn&& fn) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const size_t nd = shape.size();
  std::vector<int64_t> pos(nd, 0);
  for (int64_t lin = 0; lin < n; ++lin) {
    fn(lin, pos);
    for (size_t d = nd; d-- > 0;) {
      if (++pos[d] < shape[d]) break;
      pos[d] = 0;
    }
  }
}

void gather_cpu(const Tensor& in, int64_t dim, const Tensor& index_in, const Tensor& out) {
  GRAFT_CHECK(out.is_contiguous(), "gather kernel: output must be contiguous");
  const Tensor index = index_in.detach().contiguous();
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n_in = in.dim() == 0 ? 1 : in.size(dim);
  const Shape& st = in.strides();
  const size_t item = in.itemsize();
  const char* pi = static_cast<const char*>(in.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  for_each_index(index.sizes(), [&](int64_t lin, const std::vector<int64_t>& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d)
      off +=
          (static_cast<int64_t>(d) == dim ? checked_index(idx[lin], n_in, "gather", dim) : pos[d]) *
          st[d];
    std::memcpy(po + static_cast<size_t>(lin) * item, pi + off * static_cast<int64_t>(item), item);
  });
}

void scatter_add_cpu(const Tensor& out, int64_t dim, const Tensor& index_in, const Tensor& src) {
  const Tensor index = index_in.detach().contiguous();
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n_out = out.dim() == 0 ? 1 : out.size(dim);
  const Shape& so = out.strides();
  const Shape& ss = src.strides();
  GRAFT_DISPATCH_NUMERIC(out.dtype(), "scatter_add", [&] {
    scalar_t* po = out.data_ptr<scalar_t>();
    const scalar_t* ps = src.data_ptr<scalar_t>();
    for_each_index(index.sizes(), [&](int64_t lin, const std::vector<int64_t>& pos) {
      int64_t off_o = 0, off_s = 0;
      for (size_t d = 0; d < pos.size(); ++d) {
        off_o +=
            (static_cast<int64_t>(d) == dim ? checked_index(idx[lin], n_out, "scatter_add", dim)
                                            : pos[d]) *
            so[d];
        off_s += pos[d] * ss[d];
      }
      po[off_o] += ps[off_s];
    });
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(index_select, CPU, index_select_cpu);
GRAFT_REGISTER_KERNEL(index_add, CPU, index_add_cpu);
GRAFT_REGISTER_KERNEL(gather, CPU, gather_cpu);
GRAFT_REGISTER_KERNEL(scatter_add, CPU, scatter_add_cpu);

}  // namespace graft::cpu
