// The one definition of the optimizer kernel tables declared in optim/kernels.h.
#include "optim/kernels.h"

namespace graft {

GRAFT_DEFINE_KERNEL(sgd_step, optim::SGDStepFn)
GRAFT_DEFINE_KERNEL(adam_step, optim::AdamStepFn)

}  // namespace graft
