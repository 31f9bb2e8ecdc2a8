// IEEE SPC 2015 reader: the real recordings (a reported skip when absent) and bad inputs
// written here with libmatio (tests/mat_fixtures.h, which tools/make_fuzz_seeds also uses for the
// fuzz seeds in fuzz/corpus/mat/).
#include <doctest/doctest.h>
#include <matio.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/baseline.h"
#include "datasets/spc2015.h"
#include "tests/mat_fixtures.h"
#include "tests/shared_data.h"

using namespace pulsekd::data;
namespace fs = std::filesystem;

namespace {

using pulsekd::testing::write_mat;
using pulsekd::testing::write_recording;

const std::string kDir = pulsekd::testing::shared_path("data/ieee-spc2015");

struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("pulsekd_spc_" + std::to_string(::getpid()) + "_" + std::to_string(rand()));
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
};

// The error message of f() (empty if it did not throw).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("SPC 2015: all 13 recordings, windows = labels = floor((N/125-8)/2)+1, rest peaks") {
  if (!pulsekd::testing::require_shared(kDir + "/Training_data", "the SPC 2015 recordings")) return;
  const auto recs = load_spc2015_raw(kDir);
  REQUIRE(recs.size() == 13);
  CHECK(recs.front().name == "DATA_01_TYPE01");
  CHECK(recs.back().name == "DATA_S04_T01");
  for (const auto& r : recs) {
    CHECK(r.ecg.size() == static_cast<size_t>(r.n()));
    CHECK(static_cast<int64_t>(r.bpm.size()) ==
          static_cast<int64_t>(std::floor((r.n() / 125.0 - 8) / 2)) + 1);
  }
  const WindowSet ws = spc2015_windows(recs, {}, "spc2015:" + kDir);
  REQUIRE(ws.subjects.size() == 13);
  int64_t total = 0;
  for (size_t s = 0; s < recs.size(); ++s) {
    CHECK(ws.subjects[s].num_windows == static_cast<int64_t>(recs[s].bpm.size()));
    CHECK(ws.subjects[s].first_window == total);
    total += ws.subjects[s].num_windows;
  }
  CHECK(ws.size() == total);
  CHECK(ws.x.size() == static_cast<size_t>(total) * kRows * kWindow);
  // The first windows are at rest: the strongest PPG peak is the pulse (README: ~1.5 BPM).
  for (const auto& s : ws.subjects) {
    const float* w = ws.window(s.first_window);
    const float peak = spectral_peak_bpm(w, kWindow, kRateHz, 40, 180);  // labels: 66-177
    INFO(s.name << ": PPG peak " << peak << " BPM, label " << ws.hr[s.first_window]);
    if (s.name == "DATA_10_TYPE02") continue;  // starts at 123 BPM while moving: peak at 70
    CHECK(std::fabs(peak - ws.hr[s.first_window]) < 3.0);
  }
  // Mean12 option reads too.
  Spc2015Options m;
  m.ppg = Spc2015Options::Mean12;
  m.include_extra = false;
  CHECK(load_spc2015(kDir, m).subjects.size() == 12);
}

TEST_CASE("SPC 2015 layouts written with libmatio: flat folder, extra, test layout with TrueBPM/") {
  TempDir t;
  write_recording(t.p / "DATA_01_TYPE01.mat", t.p / "DATA_01_TYPE01_BPMtrace.mat", 6, 2000);
  write_recording(t.p / "DATA_S04_T01.mat", t.p / "BPM_S04_T01.mat", 6, 1500, "BPM");
  WindowSet ws = load_spc2015(t.p.string());
  REQUIRE(ws.subjects.size() == 2);
  CHECK(ws.subjects[0].num_windows == 5);  // (2000-1000)/250+1
  CHECK(ws.subjects[1].num_windows == 3);
  Spc2015Options no_extra;
  no_extra.include_extra = false;
  CHECK(load_spc2015(t.p.string(), no_extra).subjects.size() == 1);

  TempDir u;
  fs::create_directories(u.p / "TestData");
  fs::create_directories(u.p / "TrueBPM");
  write_recording(u.p / "TestData" / "TEST_S01_T01.mat", u.p / "TrueBPM" / "True_S01_T01.mat", 5, 1250, "BPMtrue");
  const auto recs = load_spc2015_raw(u.p.string());
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].ecg.empty());
  CHECK(recs[0].bpm.size() == 2);
  CHECK(load_spc2015((u.p / "TestData").string()).size() == 2);
}

TEST_CASE("SPC 2015 bad inputs name the file") {
  CHECK(error_of([] { load_spc2015("/nonexistent/spc"); }).find("/nonexistent/spc") != std::string::npos);
  TempDir t;
  CHECK(error_of([&] { load_spc2015(t.p.string()); }).find("no recordings") != std::string::npos);

  // Wrong shape.
  write_mat(t.p / "DATA_01_TYPE01.mat", "sig", 4, 2000, std::vector<double>(8000, 1.0));
  write_mat(t.p / "DATA_01_TYPE01_BPMtrace.mat", "BPM0", 5, 1, std::vector<double>(5, 80.0));
  std::string e = error_of([&] { load_spc2015(t.p.string()); });
  CHECK(e.find("DATA_01_TYPE01.mat") != std::string::npos);
  CHECK(e.find("6 x N") != std::string::npos);

  // Wrong variable name.
  write_mat(t.p / "DATA_01_TYPE01.mat", "data", 6, 2000, std::vector<double>(12000, 1.0));
  e = error_of([&] { load_spc2015(t.p.string()); });
  CHECK(e.find("'sig' not found") != std::string::npos);

  // Single precision instead of double.
  write_mat(t.p / "DATA_01_TYPE01.mat", "sig", 6, 2000, std::vector<double>(12000, 1.0), true, MAT_C_SINGLE);
  e = error_of([&] { load_spc2015(t.p.string()); });
  CHECK(e.find("not a double") != std::string::npos);

  // NaN.
  std::vector<double> s(12000, 1.0);
  s[6 * 10 + 2] = NAN;
  write_mat(t.p / "DATA_01_TYPE01.mat", "sig", 6, 2000, s);
  e = error_of([&] { load_spc2015(t.p.string()); });
  CHECK(e.find("non-finite") != std::string::npos);
  CHECK(e.find("DATA_01_TYPE01.mat") != std::string::npos);

  // Label count not matching W.
  write_recording(t.p / "DATA_01_TYPE01.mat", t.p / "DATA_01_TYPE01_BPMtrace.mat", 6, 2000, "BPM0", 1);
  e = error_of([&] { load_spc2015(t.p.string()); });
  CHECK(e.find("DATA_01_TYPE01_BPMtrace.mat") != std::string::npos);
  CHECK(e.find("expected W") != std::string::npos);

  // Missing label file.
  fs::remove(t.p / "DATA_01_TYPE01_BPMtrace.mat");
  e = error_of([&] { load_spc2015(t.p.string()); });
  CHECK(e.find("DATA_01_TYPE01_BPMtrace.mat") != std::string::npos);

  // Not a MAT-file at all.
  { std::FILE* f = std::fopen((t.p / "junk.mat").string().c_str(), "wb"); std::fputs("hello", f); std::fclose(f); }
  e = error_of([&] { read_mat_double((t.p / "junk.mat").string(), "sig"); });
  CHECK(e.find("junk.mat") != std::string::npos);
}

TEST_CASE("SPC 2015: a damaged or cut compressed MAT element is an error naming the file, not garbage samples") {
  TempDir t;
  // Samples that do not compress to nothing (a zlib stream of several KB).
  std::vector<double> s(6 * 2000);  // (6, 2000) column-major
  for (size_t i = 0; i < s.size(); ++i) s[i] = std::sin(0.01 * double(i)) + 0.001 * double(i % 97);
  const fs::path good = t.p / "good.mat";
  write_mat(good, "sig", 6, 2000, s);
  REQUIRE(read_mat_double(good.string(), "sig").data.size() == s.size());
  std::vector<char> bytes;
  {
    std::FILE* f = std::fopen(good.string().c_str(), "rb");
    REQUIRE(f);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.insert(bytes.end(), buf, buf + n);
    std::fclose(f);
  }
  REQUIRE(bytes.size() > 2000);
  const auto write_bytes = [&](const fs::path& p, const std::vector<char>& b) {
    std::FILE* f = std::fopen(p.string().c_str(), "wb");
    REQUIRE(f);
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
  };
  // 4 bytes overwritten at several places inside the stream (header left intact: byte 128 + 8 on).
  int refused = 0, cases = 0;
  for (size_t at = 400; at + 4 < bytes.size(); at += (bytes.size() - 400) / 7) {
    std::vector<char> bad = bytes;
    for (int k = 0; k < 4; ++k) bad[at + size_t(k)] = char(0xA5 ^ k);
    const fs::path p = t.p / ("bad_" + std::to_string(at) + ".mat");
    write_bytes(p, bad);
    const std::string e = error_of([&] { read_mat_double(p.string(), "sig"); });
    INFO("damaged at byte " << at << ": " << e);
    CHECK(e.find(p.filename().string()) != std::string::npos);
    CHECK(e.find("damaged") != std::string::npos);
    refused += !e.empty();
    ++cases;
  }
  CHECK(refused == cases);
  CHECK(cases >= 6);
  // The stream cut short, with the element length patched to match the file (no length error).
  std::vector<char> cut(bytes.begin(), bytes.end() - 200);
  const uint32_t len = uint32_t(cut.size() - 136);
  std::memcpy(&cut[132], &len, 4);
  const fs::path pc = t.p / "cut.mat";
  write_bytes(pc, cut);
  const std::string e = error_of([&] { read_mat_double(pc.string(), "sig"); });
  CHECK(e.find("cut.mat") != std::string::npos);
  CHECK(e.find("ends early") != std::string::npos);
}
