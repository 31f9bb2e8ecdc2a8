// ECG R-peak detection and window heart rate (ground truth for WESAD, check for SPC 2015).
#pragma once
#include <cstddef>
#include <vector>

namespace pulsekd::data {

// R-peak times in seconds, after Pan & Tompkins, "A real-time QRS detection algorithm",
// IEEE TBME 32(3):230-236, 1985, run offline (zero-phase filters, so no group delay):
//   band-pass 5-15 Hz (2nd-order Butterworth high- and low-pass, forward-backward),
//   five-point derivative, squaring, 150 ms moving-window integration,
//   adaptive signal/noise peak levels (SPKI/NPKI, threshold NPKI + 0.25 (SPKI - NPKI)),
//   search-back at half the threshold when no beat came for 1.66 x the mean RR,
//   T-wave rejection (a candidate within 360 ms whose maximal slope is < 1/2 of the last
//   beat's), refractory period 200 ms.
// Each detection is then moved to the extremum of the band-passed ECG within +-50 ms (the
// polarity of the R wave is decided once per recording from the median of those extrema),
// then to the extremum of the baseline-removed raw ECG within +-20 ms.
// Works at any sampling rate >= 50 Hz (tested at 125 Hz and 700 Hz). Throws on fs < 50 Hz
// or non-finite samples.
std::vector<double> detect_rpeaks(const float* ecg, size_t n, double fs_hz);

// Heart rate per window: window k covers [k*shift_s, k*shift_s + window_s), for
// k < floor((duration_s - window_s) / shift_s) + 1. Its value is the mean instantaneous heart
// rate 60 / (t_i - t_{i-1}) of the beats i >= 1 with t_i inside the window. Intervals outside
// [0.25 s, 2.0 s] (above 240 or below 30 BPM: missed or spurious detections) are skipped.
// Windows with no usable interval are filled by linear interpolation between the nearest
// windows that have one (constant beyond the ends); if no window has one, throws.
std::vector<float> hr_per_window(const std::vector<double>& peaks_s, double duration_s,
                                 double window_s = 8, double shift_s = 2);

}  // namespace pulsekd::data
