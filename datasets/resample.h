// Rational-rate resampling with a polyphase windowed-sinc FIR (Kaiser window).
#pragma once
#include <vector>

namespace pulsekd::data {

// Resamples x by up/down (both >= 1; the ratio is reduced by their gcd first).
//
// Filter: windowed sinc designed at the intermediate rate up*fs, cut-off (-6 dB point) at
// min(1/up, 1/down) * Nyquist, Kaiser window with beta = 7.857 (>= 80 dB stop-band
// attenuation) and a transition band 20 % of the cut-off wide (so the pass band is flat to
// 0.9 * new Nyquist and 1.1 * new Nyquist is the start of the stop band). Length
// L = 2*half + 1 taps with half = ceil(25 * max(up, down)) (Kaiser's formula for 80 dB and
// that transition width); e.g. 125 -> 32 Hz uses 6,251 taps, about 196 per output sample;
// 64 -> 32 Hz uses 101 taps. Each polyphase branch is normalised to unit DC gain.
//
// Output length ceil(n * up / down). The filter is zero-phase about its centre (delay
// compensated): output sample m is at input time m * down / up, so sample 0 is aligned to
// input sample 0. Outside [0, n) the input is extended with its edge values (not zeros), so a
// signal with a large DC offset (raw PPG) has no edge transient.
std::vector<float> resample_poly(const std::vector<float>& x, int up, int down);

// The filter resample_poly uses for (up, down) after gcd reduction, gain `up` in the pass
// band (exposed for tests and documentation).
std::vector<double> resample_filter(int up, int down);

}  // namespace pulsekd::data
