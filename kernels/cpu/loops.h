// Strided N-ary loops for CPU element-wise kernels.
//
// StridedLoop walks a shape over N operands (operand 0 is usually the output),
// merges dimensions that are contiguous in every operand (coalesce_dims,
// core/strided.h), and hands the innermost runs to a callback:
// inner(ptrs, byte_strides, n). Element ranges are split across threads with
// parallel_for. map_elements runs an element-wise functor over it, and
// convert is the element conversion every CPU kernel uses.
#pragma once

#include <array>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/convert.h"
#include "core/parallel.h"
#include "core/strided.h"
#include "core/tensor.h"

namespace graft::cpu {

template <size_t N>
class StridedLoop {
 public:
  StridedLoop(const Shape& shape, const std::array<const Tensor*, N>& operands) {
    CoalescedDims<N> m = coalesce_dims<N>(shape, operands);  // core/strided.h
    sizes_ = std::move(m.sizes);
    for (size_t k = 0; k < N; ++k) {
      strides_[k] = std::move(m.strides[k]);
      for (int64_t& st : strides_[k]) st *= static_cast<int64_t>(operands[k]->itemsize());
      base_[k] = static_cast<char*>(operands[k]->raw_data());
    }
    numel_ = shape_numel(shape);
  }

  int64_t numel() const { return numel_; }
  // True when every operand is contiguous with element stride == byte size `item[k]`.
  bool contiguous(const std::array<int64_t, N>& item) const {
    if (sizes_.size() > 1) return false;
    if (sizes_.empty()) return true;
    for (size_t k = 0; k < N; ++k)
      if (strides_[k][0] != item[k]) return false;
    return true;
  }
  const std::array<char*, N>& base() const { return base_; }

  // inner(std::array<char*,N>& ptrs, const std::array<int64_t,N>& strides, int64_t n)
  template <typename Inner>
  void run(Inner&& inner, int64_t grain = 32768) const {
    if (numel_ == 0) return;
    if (sizes_.empty()) {
      std::array<char*, N> p = base_;
      std::array<int64_t, N> st{};
      inner(p, st, 1);
      return;
    }
    parallel_for(0, numel_, grain,
                 [&](int64_t begin, int64_t end) { run_range(begin, end, inner); });
  }

 private:
  template <typename Inner>
  void run_range(int64_t begin, int64_t end, Inner& inner) const {
    const size_t nd = sizes_.size();
    const int64_t inner_size = sizes_[nd - 1];
    std::vector<int64_t> idx(nd, 0);
    int64_t rem = begin;
    for (size_t d = nd; d-- > 0;) {
      idx[d] = rem % sizes_[d];
      rem /= sizes_[d];
    }
    std::array<int64_t, N> inner_strides;
    for (size_t k = 0; k < N; ++k) inner_strides[k] = strides_[k][nd - 1];
    int64_t pos = begin;
    while (pos < end) {
      std::array<char*, N> p = base_;
      for (size_t k = 0; k < N; ++k)
        for (size_t d = 0; d < nd; ++d) p[k] += idx[d] * strides_[k][d];
      const int64_t n = std::min(inner_size - idx[nd - 1], end - pos);
      inner(p, inner_strides, n);
      pos += n;
      idx[nd - 1] += n;
      for (size_t d = nd - 1; d > 0 && idx[d] == sizes_[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  }

  std::vector<int64_t> sizes_;
  std::array<std::vector<int64_t>, N> strides_;
  std::array<char*, N> base_{};
  int64_t numel_ = 0;
};

template <typename To, typename From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return float_to_int<To>(v);  // one rule on every device (core/convert.h)
  } else {
    return static_cast<To>(v);
  }
}

// Runs f(out_ptr, in_ptrs...) element-wise with a fast contiguous path that the
// compiler can vectorise. Op is a compile-time functor per call site.
template <typename Out, typename... In, typename F>
void map_elements(const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& ins, F f) {
  constexpr size_t N = sizeof...(In) + 1;
  std::array<const Tensor*, N> ops{};
  ops[0] = &out;
  for (size_t i = 0; i < sizeof...(In); ++i) ops[i + 1] = ins[i];
  StridedLoop<N> loop(out.sizes(), ops);
  loop.run([&](std::array<char*, N>& p, const std::array<int64_t, N>& st, int64_t n) {
    constexpr std::array<int64_t, N> item{static_cast<int64_t>(sizeof(Out)),
                                          static_cast<int64_t>(sizeof(In))...};
    bool contig = true;
    for (size_t k = 0; k < N; ++k) contig = contig && st[k] == item[k];
    if (contig) {
      Out* o = reinterpret_cast<Out*>(p[0]);
      [&]<size_t... I>(std::index_sequence<I...>) {
        std::tuple<const In*...> in{reinterpret_cast<const In*>(p[I + 1])...};
        for (int64_t i = 0; i < n; ++i) o[i] = f(std::get<I>(in)[i]...);
      }
      (std::index_sequence_for<In...>{});
    } else {
      for (int64_t i = 0; i < n; ++i) {
        [&]<size_t... I>(std::index_sequence<I...>) {
          *reinterpret_cast<Out*>(p[0] + i * st[0]) =
              f(*reinterpret_cast<const In*>(p[I + 1] + i * st[I + 1])...);
        }
        (std::index_sequence_for<In...>{});
      }
    }
  });
}

}  // namespace graft::cpu
