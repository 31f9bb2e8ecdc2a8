// Each cli/cmd_*.cpp registers its subcommands through a static CommandRegistrar, so adding a
// command never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <functional>
#include <string>
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

// A number in [lo, hi]; unlike CLI::Range it also refuses NaN (which compares false with both).
inline CLI::Validator finite_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          return "expected a number, got '" + s + "'";
        }
        if (used != s.size() || !std::isfinite(v) || v < lo || v > hi)
          return "expected a finite number in [" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "], got '" + s + "'";
        return "";
      },
      "FINITE in [" + CLI::detail::to_string(lo) + " - " + CLI::detail::to_string(hi) + "]");
}

}  // namespace pulsekd::cli
