// Fused multi-tensor SGD / Adam(W) steps (see kernels/cuda/optim.h).
// Rule: this file (nvcc --fmad=false, emulated -ffp-contract=off) and
// kernels/cpu/optim.cpp (-ffp-contract=off) contract no a + b*c into an FMA
// (CMakeLists.txt), so every step is bit-identical to the CPU kernels
// (tests/test_cuda_ops.cpp compares them with tolerance 0). A launch
// covers up to kMaxTensors parameters: their pointers, sizes and per-tensor
// scalars travel in one struct passed by value (well under the 4 KiB kernel
// parameter limit); blockIdx.y selects the tensor, blocks grid-stride over it.
#include <array>
#include <cmath>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"
#include "kernels/cuda/optim.h"

#if __has_include("optim/kernels.h")
#include "optim/kernels.h"
#define GRAFT_CUDA_HAVE_OPTIM_TABLES 1
#endif

namespace graft::cuda {

namespace {

constexpr int kMaxTensors = 24;

template <typename T>
struct SgdList {
  T* p[kMaxTensors];
  const T* g[kMaxTensors];
  T* buf[kMaxTensors];
  int64_t n[kMaxTensors];
};

template <typename T>
__global__ void sgd_kernel(SgdList<T> l, T wd, T mom, T one_minus_damp, T neg_lr, bool use_wd,
                           bool use_buf, bool init_buffers, bool nesterov, bool maximize) {
  const int k = blockIdx.y;
  T* p = l.p[k];
  const T* g = l.g[k];
  T* buf = l.buf[k];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < l.n[k];
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    T d = maximize ? -g[i] : g[i];
    if (use_wd) d = d + wd * p[i];
    if (use_buf) {
      if (init_buffers) {
        buf[i] = d;
      } else {
        buf[i] = buf[i] * mom;
        buf[i] = buf[i] + one_minus_damp * d;
      }
      d = nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] = p[i] + neg_lr * d;
  }
}

template <typename T>
struct AdamList {
  T* p[kMaxTensors];
  const T* g[kMaxTensors];
  T* m[kMaxTensors];
  T* v[kMaxTensors];
  T* vmax[kMaxTensors];
  int64_t n[kMaxTensors];
  T bc2_sqrt[kMaxTensors];
  T neg_step_size[kMaxTensors];
};

template <typename T>
__global__ void adam_kernel(AdamList<T> l, T b1, T one_minus_b1, T b2, T one_minus_b2, T eps, T wd,
                            T decay, bool l2, bool decoupled, bool maximize) {
  const int k = blockIdx.y;
  T* p = l.p[k];
  const T* g = l.g[k];
  T* m = l.m[k];
  T* v = l.v[k];
  T* vmax = l.vmax[k];
  const T bc2_sqrt = l.bc2_sqrt[k], neg_step_size = l.neg_step_size[k];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < l.n[k];
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    T gi = maximize ? -g[i] : g[i];
    if (decoupled) {
      p[i] = p[i] * decay;
    } else if (l2) {
      gi = gi + wd * p[i];
    }
    m[i] = m[i] * b1;
    m[i] = m[i] + one_minus_b1 * gi;
    v[i] = v[i] * b2;
    v[i] = v[i] + one_minus_b2 * gi * gi;
    T second = v[i];
    if (vmax) {
      if (::isnan(v[i]) || v[i] > vmax[i]) vmax[i] = v[i];
      second = vmax[i];
    }
    const T denom = ::sqrt(second) / bc2_sqrt + eps;
    p[i] = p[i] + neg_step_size * m[i] / denom;
  }
}

// Each list holds one tensor per parameter (or is empty), matching the
// parameter's device, dtype and size. Parameters may mix float32 and float64:
// the steps below launch once per dtype.
void check_lists(const std::vector<Tensor>& params,
                 std::initializer_list<const std::vector<Tensor>*> lists, const char* name) {
  GRAFT_CHECK(!params.empty(), name, ": empty parameter list");
  const Device device = params[0].device();
  GRAFT_CHECK(device.is_cuda(), name, ": parameters are on ", device.str());
  for (const auto* l : lists) {
    if (l->empty()) continue;
    GRAFT_CHECK(l->size() == params.size(), name, ": list lengths differ (", l->size(), " vs ",
                params.size(), ")");
  }
  for (size_t k = 0; k < params.size(); ++k) {
    const Tensor& p = params[k];
    GRAFT_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, name,
                ": unsupported dtype ", dtype_name(p.dtype()), " for parameter ", k);
    for (const auto* l : lists) {
      if (l->empty()) continue;
      const Tensor& t = (*l)[k];
      GRAFT_CHECK(t.defined() && t.device() == device && t.dtype() == p.dtype() &&
                      t.is_contiguous() && t.numel() == p.numel(),
                  name, ": tensor ", k, " must be a contiguous ", dtype_name(p.dtype()), " on ",
                  device.str(), " with ", p.numel(), " elements, got ",
                  t.defined() ? t.meta_str() : std::string("undefined"));
    }
  }
}

// The entries of `v` at `idx` (an empty list stays empty).
template <typename T>
std::vector<T> pick(const std::vector<T>& v, const std::vector<size_t>& idx) {
  std::vector<T> out;
  if (v.empty()) return out;
  for (size_t i : idx) out.push_back(v[i]);
  return out;
}
// Parameter indices by dtype: {float32 indices, float64 indices}.
std::array<std::vector<size_t>, 2> by_dtype(const std::vector<Tensor>& params) {
  std::array<std::vector<size_t>, 2> out;
  for (size_t k = 0; k < params.size(); ++k)
    out[params[k].dtype() == DType::Float64 ? 1 : 0].push_back(k);
  return out;
}

dim3 list_grid(const int64_t* n, int count) {
  int64_t largest = 1;
  for (int i = 0; i < count; ++i) largest = std::max(largest, n[i]);
  // Per tensor at most 1024 blocks: enough to fill the GPU across the list.
  return dim3(std::min<unsigned>(grid_for(largest, kBlock), 1024u), static_cast<unsigned>(count));
}

template <typename T>
void sgd_typed(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& bufs, const SgdStepParams& h) {
  const int device = params[0].device().index;
  DeviceGuard guard(device);
  for (size_t start = 0; start < params.size(); start += kMaxTensors) {
    SgdList<T> l{};
    const int count = static_cast<int>(std::min<size_t>(kMaxTensors, params.size() - start));
    for (int i = 0; i < count; ++i) {
      l.p[i] = params[start + i].data_ptr<T>();
      l.g[i] = grads[start + i].data_ptr<T>();
      l.buf[i] = bufs.empty() ? nullptr : bufs[start + i].data_ptr<T>();
      l.n[i] = params[start + i].numel();
    }
    launch<sgd_kernel<T>>(
        list_grid(l.n, count), kBlock, 0, current_stream(device), l, static_cast<T>(h.weight_decay),
        static_cast<T>(h.momentum), static_cast<T>(1.0 - h.dampening), static_cast<T>(-h.lr),
        h.weight_decay != 0, !bufs.empty(), h.init_buffers, h.nesterov, h.maximize);
    GRAFT_CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void adam_typed(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                const std::vector<Tensor>& vmax, const std::vector<int64_t>& steps,
                const AdamStepParams& h) {
  const int device = params[0].device().index;
  DeviceGuard guard(device);
  for (size_t start = 0; start < params.size(); start += kMaxTensors) {
    AdamList<T> l{};
    const int count = static_cast<int>(std::min<size_t>(kMaxTensors, params.size() - start));
    for (int i = 0; i < count; ++i) {
      const size_t k = start + i;
      GRAFT_CHECK(steps[k] >= 1, "adam_step: step counts start at 1, got ", steps[k]);
      l.p[i] = params[k].data_ptr<T>();
      l.g[i] = grads[k].data_ptr<T>();
      l.m[i] = m[k].data_ptr<T>();
      l.v[i] = v[k].data_ptr<T>();
      l.vmax[i] = vmax.empty() ? nullptr : vmax[k].data_ptr<T>();
      l.n[i] = params[k].numel();
      // Scalars exactly as torch computes them in Python doubles.
      const double bc1 = 1 - std::pow(h.beta1, static_cast<double>(steps[k]));
      const double bc2 = 1 - std::pow(h.beta2, static_cast<double>(steps[k]));
      l.bc2_sqrt[i] = static_cast<T>(std::sqrt(bc2));
      l.neg_step_size[i] = static_cast<T>(-(h.lr / bc1));
    }
    launch<adam_kernel<T>>(
        list_grid(l.n, count), kBlock, 0, current_stream(device), l, static_cast<T>(h.beta1),
        static_cast<T>(1 - h.beta1), static_cast<T>(h.beta2), static_cast<T>(1 - h.beta2),
        static_cast<T>(h.eps), static_cast<T>(h.weight_decay),
        static_cast<T>(1 - h.lr * h.weight_decay), !h.decoupled_weight_decay && h.weight_decay != 0,
        h.decoupled_weight_decay, h.maximize);
    GRAFT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStepParams& h) {
  if (params.empty()) return;
  check_lists(params, {&params, &grads, &momentum_buffers}, "sgd_step");
  GRAFT_CHECK(grads.size() == params.size(), "sgd_step: one gradient per parameter");
  GRAFT_CHECK(h.momentum == 0 || momentum_buffers.size() == params.size(),
              "sgd_step: momentum needs one buffer per parameter");
  const auto groups = by_dtype(params);
  if (!groups[0].empty())
    sgd_typed<float>(pick(params, groups[0]), pick(grads, groups[0]),
                     pick(momentum_buffers, groups[0]), h);
  if (!groups[1].empty())
    sgd_typed<double>(pick(params, groups[1]), pick(grads, groups[1]),
                      pick(momentum_buffers, groups[1]), h);
}

void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
               const std::vector<Tensor>& max_exp_avg_sqs, const std::vector<int64_t>& steps,
               const AdamStepParams& h) {
  if (params.empty()) return;
  check_lists(params, {&params, &grads, &exp_avgs, &exp_avg_sqs, &max_exp_avg_sqs}, "adam_step");
  GRAFT_CHECK(grads.size() == params.size() && exp_avgs.size() == params.size() &&
                  exp_avg_sqs.size() == params.size() && steps.size() == params.size(),
              "adam_step: one gradient, state pair and step count per parameter");
  GRAFT_CHECK(!h.amsgrad || max_exp_avg_sqs.size() == params.size(),
              "adam_step: amsgrad needs max_exp_avg_sqs");
  const std::vector<Tensor> none;
  const std::vector<Tensor>& vmax = h.amsgrad ? max_exp_avg_sqs : none;
  const auto groups = by_dtype(params);
  for (int d = 0; d < 2; ++d) {
    const std::vector<size_t>& g = groups[d];
    if (g.empty()) continue;
    if (d == 0) {
      adam_typed<float>(pick(params, g), pick(grads, g), pick(exp_avgs, g), pick(exp_avg_sqs, g),
                        pick(vmax, g), pick(steps, g), h);
    } else {
      adam_typed<double>(pick(params, g), pick(grads, g), pick(exp_avgs, g), pick(exp_avg_sqs, g),
                         pick(vmax, g), pick(steps, g), h);
    }
  }
}

#ifdef GRAFT_CUDA_HAVE_OPTIM_TABLES
namespace {
void sgd_table_entry(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                     const std::vector<Tensor>& bufs, const optim::SGDHyper& h) {
  sgd_step(params, grads, bufs,
           {h.lr, h.momentum, h.dampening, h.weight_decay, h.nesterov, h.maximize, h.init_buffers});
}
void adam_table_entry(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                      const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                      const std::vector<Tensor>& vmax, const std::vector<int64_t>& steps,
                      const optim::AdamHyper& h) {
  adam_step(params, grads, m, v, vmax, steps,
            {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.amsgrad, h.maximize,
             h.decoupled_weight_decay});
}
}  // namespace
GRAFT_REGISTER_CUDA_KERNEL(sgd_step, sgd_table_entry);
GRAFT_REGISTER_CUDA_KERNEL(adam_step, adam_table_entry);
#endif

}  // namespace graft::cuda
