// What a test needs from outside the repository: ../shared (the released checkpoints, PyTorch
// reference outputs, the SPC 2015 recordings) and tools (the ARM toolchain, QEMU). A test case
// asks first and returns when the answer is false:
//
//   if (!require_shared(shared_path("reference/pulse_student_fold1.pt"), "the released student")) return;
//
// A missing file or tool is a reported skip: the case is listed and the test executable exits 77
// (tests/doctest_main.cpp), which CTest shows as "Skipped", not "Passed". With
// PULSEKD_REQUIRE_SHARED=1 in the environment (.ci/run sets it) it is a failure instead.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace pulsekd::testing {

// ../shared as CMake found it, or $PULSEKD_SHARED_DIR when set (to run the suite as if ../shared
// were elsewhere or absent, without touching it).
inline std::string shared_dir() {
  const char* env = std::getenv("PULSEKD_SHARED_DIR");
  return env && *env ? std::string(env) : std::string(PULSEKD_SHARED_DIR);
}
inline std::string shared_path(const std::string& relative) { return shared_dir() + "/" + relative; }

// True when missing data or tools must fail the run (PULSEKD_REQUIRE_SHARED set and not "0").
inline bool shared_data_required() {
  const char* env = std::getenv("PULSEKD_REQUIRE_SHARED");
  return env && *env && std::string(env) != "0";
}

// The running test case's name (kept by a listener in tests/doctest_main.cpp).
inline std::string& current_test_case() {
  static std::string name;
  return name;
}
// "<test case>: <what is missing>" for every skip of this run, printed by tests/doctest_main.cpp.
inline std::vector<std::string>& skipped_cases() {
  static std::vector<std::string> list;
  return list;
}

// Records a skip and returns false, or fails the test case when data is required.
inline bool skip_or_fail(const std::string& missing) {
  if (shared_data_required()) FAIL(missing << " (PULSEKD_REQUIRE_SHARED is set: missing data or tools fail the run)");
  MESSAGE("SKIPPED: " << missing);
  skipped_cases().push_back(current_test_case() + ": " + missing);
  return false;
}

// True when `path` exists; otherwise a skip (or failure) naming `what` and the path.
inline bool require_shared(const std::string& path, const std::string& what) {
  if (std::filesystem::exists(path)) return true;
  return skip_or_fail(what + ": " + path + " is absent");
}

// True when `command` is on PATH; otherwise a skip (or failure) naming it.
inline bool require_tool(const std::string& command) {
  if (std::system(("command -v '" + command + "' >/dev/null 2>&1").c_str()) == 0) return true;
  return skip_or_fail(command + " is not on PATH (scripts/install-deps installs it)");
}

}  // namespace pulsekd::testing
