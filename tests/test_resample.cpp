// resample_poly: pass-band gain, stop-band attenuation, alignment, lengths.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "datasets/resample.h"

using pulsekd::data::resample_poly;

namespace {
constexpr double kPi = 3.14159265358979323846;

std::vector<float> sine(double f, double fs, size_t n, double phase = 0) {
  std::vector<float> x(n);  // (n)
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(2 * kPi * f * i / fs + phase));
  return x;
}

// Amplitude of a sine of frequency f in y (least squares against sin and cos), interior only.
double amplitude(const std::vector<float>& y, double f, double fs, size_t skip) {
  double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
  for (size_t i = skip; i + skip < y.size(); ++i) {
    const double s = std::sin(2 * kPi * f * i / fs), c = std::cos(2 * kPi * f * i / fs);
    ss += s * s;
    cc += c * c;
    sc += s * c;
    ys += y[i] * s;
    yc += y[i] * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  return std::hypot(a, b);
}
}  // namespace

TEST_CASE("output length is ceil(n*up/down)") {
  for (size_t n : {1u, 2u, 124u, 125u, 126u, 37937u}) {
    CHECK(resample_poly(std::vector<float>(n, 1.0f), 32, 125).size() == (n * 32 + 124) / 125);
    CHECK(resample_poly(std::vector<float>(n, 1.0f), 1, 2).size() == (n + 1) / 2);
  }
  CHECK(resample_poly({}, 32, 125).empty());
  CHECK_THROWS(resample_poly({1.0f}, 0, 2));
}

TEST_CASE("constant input stays constant, including the edges") {
  const auto y = resample_poly(std::vector<float>(3000, 5.0f), 32, 125);
  for (float v : y) CHECK(v == doctest::Approx(5.0).epsilon(1e-5));
}

TEST_CASE("125 -> 32 Hz: pass band within 1 %, above the new Nyquist >= 40 dB down") {
  const size_t n = 125 * 60;
  for (double f : {0.5, 1.0, 2.5, 4.0, 8.0, 12.0, 14.0}) {
    const auto y = resample_poly(sine(f, 125, n), 32, 125);
    const double a = amplitude(y, f, 32, 64);
    INFO("f = " << f << " Hz, amplitude " << a);
    CHECK(std::fabs(a - 1.0) < 0.01);
  }
  for (double f : {18.0, 20.0, 25.0, 40.0, 60.0}) {
    const auto y = resample_poly(sine(f, 125, n), 32, 125);
    double rms = 0;
    for (size_t i = 64; i + 64 < y.size(); ++i) rms += y[i] * y[i];
    rms = std::sqrt(rms / (y.size() - 128));
    const double db = 20 * std::log10(rms * std::sqrt(2.0) + 1e-12);
    INFO("f = " << f << " Hz, level " << db << " dB");
    CHECK(db < -40);
  }
}

TEST_CASE("64 -> 32 Hz (DaLiA BVP): pass band and stop band") {
  const size_t n = 64 * 60;
  const auto y = resample_poly(sine(2.0, 64, n), 1, 2);
  CHECK(std::fabs(amplitude(y, 2.0, 32, 32) - 1.0) < 0.01);
  const auto z = resample_poly(sine(20.0, 64, n), 1, 2);  // would alias to 12 Hz
  CHECK(amplitude(z, 12.0, 32, 32) < 0.01);
}

TEST_CASE("alignment: output sample m equals the input at time m/32 s") {
  const double f = 1.3, ph = 0.7;
  const auto y = resample_poly(sine(f, 125, 125 * 30, ph), 32, 125);
  for (size_t m = 100; m + 100 < y.size(); m += 37)
    CHECK(y[m] == doctest::Approx(std::sin(2 * kPi * f * m / 32.0 + ph)).epsilon(0.005).scale(1));
  // Sample 0 too (edge extension keeps a DC-offset signal aligned at the start).
  std::vector<float> ramp(1250);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = 100.0f + std::sin(2 * kPi * 0.5 * i / 125.0);
  const auto r = resample_poly(ramp, 32, 125);
  CHECK(r[0] == doctest::Approx(100.0).epsilon(2e-3));
}
