// The built-in default dataset: synthetic wrist PPG + accelerometer with known heart rate.
#pragma once
#include <cstdint>
#include <vector>

#include "datasets/dataset.h"
#include "engine/rng.h"

namespace pulsekd::data {

// The generator's random numbers: engine/rng.h's distributions over std::mt19937_64, the bit
// source the synthetic data was always drawn from.
using SynthRng = Mt64Rng;

// All knobs of the generator (docs/DATASETS.md describes the model behind each).
struct SynthOptions {
  uint64_t seed = 1;               // everything derives from it (per subject: splitmix64(seed, s))
  int subjects = 8;                // named synth00, synth01, ...
  double minutes = 6.0;            // per subject; 6 min = 177 windows
  double internal_hz = 128.0;      // generation rate; rows are resampled to 32 Hz (must be 32*k)
  double artifact_gain = 1.0;      // scales the ACC-driven motion artefact in the PPG
  double lock_probability = 0.35;  // share of running segments whose step rate locks near HR
  double noise = 0.03;             // white PPG sensor noise (std, pulse amplitude = 1)
};

enum class SynthActivity : uint8_t { Rest = 0, Walk = 1, Run = 2, Arm = 3 };

// Optional per-window ground truth beside the labels (for tests and analysis).
struct SynthTruth {
  std::vector<SynthActivity> activity;  // (N) activity at the window centre
  std::vector<float> step_hz;           // (N) step (run/walk) or arm-motion frequency, 0 at rest
  std::vector<uint8_t> locked;          // (N) 1 if the step rate is locked near the heart rate
};

// Subjects one after another, windows of 8 s with a 2 s shift at 32 Hz, rows [PPG, accX,
// accY, accZ] (ACC in g); label = mean instantaneous HR (60/RR) of the beats in the window
// (hr_per_window). Deterministic for a given seed (same binary / libm).
WindowSet make_synthetic(const SynthOptions& opt, SynthTruth* truth = nullptr);

}  // namespace pulsekd::data
