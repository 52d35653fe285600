// The flags that decide which parameters train, shared by `graft train` and
// `graft inspect --graph` (train::apply_freeze_flags applies them).
#pragma once

#include <CLI/CLI.hpp>

#include "train/run.h"

namespace graft::cli {

inline void add_freeze_flags(CLI::App& app, train::TrainConfig& c) {
  app.add_option("--mode", c.mode, "preset: scratch | finetune | feature-extract")
      ->check(CLI::IsMember({"scratch", "finetune", "feature-extract"}));
  app.add_option("--freeze", c.freeze, "freeze parameters matching GLOB ('*' matches dots too)");
}

}  // namespace graft::cli
