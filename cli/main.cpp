// The `graft` command line: dispatches to the sub-commands registered in
// cli/cmd_*.cpp. Every failure prints one clear message and exits non-zero.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "core/error.h"

namespace graft::cli {
std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace graft::cli

int main(int argc, char** argv) {
  using graft::cli::registry;
  CLI::App app{"graft: fine-tune pretrained CNNs with a small native engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("graft ") + GRAFT_VERSION);
  std::sort(registry().begin(), registry().end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::function<int()> action;
  for (auto& cmd : registry()) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.help);
    auto run = cmd.setup(*sub);
    sub->callback([&action, run] { action = run; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action ? action() : 1;
  } catch (const std::exception& e) {  // graft::Error included
    // One write: under mpirun a rank's stderr is forwarded in the chunks it
    // was written in, and the launcher's own abort notice can land between two.
    const std::string line = std::string("graft: error: ") + e.what() + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
    return 1;
  }
}
