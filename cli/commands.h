// Each cli/cmd_*.cpp registers its subcommands through a static CommandRegistrar, so adding a
// command never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace pulsekd::cli {

using Registration = std::function<void(CLI::App& app)>;

inline std::vector<Registration>& registrations() {
  static std::vector<Registration> all;
  return all;
}

struct CommandRegistrar {
  explicit CommandRegistrar(Registration r) { registrations().push_back(std::move(r)); }
};

}  // namespace pulsekd::cli
