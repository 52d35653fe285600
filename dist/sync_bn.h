// SyncBatchNorm for data-parallel training (torch.nn.SyncBatchNorm's
// semantics): in training mode each BatchNorm2d normalises with the mean and
// variance of the whole world's batch, all-reduced across ranks, and backward
// all-reduces the matching gradient sums, so 2 ranks x batch 8 train as one
// process x batch 16. Running statistics are updated from the world's
// statistics (unbiased variance over all ranks' examples).
#pragma once

#include "core/tensor.h"
#include "dist/process_group.h"
#include "nn/module.h"

namespace graft::dist {

// Sum over ranks, differentiable: its backward is again a sum over ranks
// (d(sum_s L_s)/dx_r = sum_s dL_s/dy). CPU or CUDA (staged through host).
Tensor all_reduce_sum(ProcessGroup& pg, const Tensor& x);

// Makes every BatchNorm2d of `model` synchronise its training statistics
// over `pg`. Returns the number of layers changed.
int64_t enable_sync_batch_norm(ProcessGroup& pg, nn::Module& model);

}  // namespace graft::dist
