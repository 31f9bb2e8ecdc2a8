#include "datasets/ecg.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <utility>

namespace pulsekd::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Direct-form-I biquad coefficients (a0 normalised to 1).
struct Biquad {
  double b0, b1, b2, a1, a2;
};

// 2nd-order Butterworth (Q = 1/sqrt 2) by the bilinear transform with pre-warping.
Biquad butter2(double fc_hz, double fs_hz, bool highpass) {
  const double k = std::tan(kPi * fc_hz / fs_hz);
  const double q = 1.0 / std::sqrt(2.0);
  const double norm = 1.0 / (1.0 + k / q + k * k);
  Biquad f{};
  if (highpass) {
    f.b0 = norm;
    f.b1 = -2.0 * norm;
  } else {
    f.b0 = k * k * norm;
    f.b1 = 2.0 * f.b0;
  }
  f.b2 = f.b0;
  f.a1 = 2.0 * (k * k - 1.0) * norm;
  f.a2 = (1.0 - k / q + k * k) * norm;
  return f;
}

void run_biquad(const Biquad& f, std::vector<double>& x) {
  double x1 = x.empty() ? 0 : x[0], x2 = x1;  // start "at rest" on the first value
  double y1 = 0, y2 = 0;
  if (!x.empty()) {
    // Steady state for a constant input x[0]: y = x0 * H(1).
    const double dc = (f.b0 + f.b1 + f.b2) / (1.0 + f.a1 + f.a2);
    y1 = y2 = x[0] * dc;
  }
  for (double& v : x) {
    const double y = f.b0 * v + f.b1 * x1 + f.b2 * x2 - f.a1 * y1 - f.a2 * y2;
    x2 = x1;
    x1 = v;
    y2 = y1;
    y1 = y;
    v = y;
  }
}

// Zero-phase filtering (forward, then backward) of x with a cascade of biquads, after odd
// reflection of `pad` samples at both ends to keep the start-up transient out of the data.
void filtfilt(const std::vector<Biquad>& cascade, std::vector<double>& x, size_t pad) {
  const size_t n = x.size();
  if (n < 2) return;
  pad = std::min(pad, n - 1);
  std::vector<double> y(n + 2 * pad);  // (pad + n + pad)
  for (size_t i = 0; i < pad; ++i) {
    y[i] = 2 * x[0] - x[pad - i];
    y[pad + n + i] = 2 * x[n - 1] - x[n - 2 - i];
  }
  std::copy(x.begin(), x.end(), y.begin() + pad);
  for (const auto& f : cascade) run_biquad(f, y);
  std::reverse(y.begin(), y.end());
  for (const auto& f : cascade) run_biquad(f, y);
  std::reverse(y.begin(), y.end());
  std::copy(y.begin() + pad, y.begin() + pad + n, x.begin());
}

// Index of the extremum of sign*v within [c - r, c + r] clipped to [0, n).
int64_t argmax_near(const std::vector<double>& v, int64_t c, int64_t r, double sign) {
  const int64_t n = static_cast<int64_t>(v.size());
  const int64_t lo = std::max<int64_t>(0, c - r), hi = std::min<int64_t>(n - 1, c + r);
  int64_t best = std::clamp<int64_t>(c, 0, n - 1);
  for (int64_t i = lo; i <= hi; ++i)
    if (sign * v[i] > sign * v[best]) best = i;
  return best;
}

// Samples in sec seconds at fs_hz, at least 1.
int64_t samples(double sec, double fs_hz) {
  return std::max<int64_t>(1, std::lround(sec * fs_hz));
}

// Pan-Tompkins steps 1-4 on one recording.
struct QrsSignals {
  std::vector<double> bp;   // (n) ECG band-passed 5-15 Hz
  std::vector<float> d;     // (n) five-point derivative of bp, units per second
  std::vector<float> mwi;   // (n) squared d, centred moving-window integral over w samples
};

QrsSignals qrs_signals(const float* ecg, size_t n, double fs_hz, int64_t w) {
  const int64_t N = static_cast<int64_t>(n);
  QrsSignals q;
  // 1. Band-pass 5-15 Hz: the QRS energy band, rejecting baseline wander, P/T waves, mains.
  q.bp.assign(ecg, ecg + n);
  filtfilt({butter2(5.0, fs_hz, true), butter2(15.0, fs_hz, false)}, q.bp, samples(1.0, fs_hz));

  // 2. Five-point derivative (centred, so no delay), in units per second.
  const std::vector<double>& bp = q.bp;
  q.d.assign(n, 0.0f);
  for (int64_t i = 2; i + 2 < N; ++i)
    q.d[i] = static_cast<float>((2 * bp[i + 2] + bp[i + 1] - bp[i - 1] - 2 * bp[i - 2]) * fs_hz / 8);

  // 3-4. Squaring and centred moving-window integration (w = 150 ms).
  const std::vector<float>& d = q.d;
  q.mwi.assign(n, 0.0f);
  double run = 0;
  const int64_t off = w / 2;
  for (int64_t i = 0; i < N + off; ++i) {
    if (i < N) run += static_cast<double>(d[i]) * d[i];
    if (i - w >= 0 && i - w < N) run -= static_cast<double>(d[i - w]) * d[i - w];
    const int64_t c = i - off;
    if (c >= 0 && c < N) q.mwi[c] = static_cast<float>(std::max(0.0, run) / w);
  }
  return q;
}

// Step 6: adaptive signal/noise levels over the candidate peaks of mwi, with search-back,
// T-wave rejection and the refractory period. Candidates are fed in time order.
class BeatClassifier {
 public:
  BeatClassifier(const QrsSignals& q, double fs_hz, int64_t w)
      : d_(q.d), mwi_(q.mwi), fs_hz_(fs_hz), w_(w), refr_(samples(0.200, fs_hz)) {
    // Learning phase on the first 2 s.
    const int64_t N = static_cast<int64_t>(mwi_.size());
    const int64_t learn = std::min<int64_t>(N, samples(2.0, fs_hz));
    double mx = 0, mean = 0;
    for (int64_t i = 0; i < learn; ++i) {
      mx = std::max<double>(mx, mwi_[i]);
      mean += mwi_[i];
    }
    mean /= learn;
    spki_ = mx / 3.0;
    npki_ = mean / 2.0;
  }

  void feed(int64_t i) {
    // Search-back: a beat is overdue, so take the largest skipped candidate above thr1/2.
    if (!beats_.empty() && i - beats_.back() > 1.66 * rr_mean()) {
      int64_t best = -1;
      for (int64_t k : noise_)
        if (k - beats_.back() >= refr_ && i - k >= refr_ && mwi_[k] > 0.5 * thr1() &&
            (best < 0 || mwi_[k] > mwi_[best]))
          best = k;
      if (best >= 0) accept(best, 0.25);
    }
    const bool above = mwi_[i] > thr1();
    bool is_beat = above && (beats_.empty() || i - beats_.back() >= refr_);
    if (is_beat && !beats_.empty() && i - beats_.back() < samples(0.360, fs_hz_) &&
        slope(i) < 0.5f * beat_slope_.back())
      is_beat = false;  // T wave: close to the last beat and much less steep
    if (is_beat) {
      accept(i, 0.125);
    } else if (above && !beats_.empty() && i - beats_.back() < refr_ &&
               mwi_[i] > mwi_[beats_.back()] &&
               (beats_.size() < 2 || i - beats_[beats_.size() - 2] >= refr_)) {
      // Inside the refractory period but larger: the earlier detection was the artefact.
      beats_.back() = i;
      beat_slope_.back() = slope(i);
    } else {
      npki_ = 0.125 * mwi_[i] + 0.875 * npki_;
      noise_.push_back(i);
    }
  }

  const std::vector<int64_t>& beats() const { return beats_; }

 private:
  double thr1() const { return npki_ + 0.25 * (spki_ - npki_); }

  double rr_mean() const {
    if (rr_.empty()) return static_cast<double>(samples(1.0, fs_hz_));
    double s = 0;
    for (auto v : rr_) s += v;
    return s / rr_.size();
  }

  // Maximal |derivative| in the 150 ms before the peak.
  float slope(int64_t i) const {
    float s = 0;
    for (int64_t k = std::max<int64_t>(0, i - w_); k <= i; ++k) s = std::max(s, std::fabs(d_[k]));
    return s;
  }

  void accept(int64_t i, double weight) {
    if (!beats_.empty()) {
      rr_.push_back(i - beats_.back());
      if (rr_.size() > 8) rr_.pop_front();
    }
    beats_.push_back(i);
    beat_slope_.push_back(slope(i));
    spki_ = weight * mwi_[i] + (1 - weight) * spki_;
    noise_.clear();
  }

  const std::vector<float>& d_;    // (n)
  const std::vector<float>& mwi_;  // (n)
  double fs_hz_;
  int64_t w_, refr_;               // samples: integration window, refractory period
  double spki_ = 0, npki_ = 0;     // signal and noise peak levels
  std::vector<int64_t> beats_;     // indices into mwi
  std::vector<float> beat_slope_;  // maximal slope of each accepted beat
  std::deque<int64_t> rr_;         // last 8 RR intervals (samples)
  std::vector<int64_t> noise_;     // candidates since the last beat, for search-back
};

// Step 7: moves each detection to the R wave and returns the R times, s. The polarity is
// decided once, from the median of the positive and negative extrema of the band-passed ECG
// bp (n) around the detections; then each beat moves onto the raw ECG (0.5 Hz high-pass
// only, zero phase), where the R apex lies.
std::vector<double> refine_to_r(const float* ecg, size_t n, double fs_hz, std::vector<double> bp,
                                std::vector<int64_t> beats) {
  const int64_t r50 = samples(0.050, fs_hz), refr = samples(0.200, fs_hz);
  std::vector<double> pos, neg;  // (B) extrema of bp near each beat
  for (int64_t b : beats) {
    pos.push_back(bp[argmax_near(bp, b, r50, 1.0)]);
    neg.push_back(-bp[argmax_near(bp, b, r50, -1.0)]);
  }
  std::nth_element(pos.begin(), pos.begin() + pos.size() / 2, pos.end());
  std::nth_element(neg.begin(), neg.begin() + neg.size() / 2, neg.end());
  const double sign = pos[pos.size() / 2] >= neg[neg.size() / 2] ? 1.0 : -1.0;
  for (auto& b : beats) b = argmax_near(bp, b, r50, sign);

  bp.assign(ecg, ecg + n);
  filtfilt({butter2(0.5, fs_hz, true)}, bp, samples(2.0, fs_hz));
  const int64_t r20 = samples(0.020, fs_hz);
  std::vector<double> out;
  out.reserve(beats.size());
  int64_t last = -refr;
  for (int64_t b : beats) {
    const int64_t r = argmax_near(bp, b, r20, sign);
    if (r - last < refr) continue;  // two detections refined onto the same R wave
    out.push_back(r / fs_hz);
    last = r;
  }
  return out;
}

}  // namespace

std::vector<double> detect_rpeaks(const float* ecg, size_t n, double fs_hz) {
  if (!(fs_hz >= 50.0))
    throw std::invalid_argument("detect_rpeaks: sampling rate must be >= 50 Hz, got " +
                                std::to_string(fs_hz));
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(ecg[i]))
      throw std::invalid_argument("detect_rpeaks: non-finite ECG sample at index " +
                                  std::to_string(i));
  if (static_cast<int64_t>(n) < samples(2.0, fs_hz)) return {};
  const int64_t N = static_cast<int64_t>(n);

  // 1-4. Band-pass, derivative, squaring, 150 ms integration.
  const int64_t w = samples(0.150, fs_hz);
  QrsSignals q = qrs_signals(ecg, n, fs_hz, w);

  // 5. Candidate peaks: every local maximum of the integrated signal (it is smooth over
  // 150 ms, so there are few); the refractory rule in BeatClassifier decides between close ones.
  const std::vector<float>& mwi = q.mwi;
  std::vector<int64_t> cand;
  for (int64_t i = 1; i + 1 < N; ++i)
    if (mwi[i] > mwi[i - 1] && mwi[i] >= mwi[i + 1]) cand.push_back(i);
  if (cand.empty()) return {};

  // 6. Adaptive thresholds.
  BeatClassifier cls(q, fs_hz, w);
  for (int64_t i : cand) cls.feed(i);
  if (cls.beats().empty()) return {};

  // 7. Onto the R apex.
  return refine_to_r(ecg, n, fs_hz, std::move(q.bp), cls.beats());
}

std::vector<float> hr_per_window(const std::vector<double>& peaks_s, double duration_s,
                                 double window_s, double shift_s) {
  if (!(window_s > 0) || !(shift_s > 0))
    throw std::invalid_argument("hr_per_window: window and shift must be > 0");
  if (duration_s < window_s) return {};
  const int64_t W = static_cast<int64_t>(std::floor((duration_s - window_s) / shift_s + 1e-9)) + 1;
  std::vector<double> sum(W, 0.0);  // (W)
  std::vector<int> cnt(W, 0);       // (W)
  for (size_t i = 1; i < peaks_s.size(); ++i) {
    const double t = peaks_s[i], rr = peaks_s[i] - peaks_s[i - 1];
    if (rr < 0.25 || rr > 2.0) continue;
    // Windows k with k*shift <= t < k*shift + window.
    int64_t k_lo = static_cast<int64_t>(std::floor((t - window_s) / shift_s)) + 1;
    int64_t k_hi = static_cast<int64_t>(std::floor(t / shift_s));
    k_lo = std::max<int64_t>(k_lo, 0);
    k_hi = std::min<int64_t>(k_hi, W - 1);
    for (int64_t k = k_lo; k <= k_hi; ++k) {
      if (t < k * shift_s || t >= k * shift_s + window_s) continue;  // rounding guard
      sum[k] += 60.0 / rr;
      cnt[k] += 1;
    }
  }
  std::vector<float> hr(W);  // (W)
  std::vector<int64_t> valid;
  for (int64_t k = 0; k < W; ++k)
    if (cnt[k] > 0) valid.push_back(k);
  if (valid.empty())
    throw std::runtime_error("hr_per_window: no usable beat interval in any window (" +
                             std::to_string(peaks_s.size()) + " peaks over " +
                             std::to_string(duration_s) + " s)");
  size_t v = 0;
  for (int64_t k = 0; k < W; ++k) {
    if (cnt[k] > 0) {
      hr[k] = static_cast<float>(sum[k] / cnt[k]);
      continue;
    }
    while (v + 1 < valid.size() && valid[v + 1] < k) ++v;
    const int64_t a = valid[v];
    const int64_t b = (v + 1 < valid.size()) ? valid[v + 1] : a;
    const double ha = sum[a] / cnt[a], hb = sum[b] / cnt[b];
    if (k <= a || b == a) hr[k] = static_cast<float>(k <= a ? ha : hb);
    else hr[k] = static_cast<float>(ha + (hb - ha) * double(k - a) / double(b - a));
  }
  return hr;
}

}  // namespace pulsekd::data
