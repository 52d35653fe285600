// The `graft` command line: dispatches to the sub-commands registered in
// cli/cmd_*.cpp. Every failure prints one clear message and exits non-zero.
#include <algorithm>
#include <iostream>

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
  } catch (const graft::Error& e) {
    std::cerr << "graft: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "graft: error: " << e.what() << "\n";
    return 1;
  }
}
