// The built-in default dataset: synthetic wrist PPG + accelerometer with known heart rate.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

// Portable random numbers: std::mt19937_64 is specified bit-exactly by the standard, but the
// std:: distributions are not (libstdc++ and libc++ differ), so they are written out here.
class SynthRng {
 public:
  explicit SynthRng(uint64_t seed) : g_(seed) {}
  uint64_t bits() { return g_(); }
  double uniform() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  double normal();  // Box-Muller, standard normal
  int index(int n) { return static_cast<int>(uniform() * n); }  // 0..n-1

 private:
  std::mt19937_64 g_;
  bool has_spare_ = false;
  double spare_ = 0;
};

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
