// Dataset specs: subject filters (datasets/subsets.h, ?select= / ?subjects=) and the synthetic motion set.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "datasets/folds.h"
#include "datasets/recording.h"
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

TEST_CASE("motion spec: the synthetic non-running motion set, its seeds and options, bad options refused") {
  const WindowSet one = load_dataset("motion");
  REQUIRE(one.subjects.size() == 3);
  CHECK(one.subjects[0].name == "arm_sweep");
  CHECK(one.subjects[1].name == "rotation");
  CHECK(one.subjects[2].name == "punches");
  CHECK(one.subjects[0].num_windows == 147);  // (300 s * 32 - 256) / 64 + 1
  CHECK(one.hr[0] == doctest::Approx(72));    // the rest phase
  const WindowSet two = load_dataset("motion:1?seeds=2&gain=1.5&seconds=60");
  REQUIRE(two.subjects.size() == 6);
  CHECK(two.subjects[0].name == "arm_sweep_s1");
  CHECK(two.subjects[5].name == "punches_s2");
  CHECK(two.subjects[0].num_windows == 27);
  // seed 1 of a two-seed set has the one-seed set's accelerometer over its first 60 s (row 1 here)
  for (int64_t w = 0; w < 27; ++w) CHECK(two.window(w)[300] == one.window(w)[300]);
  // another seed, another recording; another gain, another PPG but the same accelerometer
  const WindowSet other = load_dataset("motion:2?seconds=60");
  const WindowSet gain = load_dataset("motion?gain=3&seconds=60");
  CHECK(other.window(20)[10] != one.window(20)[10]);
  CHECK(gain.window(20)[10] != one.window(20)[10]);
  CHECK(gain.window(20)[300] == one.window(20)[300]);
  CHECK(load_dataset("motion?select=punches").subjects.size() == 1);
  CHECK(error_of("motion?seeds=0").find("seeds") != std::string::npos);
  CHECK(error_of("motion?seeds=1.5").find("whole number") != std::string::npos);
  CHECK(error_of("motion?gain=-1").find("gain") != std::string::npos);
  CHECK(error_of("motion?seconds=4").find("seconds") != std::string::npos);
  CHECK(error_of("motion?speed=2").find("unknown option 'speed'") != std::string::npos);
  CHECK(error_of("motion:x").find("non-negative integer") != std::string::npos);
}

TEST_CASE("a second PPG channel follows its windows through subject selection and concatenation") {
  // Two recordings at 32 Hz of 20 s (7 windows each); PPG2 = sample index + 1000 * recording.
  WindowSet ws;
  for (int r = 0; r < 2; ++r) {
    RawSignals rec;
    rec.name = "rec" + std::to_string(r);
    rec.rate_hz = 32;
    const int n = 20 * 32;
    rec.ppg.assign(n, 0.0f);
    for (auto& a : rec.acc) a.assign(n, 0.0f);
    for (int i = 0; i < n; ++i) rec.ppg2.push_back(static_cast<float>(i + 1000 * r));
    append_windows(ws, rec, "test");
  }
  REQUIRE(ws.has_ppg2());
  REQUIRE(ws.ppg2.size() == static_cast<size_t>(ws.size()) * kWindow);
  CHECK(ws.ppg2_window(8)[3] == 1000 + kShift + 3);  // recording 1, window 1, sample 3
  const WindowSet second = select_subjects(ws, {1});
  REQUIRE(second.has_ppg2());
  CHECK(second.ppg2_window(1)[3] == ws.ppg2_window(8)[3]);
  // Kept only when every window has one: a set without (synthetic) drops it.
  const WindowSet both = concat(second, ws);
  CHECK(both.ppg2.size() == static_cast<size_t>(both.size()) * kWindow);
  CHECK(both.ppg2_window(7 + 8)[3] == ws.ppg2_window(8)[3]);
  CHECK_FALSE(concat(ws, load_dataset("synth?subjects=2&minutes=1")).has_ppg2());
  CHECK_FALSE(concat(load_dataset("synth?subjects=2&minutes=1"), ws).has_ppg2());
  CHECK(concat(WindowSet{}, ws).has_ppg2());
  RawSignals without;
  without.name = "one_ppg";
  without.rate_hz = 32;
  without.ppg.assign(640, 0.0f);
  for (auto& a : without.acc) a.assign(640, 0.0f);
  WindowSet mixed = ws;
  append_windows(mixed, without, "test");
  CHECK_FALSE(mixed.has_ppg2());
}
