// Synthetic wrist recordings whose motion is not running, with a known heart rate: arm swings
// and wrist rotation whose cadence sweeps through the heart rate, boxing-like punches at a
// cadence near it. For the tracker tests (tests/test_tracker.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/synth.h"

namespace pulsekd::testing {

using data::kRateHz;
using data::kRows;
using data::kShift;
using data::kWindow;
using data::WindowSet;

// A focused generator: one recording at 32 Hz with a known heart-rate course and one kind of
// non-running wrist motion. ACC (g) comes from an arm angle theta (swing about the shoulder)
// and a wrist rotation psi: gravity projected on the device axes plus tangential and
// centripetal terms, so every motion line has harmonics. The PPG is a two-wave pulse per beat
// plus a motion artefact (a fixed mix of the dynamic ACC axes and their square) and noise.
constexpr double kPi = 3.14159265358979323846;

enum class Motion { ArmSweepUp, RotationSweepDown, Punches };

struct Recording {
  std::vector<double> hr;     // (n) instantaneous heart rate, BPM
  std::vector<double> ppg;    // (n)
  std::vector<double> acc[3];  // (3, n) g
};

inline double hr_course(double t) {  // 30 s rest at 72, rise to 132 by 150 s, fall to 104 by 270 s
  if (t < 30) return 72;
  if (t < 150) return 72 + 60 * (t - 30) / 120;
  if (t < 270) return 132 - 28 * (t - 150) / 120;
  return 104;
}

// Motion frequency (Hz) at time t: the cadence sweeps through the heart rate.
inline double motion_hz(Motion m, double t) {
  const double u = std::clamp((t - 30) / 270, 0.0, 1.0);
  switch (m) {
    case Motion::ArmSweepUp: return 0.7 + 2.1 * u;         // 42 -> 168 strokes per minute
    case Motion::RotationSweepDown: return 2.8 - 2.0 * u;  // 168 -> 48 turns per minute
    case Motion::Punches: return hr_course(t) / 60 * (1.0 + 0.08 * std::sin(2 * kPi * t / 40));
  }
  return 0;
}

inline void make_motion(Motion m, double dur, Recording& r, data::SynthRng& rng) {
  const int n = static_cast<int>(dur * kRateHz);
  const double dt = 1 / kRateHz, arm_m = 0.3, g = 9.81;
  double phase = 0;
  for (int a = 0; a < 3; ++a) r.acc[a].assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    const double t = i * dt, f = motion_hz(m, t), w = 2 * kPi * f;
    const double on = std::clamp((t - 28) / 4, 0.0, 1.0);  // motion fades in after the rest
    phase += w * dt;
    double th = 0.2, thd = 0, thdd = 0, psi = 0.3, punch = 0;
    if (m == Motion::RotationSweepDown) {  // forearm raised, turning about its axis
      th = 0.2 + on * (1.0 + 0.15 * std::sin(0.37 * phase));
      psi += on * 0.9 * std::sin(phase);
    } else {
      // Swing amplitude falls with the cadence so that the tangential acceleration stays
      // near 1 g (a wrist does not swing 0.6 rad at 3 Hz).
      const double amp = on * std::min(m == Motion::Punches ? 0.35 : 0.6, 1.0 * g / (arm_m * w * w));
      th += amp * std::sin(phase);
      thd = amp * w * std::cos(phase);
      thdd = -amp * w * w * std::sin(phase);
      // A punch: a sharp forward acceleration once per cycle (rich in harmonics).
      if (m == Motion::Punches) punch = on * 1.5 * std::pow(std::max(0.0, std::cos(phase)), 8);
    }
    const double tang = arm_m * thdd / g, cent = arm_m * thd * thd / g;
    r.acc[0][i] = -std::cos(th) - cent + punch + 0.01 * rng.normal();
    r.acc[1][i] = (std::sin(th) + tang) * std::cos(psi) + 0.01 * rng.normal();
    r.acc[2][i] = (std::sin(th) + tang) * std::sin(psi) + 0.01 * rng.normal();
  }
}

inline void make_ppg(double dur, double artefact_gain, Recording& r, data::SynthRng& rng) {
  const int n = static_cast<int>(dur * kRateHz);
  const double dt = 1 / kRateHz, dir[3] = {0.5, -0.7, 0.5};
  std::vector<double> mean_acc(3, 0.0);
  r.hr.assign(n, 0.0);
  r.ppg.assign(n, 0.0);
  double cardiac = 0;  // cardiac phase, cycles
  for (int i = 0; i < n; ++i) {
    const double t = i * dt;
    r.hr[i] = hr_course(t);
    cardiac += r.hr[i] / 60 * dt;
    const double c = cardiac - std::floor(cardiac);  // systolic wave at 0.2, diastolic at 0.5
    double pulse = std::exp(-0.5 * std::pow((c - 0.2) / 0.06, 2)) + 0.4 * std::exp(-0.5 * std::pow((c - 0.5) / 0.09, 2));
    double lin = 0, sq = 0;
    for (int a = 0; a < 3; ++a) {
      mean_acc[a] += (r.acc[a][i] - mean_acc[a]) * 0.03;  // ~1 s moving mean: the gravity part
      const double d = r.acc[a][i] - mean_acc[a];
      lin += dir[a] * d;
      sq += d * d;
    }
    r.ppg[i] = pulse + artefact_gain * (lin + 0.3 * sq) + 0.05 * rng.normal();
  }
}

// Adds one recording as a subject of ws: 8 s windows, 2 s apart, label = mean HR of the window.
inline void add_subject(WindowSet& ws, const std::string& name, const Recording& r) {
  const int64_t n = static_cast<int64_t>(r.hr.size()), count = (n - kWindow) / kShift + 1;
  data::SubjectInfo info;
  info.name = name;
  info.first_window = ws.size();
  info.num_windows = count;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t s0 = k * kShift;
    const std::vector<double>* rows[kRows] = {&r.ppg, &r.acc[0], &r.acc[1], &r.acc[2]};
    for (const auto* row : rows)
      for (int t = 0; t < kWindow; ++t) ws.x.push_back(static_cast<float>((*row)[s0 + t]));
    double h = 0;
    for (int t = 0; t < kWindow; ++t) h += r.hr[s0 + t] / kWindow;
    ws.hr.push_back(static_cast<float>(h));
    ws.subject.push_back(static_cast<int32_t>(ws.subjects.size()));
  }
  ws.subjects.push_back(info);
}

inline WindowSet make_motion_set(uint64_t seed, double artefact_gain) {
  WindowSet ws;
  ws.source = "test:motion";
  const std::pair<Motion, const char*> kinds[] = {
      {Motion::ArmSweepUp, "arm_sweep"}, {Motion::RotationSweepDown, "rotation"}, {Motion::Punches, "punches"}};
  for (const auto& [m, name] : kinds) {
    data::SynthRng rng(seed * 7919 + static_cast<uint64_t>(m));
    Recording r;
    make_motion(m, 300.0, r, rng);
    make_ppg(300.0, artefact_gain, r, rng);
    add_subject(ws, name, r);
  }
  return ws;
}

}  // namespace pulsekd::testing
