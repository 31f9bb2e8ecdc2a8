#include "tracking/wfpv.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <deque>
#include <stdexcept>
#include <string>

#include "datasets/baseline.h"

namespace pulsekd::tracking {
namespace {

using data::kRateHz;
using data::kRows;
using data::kWindow;
constexpr double kPi = 3.14159265358979323846;
constexpr double kHopS = data::kShift / kRateHz;  // 2 s between consecutive windows

void check_range(const data::WindowSet& ws, int64_t first, int64_t count) {
  if (first < 0 || count < 0 || first + count > ws.size())
    throw std::out_of_range("wfpv: windows [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") outside the set of " +
                            std::to_string(ws.size()));
}

double max_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()); }

// v / max(v), or zeros when v is all zero.
std::vector<double> normalised(std::vector<double> v) {
  const double mx = max_of(v);
  if (mx > 0)
    for (auto& e : v) e /= mx;
  return v;
}

double stddev(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double e : v) m += e;
  m /= static_cast<double>(v.size());
  for (double e : v) s += (e - m) * (e - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

// Element-wise mean of the vectors in a history.
std::vector<double> mean_of(const std::deque<std::vector<double>>& hist) {
  std::vector<double> m(hist.front().size(), 0.0);  // (nb)
  for (const auto& h : hist)
    for (size_t b = 0; b < m.size(); ++b) m[b] += h[b];
  for (auto& e : m) e /= static_cast<double>(hist.size());
  return m;
}

void push_limited(std::deque<std::vector<double>>& hist, std::vector<double> v, int limit) {
  hist.push_back(std::move(v));
  while (static_cast<int>(hist.size()) > limit) hist.pop_front();
}

// The analysis band as FFT bins: bin lo + b (b = 0..nb-1) is at (lo + b) * hz_per_bin.
struct Band {
  int lo = 0, nb = 0;
  double hz_per_bin = 0;
  explicit Band(const WfpvOptions& opt) : hz_per_bin(kRateHz / opt.nfft) {
    lo = static_cast<int>(std::ceil(opt.band_lo_bpm / 60 / hz_per_bin));
    const int hi = static_cast<int>(std::floor(opt.band_hi_bpm / 60 / hz_per_bin));
    nb = hi - lo + 1;
  }
  double hz(int b) const { return (lo + b) * hz_per_bin; }
};

// Steps 1, 2 and 4 of the header: per window, the cleaned spectrum and the phase-vocoder
// frequency of every band bin. State: the spectral histories of the current subject.
class FrontEnd {
 public:
  explicit FrontEnd(const WfpvOptions& opt) : opt_(opt), band_(opt) {}
  void restart() {
    channel_ = Channel{};
    noise_.clear();
  }
  // w: one window (4, 256); ppg2: the window's second PPG channel (256) or nullptr.
  // Afterwards ensemble(), noise() and pv_hz() describe it.
  void step(const float* w, const float* ppg2);
  const std::vector<double>& ensemble() const { return ensemble_; }  // (nb)
  const std::vector<double>& noise() const { return noise_mean_; }   // (nb)
  const std::vector<double>& pv_hz() const { return pv_hz_; }        // (nb)
  bool has_pv() const { return has_pv_; }
  const Band& band() const { return band_; }

 private:
  // The history of the PPG input.
  struct Channel {
    std::vector<std::complex<double>> prev_ppg;          // (nb) previous window's spectrum
    std::deque<std::vector<double>> signal1, signal2;    // (<= signal_windows, nb) W1 / W2 signal history
  };
  std::vector<std::complex<double>> band_spectrum(const float* x) const;
  // Writes the vocoder frequencies (nb) into pv_hz; false on the subject's first window.
  bool phase_vocoder(Channel& ch, const std::vector<std::complex<double>>& ppg, std::vector<double>& pv_hz) const;
  // Adds the two standardised Wiener-cleaned spectra (nb) into ensemble_.
  void wiener(Channel& ch, const std::vector<double>& mag, const std::vector<double>& noise);

  WfpvOptions opt_;
  Band band_;
  Channel channel_;
  std::deque<std::vector<double>> noise_;              // (<= noise_windows, nb) ACC noise history
  std::vector<double> ensemble_, noise_mean_, pv_hz_;  // (nb) outputs of the last step
  bool has_pv_ = false;
};

std::vector<std::complex<double>> FrontEnd::band_spectrum(const float* x) const {
  // Least-squares line removed; no taper: a Hann window doubles the main lobe, and motion
  // lines 10 BPM from the pulse then merge with it.
  const auto y = data::detrended(x, kWindow);     // (256)
  std::vector<std::complex<double>> a(opt_.nfft);  // (nfft)
  std::copy(y.begin(), y.end(), a.begin());
  data::fft_radix2(a);
  return {a.begin() + band_.lo, a.begin() + band_.lo + band_.nb};  // (nb)
}

bool FrontEnd::phase_vocoder(Channel& ch, const std::vector<std::complex<double>>& ppg, std::vector<double>& pv_hz) const {
  const int nb = band_.nb;
  const bool has_prev = !ch.prev_ppg.empty();
  std::vector<double> raw(nb);  // (nb) instantaneous frequency per bin, Hz
  for (int b = 0; b < nb; ++b) {
    const double f = band_.hz(b);
    if (!has_prev) {
      raw[b] = f;
      continue;
    }
    // A sinusoid at f advances its phase by 2 pi f hop; the deviation from the bin centre's
    // advance, wrapped to (-pi, pi], is the offset of f from the centre (unique within
    // +-1/(2 hop) = +-15 BPM: the unwrapping that picks the candidate nearest the bin).
    const double dphi = std::arg(ppg[b]) - std::arg(ch.prev_ppg[b]) - 2 * kPi * f * kHopS;
    const double wrapped = dphi - 2 * kPi * std::round(dphi / (2 * kPi));
    raw[b] = f + wrapped / (2 * kPi * kHopS);
  }
  for (int b = 0; b < nb; ++b) {  // 3-bin moving average (as the paper's code)
    const int b0 = std::max(0, b - 1), b1 = std::min(nb - 1, b + 1);
    for (int k = b0; k <= b1; ++k) pv_hz[b] += raw[k] / (b1 - b0 + 1);
  }
  ch.prev_ppg = ppg;
  return has_prev;
}

void FrontEnd::wiener(Channel& ch, const std::vector<double>& mag, const std::vector<double>& noise) {
  const int nb = band_.nb;
  const auto mag_n = normalised(mag);  // (nb)
  // W1: signal = average of the normalised raw PPG spectra.
  push_limited(ch.signal1, mag_n, opt_.signal_windows);
  const auto s1 = normalised(mean_of(ch.signal1));  // (nb)
  std::vector<double> clean1(nb), clean2(nb);        // (nb)
  for (int b = 0; b < nb; ++b) {
    const double g = s1[b] > 0 ? 1 - noise[b] / s1[b] : opt_.w1_negative;
    clean1[b] = mag[b] * (g < 0 ? opt_.w1_negative : g);
  }
  // W2: signal = average of the past W2-cleaned spectra and this window's raw one.
  push_limited(ch.signal2, mag_n, opt_.signal_windows);
  const auto s2 = normalised(mean_of(ch.signal2));  // (nb)
  for (int b = 0; b < nb; ++b) {
    const double den = s2[b] + noise[b];
    clean2[b] = den > 0 ? mag[b] * s2[b] / den : 0.0;
  }
  ch.signal2.back() = normalised(clean2);
  const double sd1 = stddev(clean1), sd2 = stddev(clean2);
  for (int b = 0; b < nb; ++b)
    ensemble_[b] += (sd1 > 0 ? clean1[b] / sd1 : 0.0) + (sd2 > 0 ? clean2[b] / sd2 : 0.0);
}

void FrontEnd::step(const float* w, const float* ppg2) {
  const int nb = band_.nb;
  // Noise: mean of the three max-normalised ACC magnitude spectra (axes without signal add 0).
  std::vector<double> noise(nb, 0.0);  // (nb)
  for (int r = 1; r < kRows; ++r) {
    const auto acc = band_spectrum(w + r * kWindow);
    std::vector<double> a(nb);  // (nb)
    for (int b = 0; b < nb; ++b) a[b] = std::abs(acc[b]);
    a = normalised(std::move(a));
    for (int b = 0; b < nb; ++b) noise[b] += a[b] / (kRows - 1);
  }
  push_limited(noise_, std::move(noise), opt_.noise_windows);
  noise_mean_ = mean_of(noise_);
  // Two PPG channels: the paper's input, the mean of both channels each z-scored after its
  // band-pass; here each channel's band spectrum is scaled to unit energy over the analysis
  // band (Parseval: the band-limited standard deviation), then the two are averaged.
  auto ppg = band_spectrum(w);  // (nb)
  if (ppg2 && opt_.use_ppg2) {
    const auto ppg_b = band_spectrum(ppg2);  // (nb)
    const auto band_rms = [](const std::vector<std::complex<double>>& x) {
      double e = 0;
      for (const auto& v : x) e += std::norm(v);
      return std::sqrt(e);
    };
    const double ra = band_rms(ppg), rb = band_rms(ppg_b);
    for (int b = 0; b < nb; ++b)
      ppg[b] = 0.5 * ((ra > 0 ? ppg[b] / ra : 0.0) + (rb > 0 ? ppg_b[b] / rb : 0.0));  // a flat channel adds nothing
  }
  std::vector<double> mag(nb);                                      // (nb)
  for (int b = 0; b < nb; ++b) mag[b] = std::abs(ppg[b]);
  ensemble_.assign(nb, 0.0);
  pv_hz_.assign(nb, 0.0);
  has_pv_ = phase_vocoder(channel_, ppg, pv_hz_);
  wiener(channel_, mag, noise_mean_);
}

// Steps 3 and 5 of the header (and the motion-line escape of the deviations): per window, the
// peak followed and the smoothed estimate. State: the estimates of the current subject.
class PeakTracker {
 public:
  PeakTracker(const WfpvOptions& opt, const Band& band) : opt_(opt), band_(band) {}
  void restart() { *this = PeakTracker(opt_, band_); }
  // ensemble, noise, pv_hz: (nb) from FrontEnd. Returns the estimate in BPM.
  double step(const std::vector<double>& ensemble, const std::vector<double>& noise,
              const std::vector<double>& pv_hz, bool has_pv);

 private:
  int bin_of(double bpm) const {
    return std::clamp(static_cast<int>(std::lround(bpm / 60 / band_.hz_per_bin)) - band_.lo, 0, band_.nb - 1);
  }
  double bpm_of(int b) const { return 60 * band_.hz(b); }
  int tracked_peak(const std::vector<double>& ensemble) const;
  // A jump never goes to twice the tracked frequency (the pulse's own second harmonic) nor
  // to half of it (running: the arm swings at half the step cadence, which the pulse may sit on).
  bool octave_of_track(int b) const {
    return std::fabs(bpm_of(b) - 2 * bpm_of(peak_)) <= opt_.escape_min_bpm ||
           std::fabs(2 * bpm_of(b) - bpm_of(peak_)) <= opt_.escape_min_bpm;
  }
  bool escape(const std::vector<double>& ensemble, const std::vector<double>& noise);
  double smoothed(double bpm) const;

  WfpvOptions opt_;
  Band band_;
  std::vector<double> estimates_;  // (windows so far) final BPM of the current subject
  int peak_ = 0;                   // band bin followed in this window
  int escape_ = 0;                 // consecutive windows counted towards an escape
  int prev_alt_ = -1;              // last window's escape candidate bin (-1: none)
};

// The largest Gaussian-weighted cleaned value within the search range around the last estimate.
int PeakTracker::tracked_peak(const std::vector<double>& ensemble) const {
  const double centre = estimates_.back();
  const int lo = bin_of(centre - opt_.search_bpm), hi = bin_of(centre + opt_.search_bpm);
  int best = bin_of(centre);  // nothing left in range (all filtered out): hold
  double best_v = 0;
  for (int b = lo; b <= hi; ++b) {
    const double z = (bpm_of(b) - centre) / opt_.search_sigma_bpm;
    const double v = std::max(0.0, ensemble[b]) * std::exp(-0.5 * z * z);
    if (v > best_v) {
      best_v = v;
      best = b;
    }
  }
  return best;
}

// Motion-line escape: the track sits on an ACC line while a steady peak off the ACC lines is
// comparable; after several windows in a row, move to that peak.
bool PeakTracker::escape(const std::vector<double>& ensemble, const std::vector<double>& noise) {
  int alt = -1;  // the largest local maximum off motion lines, far enough from the tracked peak
  double alt_v = 0;
  for (int b = 1; b + 1 < band_.nb; ++b) {
    const bool local_max = ensemble[b] >= ensemble[b - 1] && ensemble[b] >= ensemble[b + 1];
    if (local_max && !octave_of_track(b) && noise[b] < opt_.escape_noise && ensemble[b] > alt_v &&
        std::fabs(bpm_of(b) - bpm_of(peak_)) >= opt_.escape_min_bpm) {
      alt_v = ensemble[b];
      alt = b;
    }
  }
  const bool steady = alt >= 0 && prev_alt_ >= 0 && std::fabs(bpm_of(alt) - bpm_of(prev_alt_)) <= opt_.steady_bpm;
  prev_alt_ = alt;
  const double tracked_v = std::max(0.0, ensemble[peak_]);
  const double top = *std::max_element(ensemble.begin(), ensemble.end());
  // Either the track sits on a motion line and the alternative is comparable, or the track
  // has been left behind: the alternative is the band's largest peak and well above it.
  const bool on_line = noise[peak_] >= opt_.escape_noise && alt_v > opt_.escape_ratio * tracked_v;
  const bool left_behind = opt_.escape_lost_ratio > 0 && alt_v >= top && alt_v > opt_.escape_lost_ratio * tracked_v;
  escape_ = steady && (on_line || left_behind) ? escape_ + 1 : 0;
  if (opt_.escape_windows == 0 || escape_ < opt_.escape_windows) return false;
  peak_ = alt;
  escape_ = 0;
  return true;
}

double PeakTracker::step(const std::vector<double>& ensemble, const std::vector<double>& noise,
                         const std::vector<double>& pv_hz, bool has_pv) {
  const int n = static_cast<int>(estimates_.size());
  if (n < opt_.acquire_windows) {  // acquisition: the largest peak of the band
    peak_ = static_cast<int>(std::max_element(ensemble.begin(), ensemble.end()) - ensemble.begin());
  } else {
    peak_ = tracked_peak(ensemble);
    escape(ensemble, noise);
  }
  double hz = band_.hz(peak_);
  if (has_pv) hz = (1 - opt_.pv_weight) * hz + opt_.pv_weight * pv_hz[peak_];
  const double bpm = std::clamp(smoothed(60 * hz), opt_.band_lo_bpm, opt_.band_hi_bpm);
  estimates_.push_back(bpm);
  return bpm;
}

double PeakTracker::smoothed(double bpm) const {
  const int n = static_cast<int>(estimates_.size());
  // A jump is pulled towards the least-squares line through the last estimates, extrapolated.
  if (n >= opt_.jump_history && std::fabs(bpm - estimates_.back()) > opt_.jump_bpm) {
    const int m = opt_.jump_history;
    const double xm = 0.5 * (m - 1);
    double ym = 0, sxy = 0, sxx = 0;
    for (int k = 0; k < m; ++k) ym += estimates_[n - m + k] / m;
    for (int k = 0; k < m; ++k) {
      sxy += (k - xm) * (estimates_[n - m + k] - ym);
      sxx += (k - xm) * (k - xm);
    }
    const double predicted = ym + sxy / sxx * (m - xm);
    bpm = (1 - opt_.jump_pull) * bpm + opt_.jump_pull * predicted;
  }
  // Delay correction: a trend seen in the recent changes (this one included) is continued.
  if (n > 0) {
    const auto sign = [](double d) { return d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0; };
    double signs = sign(bpm - estimates_.back());
    for (int k = std::max(1, n - opt_.delay_history + 1); k < n; ++k) signs += sign(estimates_[k] - estimates_[k - 1]);
    bpm += opt_.delay_step_bpm * signs;
  }
  return bpm;
}

}  // namespace

void validate(const WfpvOptions& o) {
  const auto need = [](bool ok, const char* name, const char* expected, double got) {
    if (!ok)
      throw std::invalid_argument(std::string("wfpv: option ") + name + " must be " + expected + ", got " +
                                  std::to_string(got));
  };
  need(o.nfft >= kWindow && o.nfft <= (1 << 16) && (o.nfft & (o.nfft - 1)) == 0, "nfft",
       "a power of two in 256..65536", o.nfft);
  need(o.band_lo_bpm >= 20, "band_lo_bpm", ">= 20", o.band_lo_bpm);
  need(o.band_hi_bpm >= o.band_lo_bpm + 20 && o.band_hi_bpm <= 30 * kRateHz, "band_hi_bpm",
       ">= band_lo_bpm + 20 and <= 960 (Nyquist)", o.band_hi_bpm);
  need(o.signal_windows >= 1, "signal_windows", ">= 1", o.signal_windows);
  need(o.noise_windows >= 1, "noise_windows", ">= 1", o.noise_windows);
  need(o.w1_negative >= -10 && o.w1_negative <= 0, "w1_negative", "in -10..0", o.w1_negative);
  need(o.acquire_windows >= 1, "acquire_windows", ">= 1", o.acquire_windows);
  need(o.search_bpm > 0, "search_bpm", "> 0", o.search_bpm);
  need(o.search_sigma_bpm > 0, "search_sigma_bpm", "> 0", o.search_sigma_bpm);
  need(o.steady_bpm >= 0, "steady_bpm", ">= 0", o.steady_bpm);
  need(o.escape_noise > 0 && o.escape_noise <= 1, "escape_noise", "in (0, 1]", o.escape_noise);
  need(o.escape_ratio >= 0, "escape_ratio", ">= 0", o.escape_ratio);
  need(o.escape_lost_ratio == 0 || o.escape_lost_ratio >= 1, "escape_lost_ratio", "0 (off) or >= 1", o.escape_lost_ratio);
  need(o.escape_min_bpm >= 0, "escape_min_bpm", ">= 0", o.escape_min_bpm);
  need(o.escape_windows >= 0, "escape_windows", ">= 0", o.escape_windows);
  need(o.pv_weight >= 0 && o.pv_weight <= 1, "pv_weight", "in 0..1", o.pv_weight);
  need(o.jump_bpm >= 0, "jump_bpm", ">= 0", o.jump_bpm);
  need(o.jump_pull >= 0 && o.jump_pull <= 1, "jump_pull", "in 0..1", o.jump_pull);
  need(o.jump_history >= 2, "jump_history", ">= 2", o.jump_history);
  need(o.delay_step_bpm >= 0 && o.delay_step_bpm <= 1, "delay_step_bpm", "in 0..1", o.delay_step_bpm);
  need(o.delay_history >= 1, "delay_history", ">= 1", o.delay_history);
}

std::vector<float> wfpv_track(const data::WindowSet& ws, int64_t first, int64_t count,
                              const WfpvOptions& opt) {
  validate(opt);
  check_range(ws, first, count);
  FrontEnd front(opt);
  PeakTracker tracker(opt, front.band());
  std::vector<float> out(count);  // (count) BPM
  for (int64_t i = 0; i < count; ++i) {
    if (i == 0 || ws.subject[first + i] != ws.subject[first + i - 1]) {
      front.restart();
      tracker.restart();
    }
    front.step(ws.window(first + i), ws.has_ppg2() ? ws.ppg2_window(first + i) : nullptr);
    out[i] = static_cast<float>(tracker.step(front.ensemble(), front.noise(), front.pv_hz(), front.has_pv()));
  }
  return out;
}

std::vector<double> wfpv_spectra(const data::WindowSet& ws, int64_t first, int64_t count,
                                 const std::vector<double>& bpm_grid, const WfpvOptions& opt) {
  validate(opt);
  check_range(ws, first, count);
  for (double g : bpm_grid)
    if (!std::isfinite(g)) throw std::invalid_argument("wfpv_spectra: a BPM grid value is not finite");
  FrontEnd front(opt);
  const Band& band = front.band();
  const size_t ng = bpm_grid.size();
  std::vector<double> out(static_cast<size_t>(count) * ng, 0.0);  // (count, ng)
  for (int64_t i = 0; i < count; ++i) {
    if (i == 0 || ws.subject[first + i] != ws.subject[first + i - 1]) front.restart();
    front.step(ws.window(first + i), ws.has_ppg2() ? ws.ppg2_window(first + i) : nullptr);
    const auto& e = front.ensemble();  // (nb)
    for (size_t g = 0; g < ng; ++g) {
      const double pos = bpm_grid[g] / 60 / band.hz_per_bin - band.lo;  // fractional band bin
      if (pos < 0 || pos > band.nb - 1) continue;
      const int b = std::min(static_cast<int>(pos), band.nb - 2);
      const double t = pos - b;
      out[i * ng + g] = (1 - t) * std::max(0.0, e[b]) + t * std::max(0.0, e[b + 1]);
    }
  }
  return out;
}

}  // namespace pulsekd::tracking
