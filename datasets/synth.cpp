#include "datasets/synth.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "datasets/ecg.h"
#include "datasets/resample.h"

namespace pulsekd::data {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kHrMin = 45, kHrMax = 190;  // range of every trajectory (BPM)
constexpr double kMaxSlope = 2.0;            // BPM/s, fastest heart-rate change

struct Segment {
  SynthActivity act;
  double t0, t1;       // seconds
  double intensity;    // target share of the heart-rate reserve, 0..1
  double f_arm;        // arm-swing (or arm-motion) base frequency, Hz
  double swing;        // swing amplitude, rad
  double bounce;       // vertical footstrike acceleration, g
  double psi;          // wrist rotation about the forearm, rad
  double theta0;       // mean arm angle, rad
  bool locked;         // step rate follows the heart rate
  double lock_ratio;   // step rate / heart rate when locked
  double art_gain;     // artefact gain, pulse amplitudes per g
  double art_dir[3];   // how the three axes couple into the PPG
  double art_quad;     // gain of the squared dynamic acceleration (nonlinear coupling)
  double arm_f[3], arm_a[3], arm_p[3];  // random arm movement: three sinusoids
};

struct Subject {
  double rest_hr, max_hr, tau_up, tau_down, pulse_ratio, ptt;
};

// Sample grid of one subject at the internal rate.
struct Grid {
  double fs, dt, dur;  // Hz, s, s
  int64_t n;           // samples
};

// Walks the schedule alongside a time that only grows; each loop over the samples keeps its
// own cursor so that segments are found in O(1) amortised.
struct SegmentCursor {
  const std::vector<Segment>& segs;
  size_t si = 0;
  const Segment& at(double ti) {
    while (si + 1 < segs.size() && ti >= segs[si].t1) ++si;
    return segs[si];
  }
};

// Per-subject physiology; resting and maximal HR are spread over the subjects with the
// golden-ratio sequence so that any 8 subjects cover 45..190 BPM.
Subject draw_subject(int s, SynthRng& rng) {
  Subject sub;
  const double q1 = std::fmod(s * 0.6180339887, 1.0), q2 = std::fmod(0.5 + s * 0.3819660113, 1.0);
  sub.rest_hr = std::clamp(46.0 + 28.0 * q1 + rng.uniform(0, 2), kHrMin + 0.5, 80.0);
  sub.max_hr = std::clamp(158.0 + 34.0 * q2 + rng.uniform(-2, 2), 150.0, kHrMax);
  sub.tau_up = rng.uniform(25, 50);     // s: first-order rise at exercise onset
  sub.tau_down = rng.uniform(40, 90);   // s: slower exponential recovery
  sub.pulse_ratio = rng.uniform(0.35, 0.6);  // diastolic / systolic wave amplitude
  sub.ptt = rng.uniform(0.18, 0.28);    // s: R wave to pulse foot at the wrist
  return sub;
}

// Share of the subject's heart-rate reserve in use at heart rate h, 0..1.
double effort(const Subject& sub, double h) {
  return std::clamp((h - sub.rest_hr) / (sub.max_hr - sub.rest_hr), 0.0, 1.0);
}

// The k-th segment of the schedule, starting at t: its activity, length and motion/artefact
// parameters. The draws stay in this order: the synthetic data depends on it.
Segment draw_segment(const SynthOptions& opt, int k, double t, double dur, SynthRng& rng) {
  Segment g{};
  const double u = rng.uniform();
  g.act = k == 0 ? SynthActivity::Rest
          : k == 1 ? SynthActivity::Walk
          : k == 2 ? SynthActivity::Run
          : u < 0.2 ? SynthActivity::Rest
          : u < 0.45 ? SynthActivity::Walk
          : u < 0.8 ? SynthActivity::Run
                     : SynthActivity::Arm;
  g.t0 = t;
  // The first run is long (90-150 s) so that HR approaches the subject's maximum.
  const double len = k == 0 ? rng.uniform(40, 70)
                     : k == 2 ? rng.uniform(90, 150)
                     : g.act == SynthActivity::Run ? rng.uniform(40, 100)
                                                   : rng.uniform(25, 80);
  g.t1 = std::min(dur, t + len);
  g.psi = rng.uniform(-0.6, 0.6);
  g.theta0 = rng.uniform(-0.3, 0.3);
  for (double& d : g.art_dir) d = rng.normal();
  const double nd = std::sqrt(g.art_dir[0] * g.art_dir[0] + g.art_dir[1] * g.art_dir[1] +
                              g.art_dir[2] * g.art_dir[2]) + 1e-12;
  for (double& d : g.art_dir) d /= nd;
  g.art_quad = rng.uniform(0.0, 0.2);
  switch (g.act) {
    case SynthActivity::Rest:
      g.intensity = 0;
      g.art_gain = 0.5;
      break;
    case SynthActivity::Walk:
      g.intensity = rng.uniform(0.25, 0.4);
      g.f_arm = rng.uniform(0.8, 1.0);  // steps at 1.6-2.0 Hz
      g.swing = rng.uniform(0.3, 0.5);
      g.bounce = rng.uniform(0.1, 0.2);
      g.art_gain = rng.uniform(1.0, 2.5);
      break;
    case SynthActivity::Run:
      g.intensity = k == 2 ? rng.uniform(0.9, 1.0) : rng.uniform(0.55, 1.0);
      g.f_arm = rng.uniform(1.2, 1.5);  // steps at 2.4-3.0 Hz
      g.swing = rng.uniform(0.45, 0.7);
      g.bounce = rng.uniform(0.5, 1.0);
      g.locked = rng.uniform() < opt.lock_probability;
      g.lock_ratio = rng.uniform(0.96, 1.04);
      g.art_gain = rng.uniform(0.6, 1.5);
      break;
    case SynthActivity::Arm:
      g.intensity = rng.uniform(0.3, 0.55);
      for (int j = 0; j < 3; ++j) {
        g.arm_f[j] = rng.uniform(0.6, 2.5);
        g.arm_a[j] = rng.uniform(0.04, 0.2);
        g.arm_p[j] = rng.uniform(0, 2 * kPi);
      }
      g.f_arm = g.arm_f[0];
      g.art_gain = rng.uniform(0.8, 2.0);
      break;
  }
  g.art_gain *= opt.artifact_gain;
  return g;
}

// Activity schedule: rest first (so trackers can lock on), then walk and a hard run, then
// random segments of 25-80 s, until dur.
void draw_schedule(const SynthOptions& opt, double dur, SynthRng& rng, std::vector<Segment>& segs) {
  segs.clear();
  double t = 0;
  for (int k = 0; t < dur; ++k) {
    segs.push_back(draw_segment(opt, k, t, dur, rng));
    t = segs.back().t1;
  }
}

// Heart rate: first-order response to the segment's target plus a slow Ornstein-Uhlenbeck
// drift (std ~2.7 BPM, 60 s time constant). Returns (n) BPM.
std::vector<double> heart_rate(const Grid& gr, const Subject& sub, const std::vector<Segment>& segs,
                               SynthRng& rng) {
  std::vector<double> hr(gr.n);  // (n) BPM
  double h = sub.rest_hr, drift = 0;
  SegmentCursor cur{segs};
  for (int64_t i = 0; i < gr.n; ++i) {
    const double ti = i * gr.dt;
    const double target = sub.rest_hr + cur.at(ti).intensity * (sub.max_hr - sub.rest_hr);
    const double tau = target > h ? sub.tau_up : sub.tau_down;
    // First-order response, its slope capped at kMaxSlope (a heart does not jump by 10s of
    // BPM within a second even at a hard start).
    h += std::clamp((target - h) / tau, -kMaxSlope, kMaxSlope) * gr.dt;
    drift += -drift * gr.dt / 60.0 + 0.5 * std::sqrt(gr.dt) * rng.normal();
    hr[i] = std::clamp(h + drift, kHrMin, kHrMax);
  }
  return hr;
}

// Respiration: 0.2-0.45 Hz rising with effort, its phase integrated on the grid.
// Returns (n) respiration phase, rad.
std::vector<double> respiration(const Grid& gr, const Subject& sub, const std::vector<double>& hr,
                                SynthRng& rng) {
  std::vector<double> resp(gr.n);  // (n) rad
  double ph = rng.uniform(0, 2 * kPi);
  const double f0 = rng.uniform(0.2, 0.28);
  for (int64_t i = 0; i < gr.n; ++i) {
    ph += 2 * kPi * (f0 + 0.17 * effort(sub, hr[i])) * gr.dt;
    resp[i] = ph;
  }
  return resp;
}

// Beats: RR = 60/HR with respiratory sinus arrhythmia and random beat-to-beat variation,
// both shrinking with effort (HRV falls during exercise). Fills beats (B) with R times, s.
void beat_times(const Grid& gr, const Subject& sub, const std::vector<double>& hr,
                const std::vector<double>& resp, SynthRng& rng, std::vector<double>& beats) {
  const auto sample_at = [&](double tt) {
    return std::clamp<int64_t>(static_cast<int64_t>(tt * gr.fs), 0, gr.n - 1);
  };
  beats.clear();
  for (double tb = rng.uniform(0, 0.5); tb < gr.dur;) {
    beats.push_back(tb);
    const double h = hr[sample_at(tb)], x = effort(sub, h);
    const double ph = resp[sample_at(tb)];
    const double rr = 60.0 / h * (1 + 0.04 * (1 - 0.8 * x) * std::sin(ph) +
                                  0.015 * (1 - 0.6 * x) * rng.normal());
    tb += std::clamp(rr, 60.0 / (kHrMax + 2), 60.0 / (kHrMin - 1));
  }
}

// Pulse wave: per beat, a systolic Gaussian and a later, wider diastolic Gaussian (the gap
// between them is the dicrotic notch); both move closer together at short RR. Fills ppg (n).
void pulse_wave(const Grid& gr, const Subject& sub, const std::vector<double>& beats,
                const std::vector<double>& resp, SynthRng& rng, std::vector<float>& ppg) {
  const double fs = gr.fs;
  const int64_t n = gr.n;
  ppg.assign(n, 0.0f);
  for (size_t b = 0; b + 1 < beats.size(); ++b) {
    const double rr = beats[b + 1] - beats[b];
    const double x = effort(sub, 60.0 / rr);
    const int64_t ir = std::clamp<int64_t>(static_cast<int64_t>(beats[b] * fs), 0, n - 1);
    const double amp = (1 + 0.05 * rng.normal()) * (1 + 0.1 * std::sin(resp[ir]));
    const double foot = beats[b] + sub.ptt * (1 - 0.3 * x);
    const double mu[2] = {foot + 0.10 + 0.08 * rr, foot + 0.30 + 0.23 * rr};
    const double sg[2] = {0.05 + 0.03 * rr, 0.08 + 0.06 * rr};
    const double a[2] = {amp, amp * sub.pulse_ratio * (1 - 0.3 * x)};
    for (int j = 0; j < 2; ++j) {
      const int64_t i0 = std::max<int64_t>(0, static_cast<int64_t>((mu[j] - 4 * sg[j]) * fs));
      const int64_t i1 = std::min<int64_t>(n - 1, static_cast<int64_t>((mu[j] + 4 * sg[j]) * fs));
      for (int64_t i = i0; i <= i1; ++i) {
        const double z = (i * gr.dt - mu[j]) / sg[j];
        ppg[i] += static_cast<float>(a[j] * std::exp(-0.5 * z * z));
      }
    }
  }
}

// Arm angle theta (n, rad) and footstrike acceleration step (n, g, world vertical) per
// sample: a swing at the arm rate while walking or running (the step rate is 2 x the arm
// rate, or follows the heart rate when locked), slow posture shifts at rest, three random
// sinusoids for arm movements.
void arm_motion(const Grid& gr, const std::vector<Segment>& segs, const std::vector<double>& hr,
                SynthRng& rng, std::vector<double>& theta, std::vector<double>& step) {
  const double dt = gr.dt;
  theta.assign(gr.n, 0.0);
  step.assign(gr.n, 0.0);
  double ph_arm = 0, ph_step = 0, posture = 0;
  SegmentCursor cur{segs};
  for (int64_t i = 0; i < gr.n; ++i) {
    const double ti = i * dt;
    const Segment& g = cur.at(ti);
    // Smooth 2 s transitions between segments so theta'' stays bounded.
    const double ramp = std::clamp(std::min(ti - g.t0, g.t1 - ti) / 2.0, 0.0, 1.0);
    double th = g.theta0;
    switch (g.act) {
      case SynthActivity::Rest:
        posture += -posture * dt / 5.0 + 0.05 * std::sqrt(dt) * rng.normal();  // slow shifts
        th += posture;
        break;
      case SynthActivity::Walk:
      case SynthActivity::Run: {
        double f = g.f_arm;
        if (g.locked) f = std::clamp(hr[i] / 60.0 * g.lock_ratio, 2.0, 3.3) / 2;
        ph_arm += 2 * kPi * f * dt;
        ph_step += 2 * kPi * 2 * f * dt;
        th += ramp * g.swing * std::sin(ph_arm);
        const double c = std::max(0.0, std::cos(ph_step));
        step[i] = ramp * g.bounce * (c * c * c * c - 0.273);  // zero-mean impulse train
        break;
      }
      case SynthActivity::Arm:
        for (int j = 0; j < 3; ++j)
          th += ramp * g.arm_a[j] * std::sin(2 * kPi * g.arm_f[j] * ti + g.arm_p[j]);
        break;
    }
    theta[i] = th;
  }
}

// Accelerometer from a swinging arm (pendulum of length L about the shoulder): gravity seen
// in the device frame rotates with the arm angle theta and the wrist rotation psi; tangential
// (L theta'') and centripetal (L theta'^2) acceleration; footstrikes add a vertical impulse
// train at the step rate (2 x arm rate) rich in harmonics. Fills acc (3, n), g.
void accelerometer(const Grid& gr, const std::vector<Segment>& segs, const std::vector<double>& hr,
                   SynthRng& rng, std::vector<float> acc[3]) {
  constexpr double kArmM = 0.3, kG = 9.81;
  const double dt = gr.dt;
  const int64_t n = gr.n;
  for (int a = 0; a < 3; ++a) acc[a].assign(n, 0.0f);
  std::vector<double> theta, step;  // (n) arm angle, rad; (n) footstrike acceleration, g
  arm_motion(gr, segs, hr, rng, theta, step);
  SegmentCursor cur{segs};
  for (int64_t i = 0; i < n; ++i) {
    const Segment& g = cur.at(i * dt);
    const int64_t im = std::max<int64_t>(0, i - 1), ip = std::min<int64_t>(n - 1, i + 1);
    const double th = theta[i];
    const double thd = (theta[ip] - theta[im]) / ((ip - im) * dt);
    const double thdd = (theta[ip] - 2 * th + theta[im]) / (dt * dt);
    const double tang = kArmM * thdd / kG, cent = kArmM * thd * thd / kG;
    // Device frame: x along the forearm (towards the hand), y and z across it.
    const double up_x = -std::cos(th), up_t = std::sin(th);  // world "up" in the arm plane
    const double ax = up_x * (1 + step[i]) - cent;  // gravity reaction + bounce - centripetal
    const double at = up_t * (1 + step[i]) + tang;
    const double v[3] = {ax, at * std::cos(g.psi), at * std::sin(g.psi) + 0.05 * std::sin(g.psi)};
    for (int a = 0; a < 3; ++a)
      acc[a][i] = static_cast<float>(std::clamp(v[a] + 0.01 * rng.normal(), -4.0, 4.0));  // saturates at +-4 g
  }
}

// Centred 1 s moving average of each ACC axis = its slow (gravity) part. Fills mean_a (3, n).
void gravity_part(const Grid& gr, const std::vector<float> acc[3], std::vector<double> mean_a[3]) {
  const int64_t n = gr.n, w = static_cast<int64_t>(gr.fs);
  for (int a = 0; a < 3; ++a) {
    mean_a[a].assign(n, 0.0);
    double run = 0;
    for (int64_t i = 0; i < n + w / 2; ++i) {
      if (i < n) run += acc[a][i];
      if (i - w >= 0) run -= acc[a][i - w];
      const int64_t c = i - w / 2;
      if (c >= 0 && c < n) mean_a[a][c] = run / std::min<int64_t>(w, i + 1);
    }
  }
}

// Motion artefact: the PPG sees the dynamic acceleration (sensor-skin coupling, venous
// blood shifts) through segment-specific axis weights, a squared term (nonlinear coupling)
// and a first-order low-pass (tissue dynamics, 20-100 ms); plus respiration, baseline
// wander and white sensor noise. Adds to ppg (n).
void add_artefact(const SynthOptions& opt, const Grid& gr, const std::vector<Segment>& segs,
                  const std::vector<float> acc[3], const std::vector<double>& resp, SynthRng& rng,
                  std::vector<float>& ppg) {
  std::vector<double> mean_a[3];  // (3, n)
  gravity_part(gr, acc, mean_a);
  double wander_f[3], wander_a[3], wander_p[3];
  for (int j = 0; j < 3; ++j) {
    wander_f[j] = rng.uniform(0.01, 0.08);
    wander_a[j] = rng.uniform(0.1, 0.3);
    wander_p[j] = rng.uniform(0, 2 * kPi);
  }
  const double tau = rng.uniform(0.02, 0.1), alpha = gr.dt / (tau + gr.dt);
  double lp = 0;
  SegmentCursor cur{segs};
  for (int64_t i = 0; i < gr.n; ++i) {
    const double ti = i * gr.dt;
    const Segment& g = cur.at(ti);
    double lin = 0, sq = 0;
    for (int a = 0; a < 3; ++a) {
      const double d = acc[a][i] - mean_a[a][i];
      lin += g.art_dir[a] * d;
      sq += d * d;
    }
    lp += alpha * (g.art_gain * (lin + g.art_quad * sq) - lp);
    double base = 0.15 * std::sin(resp[i]);
    for (int j = 0; j < 3; ++j) base += wander_a[j] * std::sin(2 * kPi * wander_f[j] * ti + wander_p[j]);
    ppg[i] += static_cast<float>(lp + base + opt.noise * rng.normal());
  }
}

// One subject at the internal rate: fills ppg (n), acc (3, n), beats, and the segments. Every
// stage draws from the one subject stream in this order, so the order of the calls is part
// of the synthetic data.
void simulate(const SynthOptions& opt, int s, std::vector<float>& ppg, std::vector<float> acc[3],
              std::vector<double>& beats, std::vector<Segment>& segs) {
  SynthRng rng(splitmix64(opt.seed ^ splitmix64(static_cast<uint64_t>(s) + 1)));
  Grid gr;
  gr.fs = opt.internal_hz;
  gr.dt = 1.0 / gr.fs;
  gr.dur = opt.minutes * 60.0;
  gr.n = static_cast<int64_t>(std::llround(gr.dur * gr.fs));

  const Subject sub = draw_subject(s, rng);
  draw_schedule(opt, gr.dur, rng, segs);
  const std::vector<double> hr = heart_rate(gr, sub, segs, rng);      // (n) BPM
  const std::vector<double> resp = respiration(gr, sub, hr, rng);     // (n) rad
  beat_times(gr, sub, hr, resp, rng, beats);
  pulse_wave(gr, sub, beats, resp, rng, ppg);
  accelerometer(gr, segs, hr, rng, acc);
  add_artefact(opt, gr, segs, acc, resp, rng, ppg);
}

}  // namespace

WindowSet make_synthetic(const SynthOptions& opt, SynthTruth* truth) {
  if (opt.subjects < 1 || opt.subjects > 1000)
    throw std::invalid_argument("synth: subjects must be 1..1000, got " + std::to_string(opt.subjects));
  if (!(opt.minutes >= 0.5 && opt.minutes <= 600))
    throw std::invalid_argument("synth: minutes must be 0.5..600, got " + std::to_string(opt.minutes));
  const int ratio = static_cast<int>(std::lround(opt.internal_hz / kRateHz));
  if (ratio < 1 || std::fabs(ratio * kRateHz - opt.internal_hz) > 1e-9)
    throw std::invalid_argument("synth: internal_hz must be a multiple of 32, got " +
                                std::to_string(opt.internal_hz));
  WindowSet ws;
  ws.source = "synth:" + std::to_string(opt.seed);
  if (truth) *truth = SynthTruth{};
  for (int s = 0; s < opt.subjects; ++s) {
    std::vector<float> ppg, acc[3];
    std::vector<double> beats;
    std::vector<Segment> segs;
    simulate(opt, s, ppg, acc, beats, segs);
    const double dur = opt.minutes * 60.0;
    const std::vector<float> labels = hr_per_window(beats, dur);  // (W)
    std::vector<float> rows[kRows] = {  // (4, n / ratio)
        resample_poly(ppg, 1, ratio), resample_poly(acc[0], 1, ratio),
        resample_poly(acc[1], 1, ratio), resample_poly(acc[2], 1, ratio)};
    const int64_t W = std::min<int64_t>(
        static_cast<int64_t>(labels.size()),
        (static_cast<int64_t>(rows[0].size()) - kWindow) / kShift + 1);
    SubjectInfo info;
    char name[32];
    std::snprintf(name, sizeof name, "synth%02d", s);
    info.name = name;
    info.first_window = ws.size();
    info.num_windows = W;
    info.duration_s = dur;
    info.rates = "synthetic, generated at " + std::to_string(static_cast<int>(opt.internal_hz)) + " Hz";
    info.label_min = *std::min_element(labels.begin(), labels.begin() + W);
    info.label_max = *std::max_element(labels.begin(), labels.begin() + W);
    const size_t off = ws.x.size();
    ws.x.resize(off + static_cast<size_t>(W) * kRows * kWindow);
    for (int64_t k = 0; k < W; ++k) {
      float* dst = ws.x.data() + off + static_cast<size_t>(k) * kRows * kWindow;  // (4, 256)
      for (int c = 0; c < kRows; ++c) std::copy_n(rows[c].begin() + k * kShift, kWindow, dst + c * kWindow);
      ws.hr.push_back(labels[k]);
      ws.subject.push_back(s);
      if (truth) {
        const double tc = k * 2.0 + 4.0;
        const Segment* g = &segs.back();
        for (const auto& sg : segs)
          if (tc >= sg.t0 && tc < sg.t1) { g = &sg; break; }
        truth->activity.push_back(g->act);
        const double f = g->locked ? labels[k] / 60.0 * g->lock_ratio
                         : g->act == SynthActivity::Arm ? g->f_arm
                         : g->act == SynthActivity::Rest ? 0.0 : 2 * g->f_arm;
        truth->step_hz.push_back(static_cast<float>(f));
        truth->locked.push_back(g->locked ? 1 : 0);
      }
    }
    ws.subjects.push_back(info);
  }
  return ws;
}

}  // namespace pulsekd::data
