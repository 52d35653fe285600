// Everything for fine-tuning control: optimizers, schedulers, clipping and
// parameter selection.
#pragma once

#include "optim/clip.h"
#include "optim/optimizer.h"
#include "optim/params.h"
#include "optim/scheduler.h"
