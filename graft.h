// The umbrella header for programs that use graft as a library:
//
//   #include <graft/graft.h>
//
// brings in tensors and ops, autograd, nn modules and models,
// graft::nn::functional, optimizers and schedulers, checkpoint I/O, data
// loading, the training loop and its telemetry, and data-parallel training
// over MPI (dist/). Narrower headers (<graft/nn/models/resnet.h>)
// work too. Link with CMake: find_package(graft) and graft::graft.
#pragma once

#include "core/autograd.h"
#include "core/cuda.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/generator.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "dist/ddp.h"
#include "dist/process_group.h"
#include "dist/sync_bn.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/models/mobilenet_v2.h"
#include "nn/models/registry.h"
#include "nn/models/resnet.h"
#include "nn/module.h"
#include "optim/clip.h"
#include "optim/optim.h"
#include "optim/scheduler.h"
#include "train/feature_cache.h"
#include "train/fit.h"
#include "train/telemetry.h"
