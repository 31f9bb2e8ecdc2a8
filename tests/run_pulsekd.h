// Runs the built pulsekd binary with arguments and captures its exit code and output
// (stdout and stderr together), for tests of the command line.
#pragma once
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace pulsekd::testing {

inline const std::string& pulsekd_binary() {
  static const std::string bin = std::string(PULSEKD_BINARY_DIR) + "/pulsekd";
  return bin;
}

struct CommandResult {
  int code;         // exit status, -1 if the process did not exit normally
  std::string out;  // what it printed: run_pulsekd captures stdout + stderr, run_shell what the command line sends to stdout
};

// Runs a shell command line (sh -c) and captures its standard output.
inline CommandResult run_shell(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

inline CommandResult run_pulsekd(const std::string& args) { return run_shell(pulsekd_binary() + " " + args + " 2>&1"); }

}  // namespace pulsekd::testing
