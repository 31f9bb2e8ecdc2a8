// Subject filters in dataset specs (datasets/subsets.h, ?select= / ?subjects=).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "datasets/folds.h"
#include "datasets/registry.h"
#include "datasets/subsets.h"

using namespace pulsekd::data;

namespace {

std::string error_of(const std::string& spec) {
  try {
    load_dataset(spec);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("select= keeps exactly the named subjects, in set order, windows and labels intact") {
  const WindowSet all = load_dataset("synth?subjects=6&minutes=1");
  const WindowSet sub = load_dataset("synth?subjects=6&minutes=1&select=5,2-3");
  REQUIRE(sub.subjects.size() == 3);
  const int picked[3] = {1, 2, 4};  // 0-based: subjects 2, 3, 5
  int64_t expected_windows = 0;
  for (int k = 0; k < 3; ++k) {
    const auto& src = all.subjects[picked[k]];
    const auto& dst = sub.subjects[k];
    CHECK(dst.name == src.name);
    CHECK(dst.num_windows == src.num_windows);
    CHECK(dst.first_window == expected_windows);
    for (int64_t w = 0; w < dst.num_windows; ++w) {
      CHECK(sub.hr[dst.first_window + w] == all.hr[src.first_window + w]);
      CHECK(sub.subject[dst.first_window + w] == k);
      CHECK(sub.window(dst.first_window + w)[100] == all.window(src.first_window + w)[100]);
    }
    expected_windows += dst.num_windows;
  }
  CHECK(sub.size() == expected_windows);
  CHECK(sub.x.size() == static_cast<size_t>(expected_windows) * kRows * kWindow);
  CHECK(sub.source == "synth?subjects=6&minutes=1&select=5,2-3");
  // Names work too, and folds run on the subset.
  const WindowSet by_name = load_dataset("synth?subjects=6&minutes=1&select=" + all.subjects[3].name);
  REQUIRE(by_name.subjects.size() == 1);
  CHECK(by_name.subjects[0].name == all.subjects[3].name);
  CHECK(loso_folds(sub, "auto").size() == 3);
}

TEST_CASE("bad subject filters are refused with the spec and the item named") {
  CHECK(error_of("synth?subjects=4&minutes=1&select=0").find("'0' is out of range") != std::string::npos);
  CHECK(error_of("synth?subjects=4&minutes=1&select=2-9").find("out of range") != std::string::npos);
  CHECK(error_of("synth?subjects=4&minutes=1&select=3-2").find("reversed range") != std::string::npos);
  CHECK(error_of("synth?subjects=4&minutes=1&select=S99").find("neither a subject name") != std::string::npos);
  CHECK(error_of("synth?subjects=4&minutes=1&select=,").find("empty") != std::string::npos);
  CHECK(error_of("synth?subjects=4&minutes=1&select=1").empty());
  const WindowSet ws = load_dataset("synth?subjects=3&minutes=1");
  CHECK_THROWS_AS(select_subjects(ws, {1, 0}), std::invalid_argument);
  CHECK_THROWS_AS(select_subjects(ws, {3}), std::invalid_argument);
}
