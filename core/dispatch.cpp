// The one definition of every kernel table declared in core/kernels.h, and
// the list of all tables (dispatch.h: kernel_tables()).
#include "core/kernels.h"

namespace graft {

namespace {
std::vector<const KernelTableBase*>& table_list() {
  static std::vector<const KernelTableBase*> list;
  return list;
}
}  // namespace

const std::vector<const KernelTableBase*>& kernel_tables() { return table_list(); }

bool list_kernel_table(const KernelTableBase* table) {
  table_list().push_back(table);
  return true;
}

GRAFT_DEFINE_KERNEL(unary, UnaryFn)
GRAFT_DEFINE_KERNEL(binary, BinaryFn)
GRAFT_DEFINE_KERNEL(binary_scalar, BinaryScalarFn)
GRAFT_DEFINE_KERNEL(copy, CopyFn)
GRAFT_DEFINE_KERNEL(fill, FillFn)
GRAFT_DEFINE_KERNEL(where, WhereFn)
GRAFT_DEFINE_KERNEL(reduce, ReduceFn)
GRAFT_DEFINE_KERNEL(arg_reduce, ArgReduceFn)
GRAFT_DEFINE_KERNEL(var, VarFn)
GRAFT_DEFINE_KERNEL(bmm, BmmFn)
GRAFT_DEFINE_KERNEL(index_select, IndexSelectFn)
GRAFT_DEFINE_KERNEL(index_add, IndexAddFn)
GRAFT_DEFINE_KERNEL(gather, GatherFn)
GRAFT_DEFINE_KERNEL(scatter_add, ScatterAddFn)
// nn kernels (front ends in core/ops_nn.cpp)
GRAFT_DEFINE_KERNEL(conv2d_forward, Conv2dForwardFn)
GRAFT_DEFINE_KERNEL(conv2d_backward_input, Conv2dBackwardInputFn)
GRAFT_DEFINE_KERNEL(conv2d_backward_weight, Conv2dBackwardWeightFn)
GRAFT_DEFINE_KERNEL(batch_norm_forward_train, BatchNormForwardTrainFn)
GRAFT_DEFINE_KERNEL(batch_norm_forward_eval, BatchNormForwardEvalFn)
GRAFT_DEFINE_KERNEL(batch_norm_backward, BatchNormBackwardFn)
GRAFT_DEFINE_KERNEL(max_pool2d_forward, MaxPool2dForwardFn)
GRAFT_DEFINE_KERNEL(max_pool2d_backward, MaxPool2dBackwardFn)
GRAFT_DEFINE_KERNEL(adaptive_avg_pool2d_forward, AdaptiveAvgPool2dForwardFn)
GRAFT_DEFINE_KERNEL(adaptive_avg_pool2d_backward, AdaptiveAvgPool2dBackwardFn)
GRAFT_DEFINE_KERNEL(softmax_forward, SoftmaxForwardFn)
GRAFT_DEFINE_KERNEL(softmax_backward, SoftmaxBackwardFn)
GRAFT_DEFINE_KERNEL(nll_loss_forward, NllLossForwardFn)
GRAFT_DEFINE_KERNEL(nll_loss_backward, NllLossBackwardFn)
GRAFT_DEFINE_KERNEL(cross_entropy_forward, CrossEntropyForwardFn)
GRAFT_DEFINE_KERNEL(cross_entropy_backward, CrossEntropyBackwardFn)
GRAFT_DEFINE_KERNEL(linear_forward, LinearForwardFn)
GRAFT_DEFINE_KERNEL(linear_backward_input, LinearBackwardInputFn)
GRAFT_DEFINE_KERNEL(linear_backward_weight, LinearBackwardWeightFn)
GRAFT_DEFINE_KERNEL(bias_backward, BiasBackwardFn)

}  // namespace graft
