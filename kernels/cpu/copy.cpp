// CPU copy (with dtype conversion), fill and where: the twins of
// kernels/cuda/copy.cu.
#include "core/kernels.h"
#include "kernels/cpu/loops.h"

namespace graft::cpu {

namespace {

template <typename To>
void copy_to(const Tensor& src, const Tensor& dst) {
  GRAFT_DISPATCH_ALL(src.dtype(), "copy", [&] {
    map_elements<To, scalar_t>(dst, {&src}, [](scalar_t x) { return convert<To>(x); });
  });
}

void copy_cpu(const Tensor& src, const Tensor& dst) {
  GRAFT_CHECK(src.sizes() == dst.sizes(), "copy: shape mismatch ", shape_str(src.sizes()), " vs ",
              shape_str(dst.sizes()));
  GRAFT_DISPATCH_ALL(dst.dtype(), "copy", [&] { copy_to<scalar_t>(src, dst); });
}

void fill_cpu(const Tensor& out, double value) {
  GRAFT_DISPATCH_ALL(out.dtype(), "fill", [&] {
    const scalar_t v = convert<scalar_t>(value);
    StridedLoop<1> loop(out.sizes(), {&out});
    loop.run([v](std::array<char*, 1>& p, const std::array<int64_t, 1>& st, int64_t n) {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<scalar_t*>(p[0] + i * st[0]) = v;
    });
  });
}

void where_cpu(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  GRAFT_DISPATCH_ALL(out.dtype(), "where", [&] {
    map_elements<scalar_t, bool, scalar_t, scalar_t>(
        out, {&cond, &a, &b}, [](bool c, scalar_t x, scalar_t y) { return c ? x : y; });
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(copy, CPU, copy_cpu);
GRAFT_REGISTER_KERNEL(fill, CPU, fill_cpu);
GRAFT_REGISTER_KERNEL(where, CPU, where_cpu);

}  // namespace graft::cpu
