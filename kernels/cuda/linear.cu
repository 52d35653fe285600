// CUDA linear layer and the bias gradient shared by conv and linear, through
// the bmm, binary and reduce kernels. The CPU twin is kernels/cpu/linear.cpp.
#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

// grad_out [N, C, *] is contiguous: the sum over N and the trailing dims is
// the reduce kernel's row c of [N, C, S] read in place (inner = S).
void bias_backward_cuda(const Tensor& grad_out, const Tensor& grad_bias) {
  GRAFT_CHECK(
      grad_out.dim() >= 2 && grad_out.is_contiguous() && grad_bias.numel() == grad_out.size(1),
      "bias_backward: expects a contiguous [N, C, *] gradient and C outputs");
  int64_t S = 1;
  for (int64_t d = 2; d < grad_out.dim(); ++d) S *= grad_out.sizes()[d];
  const ReduceRows rr{grad_out.size(1), grad_out.size(0) * S, S};
  kernel::reduce(grad_out.device())(ReduceOp::Sum, grad_out, rr, grad_bias);
}

// A matrix as a batch of one for the bmm kernel; detached, so that the views
// record no autograd history.
Tensor batch1(const Tensor& m) { return m.detach().unsqueeze(0); }

void linear_forward_cuda(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& out) {
  kernel::bmm(x.device())(batch1(x), batch1(w.detach().t()), batch1(out), false);
  if (b.defined()) {
    const Tensor bb = b.detach().unsqueeze(0).expand(out.sizes());
    kernel::binary(x.device())(BinaryOp::Add, out, bb, out);
  }
}
void linear_backward_input_cuda(const Tensor& g, const Tensor& w, const Tensor& gi) {
  kernel::bmm(g.device())(batch1(g), batch1(w), batch1(gi), false);
}
void linear_backward_weight_cuda(const Tensor& g, const Tensor& x, const Tensor& gw) {
  kernel::bmm(g.device())(batch1(g.detach().t()), batch1(x), batch1(gw), false);
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(bias_backward, bias_backward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(linear_forward, linear_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(linear_backward_input, linear_backward_input_cuda);
GRAFT_REGISTER_CUDA_KERNEL(linear_backward_weight, linear_backward_weight_cuda);

}  // namespace graft::cuda
