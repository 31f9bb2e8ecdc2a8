// Motion-aware augmentation (kd::augment_motion): what each of its two parts adds to a window,
// how often, and that the strength scales it linearly.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/rng.h"
#include "kd/trainer.h"

using namespace pulsekd;

namespace {

constexpr int T = 256;

// A window (4, 256): PPG zero, ACC three random rows with a non-zero mean (gravity).
std::vector<float> test_window() {
  std::vector<float> w(4 * T, 0.f);
  Rng r(3);
  for (int k = 1; k < 4; ++k)
    for (int t = 0; t < T; ++t) w[size_t(k * T + t)] = float(0.5 * k + r.normal());
  return w;
}

// Residual of the least-squares fit of y (n) by the columns of A (m columns of n), relative to |y|.
double fit_residual(const std::vector<std::vector<double>>& A, const std::vector<double>& y) {
  const size_t m = A.size(), n = y.size();
  std::vector<std::vector<double>> G(m, std::vector<double>(m + 1, 0.0));  // (m, m+1) normal equations
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < m; ++j)
      for (size_t t = 0; t < n; ++t) G[i][j] += A[i][t] * A[j][t];
    for (size_t t = 0; t < n; ++t) G[i][m] += A[i][t] * y[t];
  }
  for (size_t c = 0; c < m; ++c)  // Gauss-Jordan (G is symmetric positive definite)
    for (size_t r = 0; r < m; ++r) {
      if (r == c) continue;
      const double f = G[r][c] / G[c][c];
      for (size_t j = c; j <= m; ++j) G[r][j] -= f * G[c][j];
    }
  double res = 0, norm = 0;
  for (size_t t = 0; t < n; ++t) {
    double fit = 0;
    for (size_t i = 0; i < m; ++i) fit += G[i][m] / G[i][i] * A[i][t];
    res += (y[t] - fit) * (y[t] - fit);
    norm += y[t] * y[t];
  }
  return std::sqrt(res / norm);
}

// Frequency (Hz) of the largest DFT magnitude of y (256 samples at 32 Hz), on a 0.02 Hz grid.
double dominant_hz(const std::vector<double>& y) {
  double best = 0, best_hz = 0;
  for (double hz = 0.3; hz <= 10; hz += 0.02) {
    double re = 0, im = 0;
    for (int t = 0; t < T; ++t) {
      re += y[size_t(t)] * std::cos(2 * M_PI * hz * t / 32.0);
      im += y[size_t(t)] * std::sin(2 * M_PI * hz * t / 32.0);
    }
    if (re * re + im * im > best) best = re * re + im * im, best_hz = hz;
  }
  return best_hz;
}

}  // namespace

TEST_CASE("augment_motion: an ACC-driven PPG artefact and a periodic arm motion, each on half the windows") {
  const std::vector<float> x = test_window();
  // The part (a) basis: the dynamic ACC rows and the centred squared magnitude.
  std::vector<std::vector<double>> basis(4, std::vector<double>(T));
  std::vector<double> sq(T, 0.0);
  for (int k = 0; k < 3; ++k) {
    double mean = 0;
    for (int t = 0; t < T; ++t) mean += x[size_t((k + 1) * T + t)] / double(T);
    for (int t = 0; t < T; ++t) {
      basis[size_t(k)][size_t(t)] = x[size_t((k + 1) * T + t)] - mean;
      sq[size_t(t)] += basis[size_t(k)][size_t(t)] * basis[size_t(k)][size_t(t)];
    }
  }
  double sq_mean = 0;
  for (double v : sq) sq_mean += v / T;
  for (int t = 0; t < T; ++t) basis[3][size_t(t)] = sq[size_t(t)] - sq_mean;

  int n_acc = 0, n_ppg_only = 0, n_none = 0;
  const int draws = 400;
  for (int s = 1; s <= draws; ++s) {
    std::vector<float> y = x;
    Rng rng{uint64_t(s)};
    kd::augment_motion(y.data(), 1.0, rng);
    std::vector<double> d_ppg(T), d_acc[3];
    bool acc_changed = false, ppg_changed = false;
    for (int t = 0; t < T; ++t) {
      d_ppg[size_t(t)] = double(y[size_t(t)]) - x[size_t(t)];
      ppg_changed |= y[size_t(t)] != x[size_t(t)];
    }
    for (int k = 0; k < 3; ++k) {
      d_acc[k].resize(T);
      for (int t = 0; t < T; ++t) {
        d_acc[k][size_t(t)] = double(y[size_t((k + 1) * T + t)]) - x[size_t((k + 1) * T + t)];
        acc_changed |= d_acc[k][size_t(t)] != 0;
      }
    }
    if (acc_changed) {
      ++n_acc;
      // (b): one waveform along one direction: the axis with the largest change carries it;
      // its dominant frequency is the cadence, 0.8-3 Hz (harmonics are weaker by construction).
      int big = 0;
      double e[3] = {0, 0, 0};
      for (int k = 0; k < 3; ++k) {
        for (double v : d_acc[k]) e[k] += v * v;
        if (e[k] > e[big]) big = k;
      }
      const double hz = dominant_hz(d_acc[big]);
      CHECK(hz >= 0.8 - 0.13);
      CHECK(hz <= 3.0 + 0.13);
      for (int k = 0; k < 3; ++k)  // the others are multiples of it (axes with a tiny share: float rounding)
        if (e[k] > 1e-4 * e[big]) CHECK(fit_residual({d_acc[big]}, d_acc[k]) < 1e-3);
    } else if (ppg_changed) {
      ++n_ppg_only;
      // (a) alone: the PPG change is a combination of the dynamic ACC and its squared magnitude.
      CHECK(fit_residual(basis, d_ppg) < 1e-4);
    } else {
      ++n_none;
    }
  }
  // Probabilities 1/2 (b), 1/4 (a only), 1/4 neither; 400 draws: standard deviation <= 0.025.
  CHECK(n_acc / double(draws) == doctest::Approx(0.5).epsilon(0.2));
  CHECK(n_ppg_only / double(draws) == doctest::Approx(0.25).epsilon(0.3));
  CHECK(n_none / double(draws) == doctest::Approx(0.25).epsilon(0.3));
}

TEST_CASE("augment_motion: the change scales linearly with the strength; the same seed gives the same window") {
  const std::vector<float> x = test_window();
  int compared = 0;
  for (int s = 1; s <= 20; ++s) {
    std::vector<float> y1 = x, y2 = x, y1b = x;
    Rng r1{uint64_t(s)}, r2{uint64_t(s)}, r1b{uint64_t(s)};
    kd::augment_motion(y1.data(), 1.0, r1);
    kd::augment_motion(y2.data(), 2.0, r2);
    kd::augment_motion(y1b.data(), 1.0, r1b);
    CHECK(y1 == y1b);
    for (size_t i = 0; i < x.size(); ++i) {
      const double d1 = double(y1[i]) - x[i], d2 = double(y2[i]) - x[i];
      // exact up to the float rounding of x + change (a few ulps of the window's values)
      CHECK(std::fabs(d2 - 2 * d1) <= 1e-6 * (1 + std::fabs(x[i]) + std::fabs(y2[i])));
      compared += d1 != 0;
    }
  }
  CHECK(compared > 0);
}

TEST_CASE("augment_batch: motion > 0 adds augment_motion after the other augmentations") {
  const std::vector<float> x = test_window();
  kd::Augment a;
  a.enabled = true;
  a.motion = 1.5;
  kd::Augment off = a;
  off.motion = 0;
  int changed = 0;
  for (int s = 0; s < 8; ++s) {  // a window draws neither part with probability 1/4
    std::vector<float> m = x, p = x;
    Rng rm{uint64_t(100 + s)}, rp{uint64_t(100 + s)};
    kd::augment_batch(m.data(), 1, a, rm);
    kd::augment_batch(p.data(), 1, off, rp);
    // the same draws up to the motion part: the difference is augment_motion's alone
    std::vector<float> q = p;
    kd::augment_motion(q.data(), 1.5, rp);
    CHECK(m == q);
    changed += m != p;
  }
  CHECK(changed >= 4);
}
