// PPG-DaLiA and WESAD readers on the fixtures of tests/fixtures/make_fixtures.py.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/dalia.h"
#include "datasets/wesad.h"

using namespace pulsekd::data;

namespace {
const std::string kFix = std::string(PULSEKD_SOURCE_DIR) + "/tests/fixtures";

// The message of the exception `fn` throws ("" if none).
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("dalia: Python-2 and Python-3 style subjects load with the shipped labels") {
  const WindowSet ws = load_dalia(kFix + "/dalia");
  REQUIRE(ws.subjects.size() == 2);
  // S1: 24 s, 9 labels -> 9 windows; S2: 24 s but 7 labels -> 7 windows.
  CHECK(ws.subjects[0].name == "S1");
  CHECK(ws.subjects[0].num_windows == 9);
  CHECK(ws.subjects[1].num_windows == 7);
  CHECK(ws.subjects[1].first_window == 9);
  CHECK(ws.size() == 16);
  CHECK(ws.x.size() == size_t(16 * kRows * kWindow));
  CHECK(ws.subject[8] == 0);
  CHECK(ws.subject[9] == 1);
  for (int k = 0; k < 9; ++k) CHECK(ws.hr[size_t(k)] == doctest::Approx(60 + 1.5 * k));
  CHECK(ws.subjects[0].label_min == doctest::Approx(60));
  CHECK(ws.subjects[0].label_max == doctest::Approx(72));
  CHECK(ws.subjects[0].duration_s == doctest::Approx(24));
  CHECK(has(ws.subjects[0].rates, "BVP 64 Hz"));
  CHECK(ws.source == "dalia:" + kFix + "/dalia");
  // ACC stays in raw 1/64 g units: the fixture's x axis is around -60.
  const float* w = ws.window(3);
  CHECK(w[kWindow + 5] == doctest::Approx(-60).epsilon(0.05));
  CHECK(w[2 * kWindow + 5] == doctest::Approx(10).epsilon(0.2));
  // Subject selection.
  DaliaOptions only2;
  only2.subjects = {2};
  const WindowSet s2 = load_dalia(kFix + "/dalia", only2);
  REQUIRE(s2.size() == 7);
  CHECK(s2.subjects[0].name == "S2");
  // Default decimation: PPG sample j of window k is BVP[128k + 2j]. Window 1 of S2 in the
  // full set equals window 1 of S2 alone; its row 0 sample 1 is BVP[130].
  CHECK(std::equal(s2.window(1), s2.window(1) + kRows * kWindow, ws.window(10)));
}

TEST_CASE("dalia: anti-aliased BVP path differs from decimation but keeps windows and labels") {
  DaliaOptions aa;
  aa.antialias_bvp = true;
  const WindowSet a = load_dalia(kFix + "/dalia", aa);
  const WindowSet d = load_dalia(kFix + "/dalia");
  REQUIRE(a.size() == d.size());
  CHECK(a.hr == d.hr);
  double diff = 0, scale = 0;
  for (int j = 0; j < kWindow; ++j) {
    diff += std::fabs(a.window(4)[j] - d.window(4)[j]);
    scale += std::fabs(d.window(4)[j]);
  }
  CHECK(diff > 0);
  CHECK(diff < scale);  // same signal, filtered
  // ACC rows are untouched.
  CHECK(std::equal(a.window(4) + kWindow, a.window(4) + kRows * kWindow, d.window(4) + kWindow));
}

TEST_CASE("wesad: labels from the chest ECG match the known beats within 1 BPM") {
  std::ifstream f(kFix + "/wesad/expected.json");
  REQUIRE(f);
  const nlohmann::json expected = nlohmann::json::parse(f);
  const std::vector<double> beats = expected["beats_s"].get<std::vector<double>>();
  const std::vector<double> hr = expected["hr"].get<std::vector<double>>();
  // The labelling rule itself, on the exact beat times.
  const std::vector<float> rule = wesad_window_hr(beats, int64_t(hr.size()), "x");
  for (size_t k = 0; k < hr.size(); ++k) CHECK(rule[k] == doctest::Approx(hr[k]).epsilon(1e-5));
  // Through the whole reader: R-peak detection on the 700 Hz ECG.
  const WindowSet ws = load_wesad(kFix + "/wesad");
  REQUIRE(ws.subjects.size() == 1);
  CHECK(ws.subjects[0].name == "S2");
  REQUIRE(ws.size() == int64_t(hr.size()));
  for (size_t k = 0; k < hr.size(); ++k) {
    INFO("window " << k);
    CHECK(std::fabs(ws.hr[k] - hr[k]) < 1.0);
  }
  CHECK(ws.source == "wesad:" + kFix + "/wesad");
  CHECK(has(ws.subjects[0].rates, "ECG 700 Hz"));
}

TEST_CASE("wesad: window rule drops implausible intervals and interpolates empty windows") {
  // Beats every 1 s until 10 s, a gap to 30 s (RR 20 s: dropped), then every 0.5 s.
  std::vector<double> beats;
  for (int i = 0; i <= 10; ++i) beats.push_back(i);
  for (double t = 30; t < 50; t += 0.5) beats.push_back(t);
  const std::vector<float> hr = wesad_window_hr(beats, 20, "x");
  CHECK(hr[0] == doctest::Approx(60));
  CHECK(hr[19] == doctest::Approx(120));
  // Windows 6..11 ([12,20) ... [22,30)) have no usable interval: linear between window 5 (60) and 12 (120).
  CHECK(hr[8] == doctest::Approx(60 + 60.0 * 3 / 7));
  CHECK(has(error_of([] { wesad_window_hr({1.0}, 3, "f.pkl"); }), "f.pkl"));
}

TEST_CASE("dalia/wesad: every corrupt variant gives an error naming the file") {
  struct Case { const char* dir; bool wesad; const char* expect; };
  const Case cases[] = {
      {"dalia_truncated", false, "truncated"},
      {"dalia_missing_key", false, "missing key 'label'"},
      {"dalia_wrong_dtype", false, "unsupported numpy dtype 'c8'"},
      {"dalia_nan", false, "not finite"},
      {"dalia_wrong_shape", false, "expected (N, 3)"},
      {"wesad_missing_ecg", true, "missing key 'signal/chest/ECG'"},
      {"wesad_flat_ecg", true, "no 8 s window has a heart beat"},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.dir));
    const std::string dir = kFix + "/corrupt/" + c.dir;
    const std::string file = dir + (c.wesad ? "/S2/S2.pkl" : "/S1/S1.pkl");
    const std::string e = c.wesad ? error_of([&] { load_wesad(dir); }) : error_of([&] { load_dalia(dir); });
    CHECK(has(e, file));
    CHECK_MESSAGE(has(e, c.expect), e);
  }
}

TEST_CASE("dalia/wesad: folder layout errors") {
  const std::string empty = std::filesystem::temp_directory_path() / "pulsekd_empty_dataset_dir";
  std::filesystem::create_directories(empty);
  std::string e = error_of([&] { load_dalia(empty); });
  CHECK(has(e, empty));
  CHECK(has(e, "S{i}/S{i}.pkl"));
  e = error_of([&] { load_wesad(kFix + "/dalia"); });  // DaLiA has S1, S2: WESAD wants S2..S17
  CHECK(has(e, "S2.pkl"));                               // S2 is a DaLiA file: not a WESAD layout
  WesadOptions w1;
  w1.subjects = {1};
  CHECK(has(error_of([&] { load_wesad(kFix + "/wesad", w1); }), "not a WESAD subject"));
  DaliaOptions d3;
  d3.subjects = {3};
  e = error_of([&] { load_dalia(kFix + "/dalia", d3); });
  CHECK(has(e, "S3/S3.pkl"));
  CHECK(has(e, "not found"));
}
