// CPU linear layer (Eigen GEMM) and the bias gradient shared by conv and linear.
#include <vector>

#include "core/kernels.h"
#include "core/parallel.h"
#include "kernels/cpu/gemm.h"

namespace graft::cpu {

namespace {

template <typename T>
void linear_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                    const Tensor& out) {
  const int64_t N = input.size(0), K = input.size(1), O = weight.size(0);
  T* o = out.data_ptr<T>();
  if (bias.defined()) {
    const T* b = bias.data_ptr<T>();
    for (int64_t n = 0; n < N; ++n) std::copy(b, b + O, o + n * O);
  }
  gemm(false, true, N, O, K, input.data_ptr<T>(), K, weight.data_ptr<T>(), K, o, O, bias.defined());
}

template <typename T>
void linear_backward_input(const Tensor& grad_out, const Tensor& weight, const Tensor& grad_input) {
  const int64_t N = grad_out.size(0), O = grad_out.size(1), K = weight.size(1);
  gemm(false, false, N, K, O, grad_out.data_ptr<T>(), O, weight.data_ptr<T>(), K,
       grad_input.data_ptr<T>(), K, false);
}

template <typename T>
void linear_backward_weight(const Tensor& grad_out, const Tensor& input,
                            const Tensor& grad_weight) {
  const int64_t N = grad_out.size(0), O = grad_out.size(1), K = input.size(1);
  gemm(true, false, O, K, N, grad_out.data_ptr<T>(), O, input.data_ptr<T>(), K,
       grad_weight.data_ptr<T>(), K, false);
}

// grad_out viewed as [N, C, S]; grad_bias[c] = sum over n and s.
template <typename T>
void bias_backward(const Tensor& grad_out, const Tensor& grad_bias) {
  const int64_t N = grad_out.size(0), C = grad_out.size(1);
  const int64_t S = grad_out.numel() / std::max<int64_t>(N * C, 1);
  const T* g = grad_out.data_ptr<T>();
  T* gb = grad_bias.data_ptr<T>();
  parallel_for(0, C, std::max<int64_t>(1, 16384 / std::max<int64_t>(N * S, 1)),
               [&](int64_t c0, int64_t c1) {
                 for (int64_t c = c0; c < c1; ++c) {
                   double acc = 0;
                   for (int64_t n = 0; n < N; ++n) {
                     const T* row = g + (n * C + c) * S;
                     for (int64_t s = 0; s < S; ++s) acc += static_cast<double>(row[s]);
                   }
                   gb[c] = static_cast<T>(acc);
                 }
               });
}

void linear_forward_cpu(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "linear",
                       [&] { linear_forward<scalar_t>(input, weight, bias, out); });
}
void linear_backward_input_cpu(const Tensor& grad_out, const Tensor& weight,
                               const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "linear_backward_input",
                       [&] { linear_backward_input<scalar_t>(grad_out, weight, grad_input); });
}
void linear_backward_weight_cpu(const Tensor& grad_out, const Tensor& input,
                                const Tensor& grad_weight) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "linear_backward_weight",
                       [&] { linear_backward_weight<scalar_t>(grad_out, input, grad_weight); });
}
void bias_backward_cpu(const Tensor& grad_out, const Tensor& grad_bias) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "bias_backward",
                       [&] { bias_backward<scalar_t>(grad_out, grad_bias); });
}

}  // namespace

GRAFT_REGISTER_KERNEL(linear_forward, CPU, linear_forward_cpu);
GRAFT_REGISTER_KERNEL(linear_backward_input, CPU, linear_backward_input_cpu);
GRAFT_REGISTER_KERNEL(linear_backward_weight, CPU, linear_backward_weight_cpu);
GRAFT_REGISTER_KERNEL(bias_backward, CPU, bias_backward_cpu);

}  // namespace graft::cpu
