// Sub-command registry for the `graft` binary. Each cli/cmd_*.cpp file
// registers its sub-command with GRAFT_COMMAND; cli/main.cpp builds the CLI11
// app from the registry, so adding a command touches no other file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace graft::cli {

struct Command {
  std::string name;
  std::string help;
  // Adds options to `sub` and returns the action to run after parsing.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& registry();

struct Registrar {
  explicit Registrar(Command c) { registry().push_back(std::move(c)); }
};

}  // namespace graft::cli

#define GRAFT_COMMAND_CONCAT2(a, b) a##b
#define GRAFT_COMMAND_CONCAT(a, b) GRAFT_COMMAND_CONCAT2(a, b)
#define GRAFT_COMMAND(NAME, HELP, SETUP) \
  static ::graft::cli::Registrar GRAFT_COMMAND_CONCAT(graft_command_, __LINE__)({NAME, HELP, SETUP})
