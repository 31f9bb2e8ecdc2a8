#include "datasets/baseline.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pulsekd::data {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kNfft = 4096;          // 32 Hz / 4096 = 0.0078 Hz = 0.47 BPM per bin
constexpr double kLoHz = 0.5, kHiHz = 4.0;  // spectra band (30-240 BPM)
constexpr double kLoBpm = 40, kHiBpm = 220;  // peak search band: below 40 BPM is drift and respiration
constexpr double kSearchBpm = 12.0;  // std of the Gaussian tracking prior around the last estimate
constexpr double kWeak = 0.3;        // "weak" tracked peak: below this share of the best one
constexpr int kWeakWindows = 3;      // ... for this many windows in a row -> re-acquire
constexpr double kWiener = 4.0;      // weight of ACC power against PPG power (both max 1)
constexpr double kStepBpm = 6.0;     // largest accepted change per 2 s window
constexpr double kMotionG = 0.02;      // ACC row std (g) above which the wrist "moves"
constexpr double kMotionSpanG = 0.10;  // ... and from which on ACC peaks fully count

void check_range(const WindowSet& ws, int64_t first, int64_t count) {
  if (first < 0 || count < 0 || first + count > ws.size())
    throw std::out_of_range("baseline: windows [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") outside the set of " +
                            std::to_string(ws.size()));
}

double stddev(const float* x, int n) {
  double m = 0, s = 0;
  for (int i = 0; i < n; ++i) m += x[i];
  m /= n;
  for (int i = 0; i < n; ++i) s += (x[i] - m) * (x[i] - m);
  return std::sqrt(s / n);
}

}  // namespace

void fft_radix2(std::vector<std::complex<double>>& a) {
  const size_t n = a.size();
  if (n == 0 || (n & (n - 1)) != 0)
    throw std::invalid_argument("fft_radix2: size " + std::to_string(n) + " is not a power of two");
  for (size_t i = 1, j = 0; i < n; ++i) {  // bit-reversal permutation
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double ang = -2 * kPi / static_cast<double>(len);
    const std::complex<double> wl(std::cos(ang), std::sin(ang));
    for (size_t i = 0; i < n; i += len) {
      std::complex<double> w(1, 0);
      for (size_t k = 0; k < len / 2; ++k) {
        const auto u = a[i + k], v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
        w *= wl;
      }
    }
  }
}

std::vector<double> detrended(const float* x, int n) {
  const double tc = 0.5 * (n - 1);
  double m = 0, slope = 0, stt = 0;
  for (int i = 0; i < n; ++i) m += x[i];
  m /= n;
  for (int i = 0; i < n; ++i) {
    slope += (i - tc) * (x[i] - m);
    stt += (i - tc) * (i - tc);
  }
  slope = stt > 0 ? slope / stt : 0.0;
  std::vector<double> y(n);  // (n)
  for (int i = 0; i < n; ++i) y[i] = x[i] - m - slope * (i - tc);
  return y;
}

std::vector<double> power_spectrum(const float* x, int n, int nfft) {
  if (n <= 1 || n > nfft) throw std::invalid_argument("power_spectrum: need 1 < n <= nfft");
  const auto y = detrended(x, n);  // (n)
  std::vector<std::complex<double>> a(nfft);  // (nfft)
  for (int i = 0; i < n; ++i) a[i] = y[i] * (0.5 - 0.5 * std::cos(2 * kPi * i / (n - 1)));  // Hann: low leakage
  fft_radix2(a);
  std::vector<double> p(nfft / 2 + 1);  // (nfft/2+1)
  for (int b = 0; b <= nfft / 2; ++b) p[b] = std::norm(a[b]);
  return p;
}

float spectral_peak_bpm(const float* x, int n, double fs_hz, double lo_bpm, double hi_bpm, int nfft) {
  const auto p = power_spectrum(x, n, nfft);
  const double hz_per_bin = fs_hz / nfft;
  const int lo = std::max(1, static_cast<int>(std::ceil(lo_bpm / 60 / hz_per_bin)));
  const int hi = std::min(nfft / 2, static_cast<int>(std::floor(hi_bpm / 60 / hz_per_bin)));
  int best = lo;
  for (int b = lo; b <= hi; ++b)
    if (p[b] > p[best]) best = b;
  return static_cast<float>(best * hz_per_bin * 60);
}

std::vector<float> ppg_peak_baseline(const WindowSet& ws, int64_t first, int64_t count) {
  check_range(ws, first, count);
  std::vector<float> out(count);  // (count)
  for (int64_t i = 0; i < count; ++i)
    out[i] = spectral_peak_bpm(ws.window(first + i), kWindow, kRateHz, kLoBpm, kHiBpm);
  return out;
}

std::vector<float> spectral_baseline(const WindowSet& ws, int64_t first, int64_t count) {
  check_range(ws, first, count);
  const double hz_per_bin = kRateHz / kNfft;
  const int lo = static_cast<int>(std::ceil(kLoHz / hz_per_bin));
  const int hi = static_cast<int>(std::floor(kHiHz / hz_per_bin));
  const int nb = hi - lo + 1;
  const auto bpm_of = [&](int b) { return (b + lo) * hz_per_bin * 60; };
  const auto bin_of = [&](double bpm) {
    return std::clamp(static_cast<int>(std::lround(bpm / 60 / hz_per_bin)) - lo, 0, nb - 1);
  };
  // Normalised band-limited periodogram of one row: (nb) bins from 0.5 to 4 Hz, max 1.
  const auto band = [&](const float* x) {
    const auto p = power_spectrum(x, kWindow, kNfft);
    std::vector<double> v(p.begin() + lo, p.begin() + hi + 1);  // (nb)
    const double mx = *std::max_element(v.begin(), v.end());
    if (mx > 0)
      for (auto& e : v) e /= mx;
    return v;
  };

  std::vector<float> out(count);  // (count)
  std::vector<double> prev_p, prev_a;  // (nb) spectra of the previous window, for averaging
  double est = 0;
  int weak = 0;  // consecutive windows in which the tracked peak was weak
  int32_t subj = -1;
  for (int64_t i = 0; i < count; ++i) {
    const float* w = ws.window(first + i);  // (4, 256)
    std::vector<double> p = band(w);        // (nb) PPG
    std::vector<double> a(nb, 0.0);         // (nb) ACC, sum of the normalised axes
    // Motion weight 0..1 from the strongest axis: small tremor must not erase the pulse.
    // ACC unit from the gravity magnitude: ~1 in g (SPC, synthetic), ~64 in DaLiA's 1/64 g.
    double gx = 0, gy = 0, gz = 0;
    for (int t = 0; t < kWindow; ++t) {
      gx += w[kWindow + t];
      gy += w[2 * kWindow + t];
      gz += w[3 * kWindow + t];
    }
    const double gmag = std::sqrt(gx * gx + gy * gy + gz * gz) / kWindow;
    const double unit = gmag > 16 ? 64.0 : 1.0;
    double motion = 0;
    for (int r = 1; r < kRows; ++r)
      motion = std::max(motion, (stddev(w + r * kWindow, kWindow) / unit - kMotionG) / kMotionSpanG);
    motion = std::clamp(motion, 0.0, 1.0);
    const bool moving = motion > 0;
    for (int r = 1; r < kRows && moving; ++r) {
      const auto ar = band(w + r * kWindow);
      for (int b = 0; b < nb; ++b) a[b] += ar[b] / 3.0;
    }
    const bool restart = ws.subject[first + i] != subj;
    if (!restart && prev_p.size() == p.size()) {
      // Averaging two consecutive (75 % overlapping) windows steadies the peaks (WFPV).
      for (int b = 0; b < nb; ++b) {
        const double pb = p[b], ab = a[b];
        p[b] = 0.5 * (pb + prev_p[b]);
        a[b] = 0.5 * (ab + prev_a[b]);
        prev_p[b] = pb;
        prev_a[b] = ab;
      }
    } else {
      prev_p = p;
      prev_a = a;
    }
    if (restart) {
      subj = ws.subject[first + i];
      weak = 0;
      // Subjects start at rest in every set we use, so the strongest PPG peak is the pulse.
      const int s_lo = bin_of(kLoBpm), s_hi = bin_of(kHiBpm);
      est = bpm_of(static_cast<int>(std::max_element(p.begin() + s_lo, p.begin() + s_hi + 1) - p.begin()));
      out[i] = static_cast<float>(est);
      continue;
    }
    // Wiener-like weight: PPG power where the ACC (or its 2nd harmonic) is strong is mostly
    // motion artefact. a2[b] holds the ACC power at half the frequency of bin b.
    std::vector<double> clean(p);  // (nb)
    if (moving) {
      const double amax = *std::max_element(a.begin(), a.end());
      for (int b = 0; b < nb; ++b) {
        const double f = bpm_of(b);
        const double an = a[b] / amax;
        const double ah = a[bin_of(f / 2)] / amax;  // 2nd harmonic of a motion line at f/2
        const double noise = motion * std::max(an, f / 2 >= kLoHz * 60 ? 0.5 * ah : 0.0);
        clean[b] = p[b] * p[b] / (p[b] + kWiener * noise + 1e-9);
      }
    }
    const std::vector<double>& score = clean;  // (nb)
    // Tracking: the spectral score weighted by a Gaussian prior around the last estimate
    // (no hard search edges, so a slowly drifting peak is never lost at a range boundary).
    int best = -1;
    double best_v = 0;
    for (int b = bin_of(kLoBpm); b <= bin_of(kHiBpm); ++b) {
      const double d = (bpm_of(b) - est) / kSearchBpm;
      const double v = score[b] * std::exp(-0.5 * d * d);
      if (b > 0 && b + 1 < nb && score[b] >= score[b - 1] && score[b] >= score[b + 1] &&
          v > best_v) {  // local maxima only: the flank of a distant strong peak is no peak
        best_v = v;
        best = b;
      }
    }
    double cand = best >= 0 ? bpm_of(best) : est;  // fallback: keep the last estimate
    // Re-acquisition: when the tracked peak stays much weaker than the strongest cleaned
    // peak for a few windows, the track has locked onto a motion line or noise; jump.
    const int s_lo = bin_of(kLoBpm), s_hi = bin_of(kHiBpm);
    const int gbest =
        static_cast<int>(std::max_element(score.begin() + s_lo, score.begin() + s_hi + 1) - score.begin());
    weak = (best < 0 || score[best] < kWeak * score[gbest]) ? weak + 1 : 0;
    if (weak >= kWeakWindows) {
      est = bpm_of(gbest);
      weak = 0;
      out[i] = static_cast<float>(est);
      continue;
    }
    est += std::clamp(cand - est, -kStepBpm, kStepBpm);
    out[i] = static_cast<float>(est);
  }
  return out;
}

BaselineReport evaluate_baselines(const WindowSet& ws, const std::string& method, const Estimator& tracker) {
  BaselineReport rep;
  rep.method = method;
  for (const auto& s : ws.subjects) {
    if (s.num_windows == 0) continue;
    const auto tr = tracker(ws, s.first_window, s.num_windows);
    const auto pk = ppg_peak_baseline(ws, s.first_window, s.num_windows);
    BaselineSubject r;
    r.name = s.name;
    r.windows = s.num_windows;
    for (int64_t k = 0; k < s.num_windows; ++k) {
      r.mae_tracker += std::fabs(tr[k] - ws.hr[s.first_window + k]);
      r.mae_ppg_peak += std::fabs(pk[k] - ws.hr[s.first_window + k]);
    }
    r.mae_tracker /= s.num_windows;
    r.mae_ppg_peak /= s.num_windows;
    rep.mean_tracker += r.mae_tracker;
    rep.mean_ppg_peak += r.mae_ppg_peak;
    rep.subjects.push_back(r);
  }
  if (!rep.subjects.empty()) {
    rep.mean_tracker /= rep.subjects.size();
    rep.mean_ppg_peak /= rep.subjects.size();
  }
  return rep;
}

}  // namespace pulsekd::data
