// Internal: runs one emulated kernel launch on the worker pool (block.cpp).
#pragma once

#include <string>

#include "cuda_runtime.h"

namespace graft::cuda::emu {
// Runs every block; returns the first synccheck error ("" when none).
std::string run_launch(const Launch& launch);
}  // namespace graft::cuda::emu
