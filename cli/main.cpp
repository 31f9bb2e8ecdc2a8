// pulsekd: train, distil, evaluate and deploy wrist heart-rate models.
#include <cstdio>
#include <exception>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"pulsekd: train, distil, evaluate and deploy PPG heart-rate models (PULSE)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  for (auto& reg : pulsekd::cli::registrations()) reg(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // Subcommand callbacks run inside parse(); their failures are user-facing errors.
    std::fprintf(stderr, "pulsekd: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
