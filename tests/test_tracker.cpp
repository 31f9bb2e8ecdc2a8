// WFPV tracker (tracking/wfpv.h): the phase vocoder and the Wiener filter on signals worked out
// by hand, robustness on synthetic wrist recordings whose motion is not running (arm swings and
// wrist rotation whose cadence sweeps through the heart rate, boxing-like punches at a cadence
// near it), the spectra API, option validation, and `pulsekd baseline --method`.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>
#include <vector>

#include "datasets/baseline.h"
#include "datasets/registry.h"
#include "datasets/synth.h"
#include "tests/motion_recordings.h"
#include "kd/hybrid.h"
#include "tests/run_pulsekd.h"
#include "tests/shared_data.h"
#include "tracking/wfpv.h"

using namespace pulsekd;
using namespace pulsekd::testing;

namespace {

double mae(const std::vector<float>& est, const WindowSet& ws, int64_t first, int64_t count) {
  double e = 0;
  for (int64_t k = 0; k < count; ++k) e += std::fabs(est[k] - ws.hr[first + k]);
  return e / count;
}

// One recording at a constant heart rate: PPG(t) and the same ACC(t) on all three axes.
template <class Ppg, class Acc>
WindowSet make_plain(double dur, double hr_bpm, Ppg ppg, Acc acc) {
  Recording r;
  const int n = static_cast<int>(dur * kRateHz);
  r.hr.assign(n, hr_bpm);
  r.ppg.resize(n);
  for (auto& a : r.acc) a.resize(n);
  for (int i = 0; i < n; ++i) {
    const double t = i / kRateHz;
    r.ppg[i] = ppg(t);
    for (auto& a : r.acc) a[i] = acc(t);
  }
  WindowSet ws;
  add_subject(ws, "plain", r);
  return ws;
}

double sine(double bpm, double t) { return std::sin(2 * kPi * bpm / 60 * t); }

// Tests that read ../shared: a reported skip when it is absent (tests/shared_data.h).
bool have_spc2015(const std::string& dir) { return require_shared(dir + "/Training_data", "the SPC 2015 recordings"); }

}  // namespace

TEST_CASE("phase vocoder: a pulse between two FFT bins is found from the phase advance") {
  // 94 BPM with 7.5 BPM bins (nfft 256): the nearest bin is 97.5, 3.5 BPM off.
  const WindowSet ws = make_plain(60, 94, [](double t) { return sine(94, t); }, [](double) { return 0.0; });
  tracking::WfpvOptions o;
  o.nfft = 256;
  const auto err_at = [&](double pv_weight) {
    o.pv_weight = pv_weight;
    const auto est = tracking::wfpv_track(ws, 0, ws.size(), o);
    return std::fabs(est.back() - 94.0);
  };
  const double bin_only = err_at(0), half = err_at(0.5), vocoder = err_at(1);
  MESSAGE("error at the last window: bin " << bin_only << ", paper's average " << half << ", vocoder " << vocoder);
  CHECK(bin_only > 3.0);   // measured 3.5: the bin spacing bounds it
  CHECK(vocoder < 0.2);    // measured 0.02
  CHECK(half < 0.6 * bin_only);  // measured 1.75
}

TEST_CASE("Wiener filter: a motion line 3x stronger than the pulse falls below it") {
  // PPG: pulse at 80 BPM plus an artefact 3x stronger at 120 BPM, where the ACC moves.
  const WindowSet ws = make_plain(
      90, 80, [](double t) { return sine(80, t) + 3 * sine(120, t); }, [](double t) { return sine(120, t); });
  const std::vector<double> grid = {80, 120};
  const auto sp = tracking::wfpv_spectra(ws, 0, ws.size(), grid);  // (count, 2)
  const auto pk = data::ppg_peak_baseline(ws, 0, ws.size());
  const auto est = tracking::wfpv_track(ws, 0, ws.size());
  const int64_t last = ws.size() - 1;
  MESSAGE("last window: cleaned 80 BPM " << sp[last * 2] << ", 120 BPM " << sp[last * 2 + 1] << "; PPG peak "
                                         << pk[last] << ", wfpv " << est[last]);
  CHECK(pk[last] == doctest::Approx(120).epsilon(0.01));  // the raw spectrum's largest peak
  // The signal history fills in 15 windows; from then on the pulse is the larger (measured
  // ratio 0.60: W1 removes the line, W2 halves it).
  for (int64_t i = 15; i < ws.size(); ++i) CHECK(sp[i * 2 + 1] < 0.75 * sp[i * 2]);
  // After the acquisition windows: the pulse, within the bias that the 120 BPM line's leakage
  // (untapered window) puts on the vocoder; measured at most 1.57 BPM.
  for (int64_t i = tracking::WfpvOptions{}.acquire_windows; i < ws.size(); ++i) CHECK(std::fabs(est[i] - 80) < 2.0);
}

TEST_CASE("escape: a track left behind on a weak line finds the pulse again") {
  // 100 BPM for 60 s, then 135 BPM; a PPG-only line (no motion) stays at 100 BPM with 0.3 of the
  // pulse's amplitude. The track keeps the weak line (the pulse is 35 BPM away, outside the
  // +-25 BPM search) unless it escapes to the band's largest peak.
  Recording r;
  const int n = static_cast<int>(150 * kRateHz);
  r.hr.resize(n);
  r.ppg.resize(n);
  for (auto& a : r.acc) a.assign(n, 0.0f);
  double phase = 0;
  for (int i = 0; i < n; ++i) {
    const double t = i / kRateHz;
    r.hr[i] = t < 60 ? 100.0f : 135.0f;
    phase += 2 * kPi * r.hr[i] / 60 / kRateHz;
    r.ppg[i] = static_cast<float>((t < 60 ? 0.0 : std::sin(phase)) + 0.3 * sine(100, t) + (t < 60 ? 0.7 * sine(100, t) : 0.0));
  }
  WindowSet ws;
  add_subject(ws, "step", r);
  tracking::WfpvOptions never;
  never.escape_lost_ratio = 0;
  const auto with = tracking::wfpv_track(ws, 0, ws.size()), without = tracking::wfpv_track(ws, 0, ws.size(), never);
  MESSAGE("last window: " << with.back() << " BPM with the escape, " << without.back() << " without");
  CHECK(std::fabs(without.back() - 135) > 20);  // held on the line
  // Found again from 10 windows after the step (the 8 s window and the 5 escape windows) on.
  for (int64_t i = 0; i < ws.size(); ++i)
    if (i * kShift / kRateHz >= 60 + 20) CHECK(std::fabs(with[i] - 135) < 2.0);
}

TEST_CASE("escape: never to half the tracked frequency, where a running arm swing sits") {
  // The pulse at 150 BPM on a motion line of the steps (ACC at 150, 0.6 of the ACC's strongest
  // line at 190), the arm swing at 75 BPM in the PPG only, weaker than the cleaned pulse but
  // above escape_ratio of it. With the sub-harmonic allowed (the rule before), the escape went
  // to 75 BPM; on SPC 2015's DATA_07 with two PPG channels that cost 11 BPM of MAE.
  const WindowSet ws = make_plain(
      120, 150, [](double t) { return sine(150, t) + 0.3 * sine(75, t); },
      [](double t) { return 0.6 * sine(150, t) + sine(190, t); });
  const auto est = tracking::wfpv_track(ws, 0, ws.size());
  for (int64_t i = tracking::WfpvOptions{}.acquire_windows; i < ws.size(); ++i) CHECK(std::fabs(est[i] - 150) < 3.0);
}

TEST_CASE("two PPG channels: the second channel's pulse outweighs an artefact of the first that the ACC lacks") {
  // PPG1: a weak pulse at 80 BPM under a line at 110 BPM that the ACC does not show (a sensor
  // artefact, which the Wiener filters cannot remove); PPG2: the pulse alone. ACC still.
  WindowSet ws = make_plain(
      90, 80, [](double t) { return 0.3 * sine(80, t) + sine(110, t); }, [](double) { return 0.0; });
  const auto one_channel = tracking::wfpv_track(ws, 0, ws.size());
  ws.ppg2.resize(static_cast<size_t>(ws.size()) * kWindow);  // (N, 256)
  for (int64_t k = 0; k < ws.size(); ++k)
    for (int j = 0; j < kWindow; ++j) ws.ppg2[k * kWindow + j] = static_cast<float>(sine(80, (k * kShift + j) / kRateHz));
  const auto two_channels = tracking::wfpv_track(ws, 0, ws.size());
  tracking::WfpvOptions only_first;
  only_first.use_ppg2 = false;
  CHECK(tracking::wfpv_track(ws, 0, ws.size(), only_first) == one_channel);  // the option turns it off exactly
  const double mae1 = mae(one_channel, ws, 0, ws.size()), mae2 = mae(two_channels, ws, 0, ws.size());
  MESSAGE("MAE with PPG1 only " << mae1 << ", with both channels " << mae2);
  CHECK(mae1 > 20);  // the line at 110 BPM is tracked
  CHECK(mae2 < 1);   // the mean of both z-scored channels peaks at the pulse
}

TEST_CASE("robust when motion is not running: arm swing and rotation sweeping through the HR, punches") {
  struct Bound {
    const char* name;
    double max_wfpv;   // BPM
    double max_ratio;  // wfpv MAE / PPG-peak MAE
  };
  // Artefact 1.5 and 2 pulse amplitudes per g of dynamic acceleration; 5 min, 30 s rest first.
  // Measured (seed 1), wfpv / PPG peak / spectral tracker, BPM:
  //   gain 1.5: arm_sweep 0.55 / 22.5 / 11.7, rotation 1.06 / 34.1 / 22.0, punches 2.39 / 5.35 / 4.9
  //   gain 2:   arm_sweep 1.11 / 24.4,        rotation 1.80 / 34.2,        punches 3.16 / 5.0
  // (punches at gain 2 is 38 BPM when the escape may jump to the pulse's second harmonic).
  const std::pair<double, std::vector<Bound>> cases[] = {
      {1.5, {{"arm_sweep", 1.5, 0.1}, {"rotation", 2.5, 0.1}, {"punches", 4.0, 0.6}}},
      {2.0, {{"arm_sweep", 2.0, 0.1}, {"rotation", 3.0, 0.1}, {"punches", 4.5, 0.75}}}};
  for (const auto& [gain, bounds] : cases) {
    const WindowSet ws = make_motion_set(1, gain);
    REQUIRE(ws.subjects.size() == bounds.size());
    for (size_t s = 0; s < bounds.size(); ++s) {
      const auto& info = ws.subjects[s];
      REQUIRE(info.name == bounds[s].name);
      const auto w = tracking::wfpv_track(ws, info.first_window, info.num_windows);
      const auto sp = data::spectral_baseline(ws, info.first_window, info.num_windows);
      const auto pk = data::ppg_peak_baseline(ws, info.first_window, info.num_windows);
      const double e_w = mae(w, ws, info.first_window, info.num_windows);
      const double e_pk = mae(pk, ws, info.first_window, info.num_windows);
      MESSAGE("gain " << gain << " " << info.name << ": wfpv " << e_w << ", spectral "
                      << mae(sp, ws, info.first_window, info.num_windows) << ", PPG peak " << e_pk << " BPM");
      CHECK(e_w < bounds[s].max_wfpv);
      CHECK(e_w < bounds[s].max_ratio * e_pk);
    }
  }
}

TEST_CASE("tracking restarts per subject; a range of windows gives the same as its subject alone") {
  const WindowSet ws = make_motion_set(2, 1.0);
  const auto all = tracking::wfpv_track(ws, 0, ws.size());
  const std::vector<double> grid = {60, 90, 120};
  const auto all_sp = tracking::wfpv_spectra(ws, 0, ws.size(), grid);
  for (const auto& info : ws.subjects) {
    const auto one = tracking::wfpv_track(ws, info.first_window, info.num_windows);
    CHECK(std::equal(one.begin(), one.end(), all.begin() + info.first_window));
    const auto sp = tracking::wfpv_spectra(ws, info.first_window, info.num_windows, grid);
    CHECK(std::equal(sp.begin(), sp.end(), all_sp.begin() + info.first_window * 3));
  }
}

TEST_CASE("wfpv_spectra: (count, grid) row-major, non-negative, 0 outside the band, peak at the pulse") {
  const WindowSet ws = make_plain(60, 100, [](double t) { return sine(100, t); }, [](double t) { return 0.1 * sine(50, t); });
  std::vector<double> grid;  // 20 .. 230 BPM every 2 BPM
  for (double b = 20; b <= 230; b += 2) grid.push_back(b);
  const int64_t count = ws.size() - 3;
  const auto sp = tracking::wfpv_spectra(ws, 3, count, grid);
  REQUIRE(sp.size() == static_cast<size_t>(count) * grid.size());
  const tracking::WfpvOptions o;
  for (int64_t i = 0; i < count; ++i) {
    const double* row = sp.data() + i * grid.size();
    size_t best = 0;
    for (size_t g = 0; g < grid.size(); ++g) {
      CHECK(std::isfinite(row[g]));
      CHECK(row[g] >= 0);
      if (grid[g] < o.band_lo_bpm || grid[g] > o.band_hi_bpm) CHECK(row[g] == 0);
      if (row[g] > row[best]) best = g;
    }
    CHECK(grid[best] == 100);
  }
  CHECK(tracking::wfpv_spectra(ws, 0, ws.size(), {}).empty());
}

TEST_CASE("bad options, ranges and grids are rejected with the option's name") {
  const WindowSet ws = make_plain(30, 80, [](double t) { return sine(80, t); }, [](double) { return 0.0; });
  const auto rejects = [&](const char* name, auto change) {
    tracking::WfpvOptions o;
    change(o);
    CHECK_THROWS_WITH_AS(tracking::wfpv_track(ws, 0, ws.size(), o), doctest::Contains(name), std::invalid_argument);
    CHECK_THROWS_AS(tracking::wfpv_spectra(ws, 0, ws.size(), {80}, o), std::invalid_argument);
  };
  rejects("nfft", [](auto& o) { o.nfft = 1000; });
  rejects("nfft", [](auto& o) { o.nfft = 128; });
  rejects("band_lo_bpm", [](auto& o) { o.band_lo_bpm = 10; });
  rejects("band_hi_bpm", [](auto& o) { o.band_hi_bpm = 50; });
  rejects("band_hi_bpm", [](auto& o) { o.band_hi_bpm = 1000; });
  rejects("signal_windows", [](auto& o) { o.signal_windows = 0; });
  rejects("noise_windows", [](auto& o) { o.noise_windows = 0; });
  rejects("w1_negative", [](auto& o) { o.w1_negative = 0.5; });
  rejects("acquire_windows", [](auto& o) { o.acquire_windows = 0; });
  rejects("search_bpm", [](auto& o) { o.search_bpm = 0; });
  rejects("search_sigma_bpm", [](auto& o) { o.search_sigma_bpm = -1; });
  rejects("steady_bpm", [](auto& o) { o.steady_bpm = -1; });
  rejects("escape_noise", [](auto& o) { o.escape_noise = 0; });
  rejects("escape_ratio", [](auto& o) { o.escape_ratio = -0.1; });
  rejects("escape_min_bpm", [](auto& o) { o.escape_min_bpm = -1; });
  rejects("escape_windows", [](auto& o) { o.escape_windows = -2; });
  rejects("pv_weight", [](auto& o) { o.pv_weight = 1.1; });
  rejects("jump_bpm", [](auto& o) { o.jump_bpm = -1; });
  rejects("jump_pull", [](auto& o) { o.jump_pull = 2; });
  rejects("jump_history", [](auto& o) { o.jump_history = 1; });
  rejects("delay_step_bpm", [](auto& o) { o.delay_step_bpm = 5; });
  rejects("delay_history", [](auto& o) { o.delay_history = 0; });
  rejects("search_sigma_bpm", [](auto& o) { o.search_sigma_bpm = std::nan(""); });
  CHECK_THROWS_AS(tracking::wfpv_track(ws, 0, ws.size() + 1), std::out_of_range);
  CHECK_THROWS_AS(tracking::wfpv_track(ws, -1, 2), std::out_of_range);
  CHECK_THROWS_AS(tracking::wfpv_spectra(ws, 0, 1, {std::nan("")}), std::invalid_argument);
  CHECK(tracking::wfpv_track(ws, 2, 0).empty());
}

TEST_CASE("pulsekd baseline --method: wfpv (default), spectral, ppg-peak; JSON; unknown names rejected") {
  const std::string json = (std::filesystem::temp_directory_path() /
                            ("pulsekd_tracker_" + std::to_string(::getpid()) + ".json")).string();
  std::map<std::string, double> means;
  for (const std::string method : {"", "spectral", "ppg-peak"}) {  // "" = the default, wfpv
    const auto r = run_pulsekd("baseline 'synth?subjects=3&minutes=3' --json " + json +
                               (method.empty() ? "" : " --method " + method));
    REQUIRE_MESSAGE(r.code == 0, r.out);
    std::ifstream f(json);
    const auto j = nlohmann::json::parse(f);
    CHECK(j["method"] == (method.empty() ? "wfpv" : method));
    CHECK(j["subjects"].size() == 3);
    CHECK(r.out.find((method.empty() ? std::string("wfpv") : method) + " MAE") != std::string::npos);
    means[method] = j["mean_tracker"].get<double>();
    if (method == "ppg-peak") CHECK(j["mean_tracker"].get<double>() == j["mean_ppg_peak"].get<double>());
  }
  std::filesystem::remove(json);
  CHECK(means[""] != means["spectral"]);
  CHECK(means["spectral"] != means["ppg-peak"]);
  const auto bad = run_pulsekd("baseline 'synth?subjects=1&minutes=1' --method troika");
  CHECK(bad.code != 0);
  CHECK(bad.out.find("--method") != std::string::npos);
  CHECK(bad.out.find("wfpv") != std::string::npos);
  CHECK(bad.out.find("ppg-peak") != std::string::npos);
}

TEST_CASE("pulsekd baseline --track decodes WFPV with the HMM; the same figures as kd::evaluate_tracker") {
  const std::string json = (std::filesystem::temp_directory_path() /
                            ("pulsekd_tracker_track_" + std::to_string(::getpid()) + ".json")).string();
  const auto r = run_pulsekd("baseline 'synth?subjects=2&minutes=2' --track viterbi --prior-scale 1.2 --json " + json);
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("HMM viterbi (prior b = 1.20 BPM)") != std::string::npos);
  std::ifstream f(json);
  const auto j = nlohmann::json::parse(f);
  REQUIRE(j["tracked"]["subjects"].size() == 2);
  const data::WindowSet ws = data::load_dataset("synth?subjects=2&minutes=2");
  kd::PostProcess pp;
  pp.mode = tracking::TrackMode::Viterbi;
  pp.prior.scale_bpm = 1.2;
  const kd::EvalResult want = kd::evaluate_tracker(ws, {0, 1}, pp);
  CHECK(j["tracked"]["mean_decoded"].get<double>() == doctest::Approx(want.mean_subject_mae_post));
  CHECK(j["tracked"]["mean"].get<double>() == doctest::Approx(j["mean_tracker"].get<double>()));
  std::filesystem::remove(json);
  const auto bad = run_pulsekd("baseline 'synth?subjects=1&minutes=1' --method spectral --track viterbi");
  CHECK(bad.code != 0);
  CHECK(bad.out.find("--method wfpv") != std::string::npos);
}

TEST_CASE("SPC 2015 training recordings: WFPV mean and worst recording (needs /work/shared)") {
  const std::string dir = shared_path("data/ieee-spc2015");
  if (!have_spc2015(dir)) return;
  const WindowSet ws = data::load_dataset("spc2015:" + dir);
  const auto rep = data::evaluate_baselines(ws, "wfpv", [](const WindowSet& w, int64_t f, int64_t c) {
    return tracking::wfpv_track(w, f, c);
  });
  double mean12 = 0, worst = 0;
  for (size_t s = 0; s < 12; ++s) {
    mean12 += rep.subjects[s].mae_tracker / 12;
    if (rep.subjects[s].mae_tracker > worst) worst = rep.subjects[s].mae_tracker;
  }
  MESSAGE("12 training recordings: mean " << mean12 << " BPM, worst " << worst << "; S04_T01 "
                                          << rep.subjects[12].mae_tracker);
  CHECK(mean12 < 1.7);  // measured 1.58 (docs/results/baseline-spc2015.md)
  CHECK(worst < 7.3);   // measured 6.82 (DATA_10)
}
