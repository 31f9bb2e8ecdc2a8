// main() of every test executable: runs doctest, then, when no case failed but some were
// skipped for missing data or tools (tests/shared_data.h), lists them and exits 77, the
// SKIP_RETURN_CODE CMake gives every test, so CTest reports "Skipped" instead of "Passed".
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/shared_data.h"

namespace {

// Keeps the running test case's name for the skip list (doctest has no public accessor).
struct CurrentTestCase : doctest::IReporter {
  explicit CurrentTestCase(const doctest::ContextOptions&) {}
  void test_case_start(const doctest::TestCaseData& tc) override { pulsekd::testing::current_test_case() = tc.m_name; }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("current_test_case", 1, CurrentTestCase);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int status = context.run();
  if (context.shouldExit() || status != 0) return status;
  const auto& skipped = pulsekd::testing::skipped_cases();
  if (skipped.empty()) return 0;
  // One line per case, "SKIPPED (executable) case: what is missing": `make test` greps them.
  const std::string exe = std::filesystem::path(argv[0]).filename().string();
  std::printf("SKIPPED: %zu test case(s) lacked data or tools (every other case ran and passed):\n", skipped.size());
  for (const std::string& s : skipped) std::printf("SKIPPED (%s) %s\n", exe.c_str(), s.c_str());
  std::fflush(stdout);
  return 77;
}
