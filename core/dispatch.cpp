// The one definition of every kernel table declared in core/kernels.h.
#include "core/kernels.h"

namespace graft {

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
// NN-KERNEL-DEFINITIONS

}  // namespace graft
