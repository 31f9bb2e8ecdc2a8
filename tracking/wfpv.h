// WFPV heart-rate tracker: Wiener filtering of the PPG spectrum and the phase vocoder.
//
// Method: A. Temko, "Accurate heart rate monitoring during physical exercises using PPG",
// IEEE TBME 64(9):2016-2024, 2017 (first form: EMBC 2015, "Estimation of heart rate from
// photoplethysmography during physical exercise using Wiener filtering and the phase
// vocoder"). Per 8 s window, 2 s apart:
//  1. magnitude spectra of the PPG and of the three ACC axes in the analysis band;
//  2. two Wiener filters whose noise is the mean of the per-axis max-normalised ACC spectra
//     (averaged over the last noise_windows windows) and whose signal is a time average of
//     the last signal_windows max-normalised PPG spectra:
//       W1 = 1 - noise / signal           (signal: the raw PPG spectra; a negative W1 is
//                                          replaced by w1_negative = -1, the paper's limit)
//       W2 = signal / (signal + noise)    (signal: the past W2-cleaned spectra)
//     the two cleaned spectra, each divided by its standard deviation over the band, are
//     summed (the paper's ensemble): the "cleaned spectrum";
//  3. peak tracking: the largest cleaned value, weighted by a Gaussian of the distance to the
//     previous estimate, within +-search_bpm of it;
//  4. phase vocoder: the instantaneous frequency of every bin from the phase advance of the
//     PPG spectrum between this window and the previous one (2 s hop), smoothed over 3 bins;
//     the estimate is the average of the peak bin's frequency and its vocoder frequency;
//  5. the paper's smoothing: a change > jump_bpm is pulled jump_pull of the way to the linear
//     prediction from the last jump_history estimates; then a delay correction adds
//     delay_step_bpm per sign of the last delay_history changes (a trend is continued).
//
// Deviations from the paper (measured on SPC 2015, docs/results/baseline-spc2015.md):
//  - one PPG channel by default (the paper averages two z-scored PPGs). A set may carry the
//    second PPG channel (WindowSet::ppg2, spec `spc2015:DIR?ppg2=1`); the tracker then follows
//    the paper: the mean of both channels, each z-scored after its band-pass (here: each
//    channel's band spectrum scaled to unit energy over the analysis band). On SPC 2015 that
//    is worse on the mean (12 recordings 1.54 -> 1.84 BPM: DATA_10 6.8 -> 9.8, though 4 of the
//    12 improve), so the default spec does not carry PPG2. The plain mean of the raw channels
//    (`?ppg=mean`, a one-channel set) is another input: 1.35 there, but worse on the odd half
//    and on S04_T01 (docs/results/baseline-spc2015.md);
//  - 32 Hz windows, each row's least-squares line removed instead of the paper's 4th-order
//    Butterworth 0.4-4 Hz band-pass at 125 Hz and decimation to 25 Hz; no taper (as the
//    paper); the FFT zero-padded to nfft points (0.47 BPM bins at 4096);
//  - analysis and search band 40-200 BPM (the paper: 60-180);
//  - acquisition over the first acquire_windows windows (each takes the band's largest peak;
//    tracking starts from the last) instead of the first window alone, whose largest peak on
//    DATA_10 is a motion line;
//  - a fixed search width with a Gaussian weight, centred on the previous estimate, instead
//    of a hard window around the previous peak whose width adapts to the largest change seen
//    so far (+5 BPM): that width shrank during the rest phase and lost the rise of the HR;
//  - a way back from a motion line (the paper has none), the motion-line escape: when the
//    tracked peak sits on a motion line (mean normalised ACC spectrum >= escape_noise) while
//    a steady peak off motion lines (moving at most steady_bpm per window), escape_min_bpm or
//    more away and not at twice or half the tracked frequency (the pulse's own 2nd harmonic;
//    the arm swing at half the step cadence), exceeds escape_ratio of the tracked value for
//    escape_windows windows in a row, the track jumps to that peak. The same jump is made when
//    the track has been left behind (off motion lines): that peak is the band's largest and
//    exceeds escape_lost_ratio times the tracked value for escape_windows windows in a row. (A re-acquisition of the band's largest peak after a run of weak windows
//    was tried and dropped: no effect on SPC 2015, worse on the synthetic motion recordings.)
#pragma once
#include <cstdint>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::tracking {

// Defaults: search_sigma_bpm and the escape constants were chosen on the odd-numbered SPC 2015
// training recordings only (bench/wfpv_sweep.cpp), the rest from the paper or by construction.
struct WfpvOptions {
  int nfft = 4096;               // FFT length (power of two, 256..65536): bin = 32 Hz / nfft
  double band_lo_bpm = 40;       // analysis and search band, lower edge (BPM)
  double band_hi_bpm = 200;      // ... upper edge (BPM)
  int signal_windows = 15;       // Wiener "signal": average over this many windows (~30 s)
  int noise_windows = 1;         // Wiener "noise": ACC spectra averaged over this many windows
  double w1_negative = -1;       // value given to a negative W1 gain (the paper: -1)
  int acquire_windows = 5;       // first windows of a subject: largest peak of the whole band
  double search_bpm = 25;        // half-width of the search around the previous estimate
  double search_sigma_bpm = 12;  // Gaussian weight exp(-d^2 / 2 sigma^2) inside it
  double escape_noise = 0.5;     // motion line: mean normalised ACC spectrum >= this (0..1]
  double escape_ratio = 0.35;    // escape when a steady off-line peak exceeds this share ...
  double escape_min_bpm = 8;     // ... at least this far from the tracked peak (and from twice it) ...
  double steady_bpm = 6;         // ... moving at most this much per window ...
  int escape_windows = 5;        // ... for this many windows in a row (0: never)
  double escape_lost_ratio = 1.5;  // escape also when that peak is the band's largest and this many times the tracked one (0: never)
  double pv_weight = 0.5;        // estimate = (1 - w) * bin frequency + w * vocoder frequency
  double jump_bpm = 5;           // a change above this is a jump ...
  double jump_pull = 0.2;        // ... pulled this share towards the linear prediction
  int jump_history = 5;          // ... fitted on this many previous estimates
  double delay_step_bpm = 0.1;   // delay correction per sign of a recent change
  int delay_history = 7;         // ... over this many recent changes
  bool use_ppg2 = true;          // when the set carries a second PPG channel (WindowSet::ppg2): track the z-scored mean of both
};

// Throws std::invalid_argument naming the option and the accepted range.
void validate(const WfpvOptions& opt);

// Per-window heart rate (BPM) of windows [first, first + count) of ws, which must be in time
// order 2 s apart within each subject; tracking restarts whenever the subject changes.
// Returns (count) estimates.
std::vector<float> wfpv_track(const data::WindowSet& ws, int64_t first, int64_t count,
                              const WfpvOptions& opt = {});

// The cleaned spectrum of each window (step 2 above: before tracking) with negative values
// set to 0, linearly interpolated at the given BPM centres; 0 outside the analysis band.
// Returns (count, bpm_grid.size()) row-major, non-negative; a row may be all 0 when the
// filters remove everything. Same window order and restarts as wfpv_track.
std::vector<double> wfpv_spectra(const data::WindowSet& ws, int64_t first, int64_t count,
                                 const std::vector<double>& bpm_grid, const WfpvOptions& opt = {});

}  // namespace pulsekd::tracking
