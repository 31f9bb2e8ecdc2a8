// Each cli/cmd_*.cpp registers its subcommands through a static CommandRegistrar, so adding a
// command never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/atomic_file.h"

namespace pulsekd::cli {

using Registration = std::function<void(CLI::App& app)>;

inline std::vector<Registration>& registrations() {
  static std::vector<Registration> all;
  return all;
}

struct CommandRegistrar {
  explicit CommandRegistrar(Registration r) { registrations().push_back(std::move(r)); }
};

// Numeric flag checks. Unlike CLI::Range / CLI::PositiveNumber they refuse NaN (which compares
// false with every bound) and say plainly what was expected, without printing a 300-digit bound.
inline CLI::Validator number_check(double lo, double hi, bool lo_open, const std::string& expected) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::out_of_range&) {
          return "expected " + expected + ", got '" + s + "' (beyond the range of a double)";
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != s.size()) return "expected " + expected + ", got '" + s + "' (not a number)";
        if (!std::isfinite(v) || v < lo || v > hi || (lo_open && v == lo)) return "expected " + expected + ", got '" + s + "'";
        return "";
      },
      expected);
}
inline std::string bound_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
// A finite number in [lo, hi].
inline CLI::Validator finite_range(double lo, double hi) {
  return number_check(lo, hi, false, "a number in [" + bound_text(lo) + ", " + bound_text(hi) + "]");
}
inline CLI::Validator finite_positive() { return number_check(0, HUGE_VAL, true, "a finite number > 0"); }
inline CLI::Validator finite_non_negative() { return number_check(0, HUGE_VAL, false, "a finite number >= 0"); }

// An output file flag, checked before any work: an existing target must be a regular file or a
// link to one (engine/atomic_file.h output_target: never a directory, device, FIFO or socket);
// "-" is standard output where the command accepts it (stdout_ok), refused elsewhere.
inline CLI::Validator output_file(bool stdout_ok) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        if (is_stdout_path(s)) return stdout_ok ? "" : "'-' (standard output) is not accepted here: give a file";
        try {
          output_target(s);
        } catch (const std::exception& e) {
          return e.what();
        }
        return "";
      },
      stdout_ok ? "FILE or -" : "FILE");
}

}  // namespace pulsekd::cli
