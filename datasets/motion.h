// Synthetic wrist recordings whose motion is not running, with a known heart rate: arm swings
// and wrist rotation whose cadence sweeps through the heart rate, boxing-like punches at a
// cadence near it. The "synthetic shift" protocol of generalisation (docs/DATASETS.md): a model
// or tracker built on treadmill running is tested on motion it has never seen, and the
// tracker tests (tests/test_tracker.cpp) use it with known truth.
//
// One recording at 32 Hz: ACC (g) comes from an arm angle theta (swing about the shoulder) and
// a wrist rotation psi — gravity projected on the device axes plus tangential and centripetal
// terms, so every motion line has harmonics. The PPG is a two-wave pulse per beat plus a motion
// artefact (a fixed mix of the dynamic ACC axes and their square, artefact_gain pulse amplitudes
// per g) and noise. Heart rate: 30 s rest at 72 BPM, rise to 132 by 150 s, fall to 104 by 270 s.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

enum class Motion { ArmSweepUp, RotationSweepDown, Punches };
const char* motion_name(Motion m);  // "arm_sweep", "rotation", "punches"

struct MotionRecording {
  std::vector<double> hr;      // (n) instantaneous heart rate, BPM
  std::vector<double> ppg;     // (n)
  std::vector<double> acc[3];  // (3, n) g
};

// One recording of `seconds` (>= 8) of motion m; the same (m, gain, seed, seconds) gives the
// same samples on every platform.
MotionRecording make_motion_recording(Motion m, double artefact_gain, uint64_t seed, double seconds = 300);

// Heart rate (BPM) and motion frequency (Hz) of the generator at time t (s).
double motion_hr_course(double t);
double motion_hz(Motion m, double t);

// Appends r as a subject named `name`: 8 s windows 2 s apart, label = mean HR of the window.
void append_motion_recording(WindowSet& ws, const std::string& name, const MotionRecording& r);

struct MotionOptions {
  uint64_t first_seed = 1;
  int seeds = 1;              // recordings per motion kind: seeds first_seed .. first_seed + seeds - 1
  double artefact_gain = 1.5; // motion artefact, pulse amplitudes per g of dynamic acceleration
  double seconds = 300;
};
// The three motion kinds for each seed, 8 s windows 2 s apart, label = mean HR of the window.
// Subjects are named KIND (one seed) or KIND_sSEED.
WindowSet make_motion_set(const MotionOptions& opt);

}  // namespace pulsekd::data
