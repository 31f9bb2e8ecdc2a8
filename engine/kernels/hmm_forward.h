// Forward filtering of a hidden-Markov model over heart-rate states (tracking/hmm.h), as
// freestanding loops: the host tracker runs them in double, the firmware (mcu/runtime/pk_hmm.h)
// in float. No allocation: the caller owns the belief (S) and one scratch row (S).
//
// Transition: p(j | i) = row_scale[i] * taps[|i - j|] (|i - j| <= W) + jump, the Laplace kernel
// of tracking::TransitionPrior on a uniform grid, truncated to a band of half-width W (W + 1
// taps, symmetric: stored once), each row normalised over its band, plus a uniform jump.
// With W = S - 1 this is exactly TransitionPrior::matrix; hmm_band_width picks the W past which
// the taps fall below a tolerance. Only <math.h> (kmath.h); the float exponential is our own
// (hmm_exp) so the firmware, which links no libm, and the host compute the same bits.
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

template <class T>
struct HmmBand {
  int32_t states = 0;        // S
  int32_t half_width = 0;    // W, 0 <= W < S
  const T* taps = nullptr;   // (W + 1) exp(-d * step / scale), d = 0..W
  const T* row_scale = nullptr;  // (S) (1 - floor) / sum of row i's band taps
  T jump = T(0);             // floor / S: the uniform jump added to every entry
};

// exp(x) in float with no libm: x = n ln2 + r, |r| <= ln2 / 2, a degree-7 Taylor polynomial in
// r (truncation < 3e-8 relative), then 2^n through the exponent bits. About 2 ulp; the same
// IEEE operations in the same order on every target, so host and firmware agree bit for bit.
inline float hmm_exp(float x) {
  if (!(x > -87.0f)) return 0.0f;  // below the smallest normal (and NaN): a probability of 0
  if (x > 88.0f) x = 88.0f;        // saturate below FLT_MAX
  const float t = x * 1.44269504f;
  const int32_t n = int32_t(t + (t >= 0.0f ? 0.5f : -0.5f));
  const float nf = float(n);
  // ln 2 split so n * hi is exact for |n| < 2^11
  const float r = (x - nf * 0.693145751953125f) - nf * 1.42860677e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = uint32_t(n + 127) << 23;  // n in [-126, 127]
  float scale;
  __builtin_memcpy(&scale, &bits, 4);
  return p * scale;
}
inline double hmm_exp(double x) { return k_exp(x); }  // host only (the firmware runs float)

template <class T>
inline bool hmm_finite_positive(T v) { return v > T(0) && v - v == T(0); }  // no isfinite in C++ freestanding

// The default tolerance of the band. Every predicted probability is at least the jump
// (floor / S, 1.6e-6 for the default floor and 64 states), and a dropped tap below 1e-13 changes
// it by less than float rounding (6e-8 of it): the band is the full matrix as far as float sees.
constexpr double kHmmBandTol = 1e-13;

// The smallest W past which every tap exp(-d * step / scale) is below tol (at most S - 1).
// Host side (k_log).
inline int32_t hmm_band_width(double step_bpm, double scale_bpm, int32_t states, double tol) {
  const double w = -k_log(tol) * scale_bpm / step_bpm;  // taps[d] < tol exactly for d > w
  return w >= double(states - 1) ? states - 1 : int32_t(w);
}

// Fills taps (W + 1) and row_scale (S) of the Laplace transition of scale `scale_bpm` on a grid
// `step_bpm` apart, mixed with `floor` of a uniform jump; returns the jump (floor / S).
template <class T>
T hmm_band_fill(T* taps, T* row_scale, int32_t states, int32_t half_width, T step_bpm, T scale_bpm, T floor) {
  for (int32_t d = 0; d <= half_width; ++d) taps[d] = hmm_exp(-T(d) * step_bpm / scale_bpm);
  for (int32_t i = 0; i < states; ++i) {
    T z = T(0);
    const int32_t lo = k_max<int32_t>(0, i - half_width), hi = k_min<int32_t>(states - 1, i + half_width);
    for (int32_t j = lo; j <= hi; ++j) z += taps[j > i ? j - i : i - j];
    row_scale[i] = (T(1) - floor) / z;
  }
  return floor / T(states);
}

// Prediction with a dense (S, S) row-stochastic transition: pred[j] = sum_i prev[i] a[i, j].
template <class T>
void hmm_predict_dense(T* pred, const T* prev, const T* a, int32_t states) {  // (S), (S), (S, S)
  for (int32_t j = 0; j < states; ++j) pred[j] = T(0);
  for (int32_t i = 0; i < states; ++i) {
    if (prev[i] == T(0)) continue;
    const T* row = a + (size_t)i * states;
    for (int32_t j = 0; j < states; ++j) pred[j] += prev[i] * row[j];
  }
}

// Prediction with the band, in place: belief (S) holds p(HR_t-1 | obs) and receives
// p(HR_t | obs up to t-1). scratch (S).
template <class T>
void hmm_predict_band(const HmmBand<T>& a, T* belief, T* scratch) {
  const int32_t s = a.states, w = a.half_width;
  T total = T(0);
  for (int32_t i = 0; i < s; ++i) {
    total += belief[i];
    scratch[i] = belief[i] * a.row_scale[i];
  }
  const T jump = a.jump * total;
  for (int32_t j = 0; j < s; ++j) {
    const int32_t lo = k_max<int32_t>(0, j - w), hi = k_min<int32_t>(s - 1, j + w);
    // i = lo .. j reads taps[j - lo] down to taps[0], then i = j + 1 .. hi taps[1] up: two
    // straight walks, no |i - j| per tap (the firmware's inner loop)
    T acc = T(0);
    const T* u = scratch + lo;
    for (int32_t d = j - lo; d >= 0; --d) acc += *u++ * a.taps[d];
    for (int32_t d = 1; d <= hi - j; ++d) acc += *u++ * a.taps[d];
    belief[j] = acc + jump;
  }
}

// Correction: belief (S) = belief * lik, normalised to sum 1; when every state is ruled out
// (sum 0, or not finite) the belief becomes uniform.
template <class T>
void hmm_correct(T* belief, const T* lik, int32_t states) {
  T sum = T(0);
  for (int32_t j = 0; j < states; ++j) sum += (belief[j] *= lik[j]);
  if (hmm_finite_positive(sum)) {
    for (int32_t j = 0; j < states; ++j) belief[j] /= sum;
  } else {
    for (int32_t j = 0; j < states; ++j) belief[j] = T(1) / T(states);
  }
}

// The prior of step t, in place in belief (S): the previous step's posterior pushed through the
// band, or (first) uniform. scratch (S) is free again afterwards.
template <class T>
void hmm_prior_step(const HmmBand<T>& a, T* belief, T* scratch, bool first) {
  if (first) {
    for (int32_t j = 0; j < a.states; ++j) belief[j] = T(1) / T(a.states);
  } else {
    hmm_predict_band(a, belief, scratch);
  }
}

// One step of the filter: belief (S) = p(HR_t | lik 0..t) from the previous step's belief.
// lik (S), scratch (S).
template <class T>
void hmm_forward_step(const HmmBand<T>& a, T* belief, const T* lik, T* scratch, bool first) {
  hmm_prior_step(a, belief, scratch, first);
  hmm_correct(belief, lik, a.states);
}

// Posterior median (BPM): bin j spreads its mass evenly between the midpoints to its neighbours
// (the outer bins as wide as their inner neighbour gap). centres (S) increasing, S >= 2.
template <class T>
T hmm_median(const T* post, const T* centres, int32_t states) {
  T cdf = T(0);
  for (int32_t j = 0; j < states; ++j) {
    const T lo = j > 0 ? T(0.5) * (centres[j - 1] + centres[j]) : centres[0] - T(0.5) * (centres[1] - centres[0]);
    const T hi = j + 1 < states ? T(0.5) * (centres[j] + centres[j + 1])
                                : centres[states - 1] + T(0.5) * (centres[states - 1] - centres[states - 2]);
    if (cdf + post[j] >= T(0.5) && post[j] > T(0)) return lo + (T(0.5) - cdf) / post[j] * (hi - lo);
    cdf += post[j];
  }
  return centres[states - 1];
}

// Likelihood (S) of a point estimate hr: a Laplace of scale `scale_bpm` peaking at 1 on the
// closest centre, plus a constant `outlier` (tracking::laplace_likelihoods).
template <class T>
void hmm_laplace_likelihood(T* lik, const T* centres, int32_t states, T hr, T scale_bpm, T outlier) {
  T d0 = k_abs(centres[0] - hr);
  for (int32_t j = 1; j < states; ++j) d0 = k_min(d0, k_abs(centres[j] - hr));
  for (int32_t j = 0; j < states; ++j)
    lik[j] = (T(1) - outlier) * hmm_exp(-(k_abs(centres[j] - hr) - d0) / scale_bpm) + outlier;
}

// A distribution p (bins) on increasing centres `src`, linearly interpolated onto `centres` (S)
// (held constant outside src), plus eps times its mean (tracking::resample_likelihoods).
template <class T>
void hmm_resample(T* lik, const T* centres, int32_t states, const T* p, const T* src, int32_t bins, T eps) {
  T mean = T(0);
  for (int32_t k = 0; k < bins; ++k) mean += p[k] / T(bins);
  int32_t k = 1;  // src[k - 1] < x <= src[k] for the current centre (centres increase)
  for (int32_t j = 0; j < states; ++j) {
    const T x = centres[j];
    T v;
    if (x <= src[0]) {
      v = p[0];
    } else if (x >= src[bins - 1]) {
      v = p[bins - 1];
    } else {
      while (src[k] <= x) ++k;  // first src above x (upper bound)
      const T f = (x - src[k - 1]) / (src[k] - src[k - 1]);
      v = (T(1) - f) * p[k - 1] + f * p[k];
    }
    lik[j] = v + eps * mean;
  }
}

// Softmax of a binned head's logits (bins) into p (bins).
template <class T>
void hmm_softmax(T* p, const T* logits, int32_t bins) {
  T mx = logits[0];
  for (int32_t k = 1; k < bins; ++k) mx = k_max(mx, logits[k]);
  T sum = T(0);
  for (int32_t k = 0; k < bins; ++k) sum += (p[k] = hmm_exp(logits[k] - mx));
  for (int32_t k = 0; k < bins; ++k) p[k] /= sum;
}

}  // namespace pulsekd::kernels
