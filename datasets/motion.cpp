#include "datasets/motion.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "datasets/synth.h"

namespace pulsekd::data {

namespace {
constexpr double kPi = 3.14159265358979323846;

void make_motion(Motion m, double dur, MotionRecording& r, SynthRng& rng) {
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

void make_ppg(double dur, double artefact_gain, MotionRecording& r, SynthRng& rng) {
  const int n = static_cast<int>(dur * kRateHz);
  const double dt = 1 / kRateHz, dir[3] = {0.5, -0.7, 0.5};
  std::vector<double> mean_acc(3, 0.0);
  r.hr.assign(n, 0.0);
  r.ppg.assign(n, 0.0);
  double cardiac = 0;  // cardiac phase, cycles
  for (int i = 0; i < n; ++i) {
    const double t = i * dt;
    r.hr[i] = motion_hr_course(t);
    cardiac += r.hr[i] / 60 * dt;
    const double c = cardiac - std::floor(cardiac);  // systolic wave at 0.2, diastolic at 0.5
    const double pulse =
        std::exp(-0.5 * std::pow((c - 0.2) / 0.06, 2)) + 0.4 * std::exp(-0.5 * std::pow((c - 0.5) / 0.09, 2));
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

}  // namespace

void append_motion_recording(WindowSet& ws, const std::string& name, const MotionRecording& r) {
  const int64_t n = static_cast<int64_t>(r.hr.size()), count = (n - kWindow) / kShift + 1;
  SubjectInfo info;
  info.name = name;
  info.first_window = ws.size();
  info.num_windows = count;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t s0 = k * kShift;
    const std::vector<double>* rows[kRows] = {&r.ppg, &r.acc[0], &r.acc[1], &r.acc[2]};
    for (const auto* row : rows)
      for (int t = 0; t < kWindow; ++t) ws.x.push_back(static_cast<float>((*row)[size_t(s0 + t)]));
    double h = 0;
    for (int t = 0; t < kWindow; ++t) h += r.hr[size_t(s0 + t)] / kWindow;
    ws.hr.push_back(static_cast<float>(h));
    ws.subject.push_back(static_cast<int32_t>(ws.subjects.size()));
  }
  ws.subjects.push_back(info);
}

const char* motion_name(Motion m) {
  switch (m) {
    case Motion::ArmSweepUp: return "arm_sweep";
    case Motion::RotationSweepDown: return "rotation";
    case Motion::Punches: return "punches";
  }
  return "?";
}

double motion_hr_course(double t) {
  if (t < 30) return 72;
  if (t < 150) return 72 + 60 * (t - 30) / 120;
  if (t < 270) return 132 - 28 * (t - 150) / 120;
  return 104;
}

double motion_hz(Motion m, double t) {  // the cadence sweeps through the heart rate
  const double u = std::clamp((t - 30) / 270, 0.0, 1.0);
  switch (m) {
    case Motion::ArmSweepUp: return 0.7 + 2.1 * u;         // 42 -> 168 strokes per minute
    case Motion::RotationSweepDown: return 2.8 - 2.0 * u;  // 168 -> 48 turns per minute
    case Motion::Punches: return motion_hr_course(t) / 60 * (1.0 + 0.08 * std::sin(2 * kPi * t / 40));
  }
  return 0;
}

MotionRecording make_motion_recording(Motion m, double artefact_gain, uint64_t seed, double seconds) {
  if (!(seconds >= kWindow / kRateHz)) throw std::invalid_argument("motion recording: seconds must be >= 8");
  if (!std::isfinite(artefact_gain) || artefact_gain < 0) throw std::invalid_argument("motion recording: gain must be >= 0");
  SynthRng rng(seed * 7919 + static_cast<uint64_t>(m));
  MotionRecording r;
  make_motion(m, seconds, r, rng);
  make_ppg(seconds, artefact_gain, r, rng);
  return r;
}

WindowSet make_motion_set(const MotionOptions& opt) {
  if (opt.seeds < 1) throw std::invalid_argument("motion set: seeds must be >= 1");
  WindowSet ws;
  ws.source = "motion";
  for (int s = 0; s < opt.seeds; ++s) {
    const uint64_t seed = opt.first_seed + uint64_t(s);
    for (Motion m : {Motion::ArmSweepUp, Motion::RotationSweepDown, Motion::Punches}) {
      const std::string name = opt.seeds == 1 ? motion_name(m) : std::string(motion_name(m)) + "_s" + std::to_string(seed);
      append_motion_recording(ws, name, make_motion_recording(m, opt.artefact_gain, seed, opt.seconds));
    }
  }
  return ws;
}

}  // namespace pulsekd::data
