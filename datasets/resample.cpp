#include "datasets/resample.h"

#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>

namespace pulsekd::data {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kKaiserBeta = 7.857;  // 0.1102 * (80 - 8.7): Kaiser's rule for 80 dB

// Modified Bessel function of the first kind, order 0 (power series; converges fast for
// the beta range used here).
double bessel_i0(double x) {
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 200; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return sum;
}

}  // namespace

std::vector<double> resample_filter(int up, int down) {
  if (up < 1 || down < 1)
    throw std::invalid_argument("resample_poly: up and down must be >= 1, got up=" +
                                std::to_string(up) + " down=" + std::to_string(down));
  const int g = std::gcd(up, down);
  up /= g;
  down /= g;
  const int m = std::max(up, down);
  // Kaiser: taps - 1 = (A - 7.95) / (2.285 * dw); A = 80 dB, dw = 0.2 * pi / m rad/sample.
  const int half = static_cast<int>(std::ceil(25.0 * m));
  const double fc = 0.5 / m;  // cut-off in cycles per (intermediate-rate) sample
  std::vector<double> h(2 * half + 1);  // (L) taps, centre at index half
  const double i0b = bessel_i0(kKaiserBeta);
  for (int i = -half; i <= half; ++i) {
    const double t = static_cast<double>(i);
    const double sinc = i == 0 ? 2.0 * fc : std::sin(2.0 * kPi * fc * t) / (kPi * t);
    const double r = t / half;
    const double w = bessel_i0(kKaiserBeta * std::sqrt(std::max(0.0, 1.0 - r * r))) / i0b;
    h[i + half] = sinc * w * up;  // gain `up` restores the amplitude lost by zero-stuffing
  }
  return h;
}

std::vector<float> resample_poly(const std::vector<float>& x, int up, int down) {
  std::vector<double> h = resample_filter(up, down);  // (L)
  const int g = std::gcd(up, down);
  up /= g;
  down /= g;
  const int64_t n = static_cast<int64_t>(x.size());
  if (n == 0) return {};
  const int64_t half = (static_cast<int64_t>(h.size()) - 1) / 2;
  // Normalise every polyphase branch (taps congruent mod up) to a DC gain of exactly 1, so a
  // constant input stays exactly constant whatever the phase.
  for (int p = 0; p < up; ++p) {
    double s = 0;
    for (size_t i = p; i < h.size(); i += up) s += h[i];
    if (s != 0)
      for (size_t i = p; i < h.size(); i += up) h[i] /= s;
  }
  const int64_t n_out = (n * up + down - 1) / down;
  std::vector<float> y(n_out);  // (ceil(n*up/down))
  for (int64_t m = 0; m < n_out; ++m) {
    const int64_t j = m * down;  // position on the intermediate (up*fs) grid
    // Input sample k sits at j' = k*up; it contributes tap h[j - k*up + half].
    const int64_t k_lo = (j - half + up - 1 >= 0) ? (j - half + up - 1) / up
                                                  : -((half - j) / up);  // ceil((j-half)/up)
    const int64_t k_hi = (j + half) / up;                                // floor
    double acc = 0;
    for (int64_t k = k_lo; k <= k_hi; ++k) {
      const int64_t kk = k < 0 ? 0 : (k >= n ? n - 1 : k);  // edge-value extension
      acc += h[j - k * up + half] * x[kk];
    }
    y[m] = static_cast<float>(acc);
  }
  return y;
}

}  // namespace pulsekd::data
