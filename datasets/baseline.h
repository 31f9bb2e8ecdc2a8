// Classical (training-free) heart-rate estimators on 32 Hz windows, as a bar for the networks.
#pragma once
#include <complex>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

// In-place iterative radix-2 Cooley-Tukey FFT; a.size() must be a power of two.
void fft_radix2(std::vector<std::complex<double>>& a);

// x[0..n) minus its least-squares line: (n) values. Baseline drift would otherwise leak
// (through a window's side lobes) into the lowest heart-rate bins and win a peak search.
std::vector<double> detrended(const float* x, int n);

// Periodogram of x[0..n) (mean removed, Hann window) zero-padded to nfft (power of two):
// returns nfft/2 + 1 bins, bin b at b * fs / nfft Hz.
std::vector<double> power_spectrum(const float* x, int n, int nfft);

// Frequency (BPM) of the largest periodogram peak of one window row within lo..hi BPM.
float spectral_peak_bpm(const float* x, int n, double fs_hz, double lo_bpm = 30,
                        double hi_bpm = 240, int nfft = 4096);

// Plain PPG-only peak picker: per window, the strongest PPG spectral peak in 40-220 BPM.
// Windows [first, first + count) of ws; returns (count) BPM estimates.
std::vector<float> ppg_peak_baseline(const WindowSet& ws, int64_t first, int64_t count);

// Spectral-peak tracker, a simplified TROIKA / WFPV:
//  TROIKA: Zhang, Pi, Liu, IEEE TBME 62(2):522-531, 2015 (spectral peak tracking);
//  WFPV: Temko, "Accurate heart rate monitoring during physical exercises using PPG",
//        IEEE TBME 64(9):2016-2024, 2017 (Wiener filtering of the PPG spectrum by the ACC).
// Per window: periodograms (linear trend removed, Hann, zero-padded to 4096 points = 0.47 BPM
// bins) of the PPG and the three ACC rows in 0.5-4 Hz, each normalised to max 1 and averaged
// with the previous window; Wiener-like weighting clean = P^2 / (P + 4 m A), where A is the
// mean normalised ACC spectrum (or half its value at f/2, for the 2nd harmonic of a motion
// line) and m in 0..1 grows with the ACC standard deviation (0 below 0.02 g, 1 from 0.12 g);
// then tracking in 40-220 BPM: the local maximum of clean(f) * exp(-(f - last)^2 / (2 * 12^2)),
// the change per window limited to 6 BPM; re-acquisition at the strongest cleaned peak after
// 3 windows in which the tracked peak was < 30 % of it; each subject starts from its
// strongest PPG peak. (Harmonic support was tried and dropped: it locks onto f/2.)
// Windows [first, first + count) in order; tracking restarts whenever the subject changes.
// Returns (count) BPM estimates.
std::vector<float> spectral_baseline(const WindowSet& ws, int64_t first, int64_t count);

// A per-window heart-rate estimator: windows [first, first + count) of a set, in order,
// restarting per subject -> (count) BPM. spectral_baseline and ppg_peak_baseline are ones.
using Estimator = std::function<std::vector<float>(const WindowSet&, int64_t first, int64_t count)>;

// Per-subject mean absolute errors of a tracker (named `method` in the report) and of the
// PPG-only peak picker over a whole WindowSet.
struct BaselineSubject {
  std::string name;
  int64_t windows = 0;
  double mae_tracker = 0, mae_ppg_peak = 0;
};
struct BaselineReport {
  std::string method;  // the tracker's name
  std::vector<BaselineSubject> subjects;
  double mean_tracker = 0, mean_ppg_peak = 0;  // means over subjects
};
BaselineReport evaluate_baselines(const WindowSet& ws, const std::string& method = "spectral",
                                  const Estimator& tracker = spectral_baseline);

}  // namespace pulsekd::data
