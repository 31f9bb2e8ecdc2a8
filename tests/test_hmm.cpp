// HMM belief tracking (tracking/hmm.h) against brute-force enumeration of every state path.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "deploy/mcu_hmm.h"
#include "engine/kernels/hmm_forward.h"
#include "tracking/hmm.h"

using namespace pulsekd::tracking;
namespace k = pulsekd::kernels;

namespace {

struct TinyModel {
  int S = 0, T = 0;
  std::vector<double> init, a, lik;  // (S), (S, S), (T, S)
};

TinyModel random_model(int S, int T, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.05, 1.0);
  TinyModel m;
  m.S = S;
  m.T = T;
  m.init.resize(S);
  double z = 0;
  for (auto& v : m.init) z += (v = u(rng));
  for (auto& v : m.init) v /= z;
  m.a.resize(S * S);
  for (int i = 0; i < S; ++i) {
    double row = 0;
    for (int j = 0; j < S; ++j) row += (m.a[i * S + j] = u(rng));
    for (int j = 0; j < S; ++j) m.a[i * S + j] /= row;
  }
  m.lik.resize(T * S);
  for (auto& v : m.lik) v = u(rng);
  return m;
}

// Joint probability of one full path and the observations 0..len-1 of it.
double path_probability(const TinyModel& m, const std::vector<int>& path, int len) {
  double p = m.init[path[0]] * m.lik[path[0]];
  for (int t = 1; t < len; ++t) p *= m.a[path[t - 1] * m.S + path[t]] * m.lik[t * m.S + path[t]];
  return p;
}

// Every path of length len, as base-S digits of k.
std::vector<int> nth_path(int k, int S, int len) {
  std::vector<int> p(len);
  for (int t = len - 1; t >= 0; --t) {
    p[t] = k % S;
    k /= S;
  }
  return p;
}

Likelihoods as_likelihoods(const TinyModel& m) {
  Likelihoods l;
  l.steps = m.T;
  l.states = m.S;
  l.p = m.lik;
  return l;
}

}  // namespace

TEST_CASE("forward filtering equals the brute-force marginals of every prefix") {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const TinyModel m = random_model(3, 5, seed);
    const auto post = forward_filter(as_likelihoods(m), m.a, m.init);
    for (int t = 0; t < m.T; ++t) {
      std::vector<double> marg(m.S, 0.0);  // (S) unnormalised p(s_t, obs 0..t)
      int paths = 1;
      for (int k = 0; k <= t; ++k) paths *= m.S;
      for (int k = 0; k < paths; ++k) {
        const auto p = nth_path(k, m.S, t + 1);
        marg[p[t]] += path_probability(m, p, t + 1);
      }
      double z = 0;
      for (double v : marg) z += v;
      for (int j = 0; j < m.S; ++j) CHECK(post[t * m.S + j] == doctest::Approx(marg[j] / z).epsilon(1e-12));
    }
  }
}

TEST_CASE("Viterbi returns the brute-force most probable path") {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const TinyModel m = random_model(3, 6, 100 + seed);
    int paths = 1;
    for (int t = 0; t < m.T; ++t) paths *= m.S;
    double best_p = -1;
    std::vector<int> best;
    for (int k = 0; k < paths; ++k) {
      const auto p = nth_path(k, m.S, m.T);
      const double v = path_probability(m, p, m.T);
      if (v > best_p) {
        best_p = v;
        best = p;
      }
    }
    CHECK(viterbi(as_likelihoods(m), m.a, m.init) == best);
  }
}

TEST_CASE("the transition prior is the Laplace MLE of the training steps") {
  // Steps |d| = 1, 3, 2 (one trace) and 2 (another): mean 2 BPM.
  const TransitionPrior p = TransitionPrior::fit({{100, 101, 98, 100}, {80, 82}});
  CHECK(p.scale_bpm == doctest::Approx(2.0));
  CHECK(TransitionPrior::fit({{100, 100, 100}}, 0.5).scale_bpm == doctest::Approx(0.5));  // floored
  CHECK_THROWS_AS(TransitionPrior::fit({{100}, {}}), std::invalid_argument);

  const HrGrid g = HrGrid::uniform(60, 70, 11);  // 1 BPM apart
  TransitionPrior q;
  q.scale_bpm = 2;
  q.floor = 0.01;
  const auto a = q.matrix(g);
  for (int i = 0; i < g.size(); ++i) {
    double row = 0;
    for (int j = 0; j < g.size(); ++j) row += a[i * g.size() + j];
    CHECK(row == doctest::Approx(1.0));
  }
  // Interior row 5: neighbours 1 BPM away are exp(-1/2) times as likely as staying (before the floor).
  const double stay = a[5 * 11 + 5] - 0.01 / 11, step = a[5 * 11 + 6] - 0.01 / 11;
  CHECK(step / stay == doctest::Approx(std::exp(-0.5)));
  q.scale_bpm = 0;
  CHECK_THROWS_AS(q.matrix(g), std::invalid_argument);
}

TEST_CASE("the forward estimate is the posterior median; a one-hot posterior gives its centre") {
  const HrGrid g = HrGrid::uniform(60, 80, 5);  // 60 65 70 75 80
  Likelihoods l;
  l.steps = 1;
  l.states = 5;
  l.p = {0, 0, 1, 0, 0};
  TransitionPrior p;
  CHECK(track(l, g, p, TrackMode::Forward)[0] == doctest::Approx(70.0));
  CHECK(track(l, g, p, TrackMode::Viterbi)[0] == doctest::Approx(70.0));
  // Half the mass on 65, half on 75: the median is the edge between bin 65 and 70 (67.5).
  l.p = {0, 1, 0, 1, 0};
  CHECK(track(l, g, p, TrackMode::Forward)[0] == doctest::Approx(67.5));
}

TEST_CASE("tracking a noisy estimate with outliers follows the true trace") {
  // A slow ramp 70 -> 130 BPM; the raw estimate jumps to a motion line (cadence 160) in 20 %
  // of the steps. A narrow transition prior must reject those jumps.
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 1.5);
  std::bernoulli_distribution outlier(0.2);
  const int T = 200;
  std::vector<float> truth(T), raw(T);
  for (int t = 0; t < T; ++t) {
    truth[t] = static_cast<float>(70 + 60.0 * t / (T - 1));
    raw[t] = static_cast<float>(t > 0 && outlier(rng) ? 160 : truth[t] + noise(rng));
  }
  const HrGrid g = HrGrid::uniform(40, 220, 181);
  const auto lik = laplace_likelihoods(raw, g, 3.0);
  const TransitionPrior prior = TransitionPrior::fit({truth});
  const auto fwd = track(lik, g, prior, TrackMode::Forward);
  const auto vit = track(lik, g, prior, TrackMode::Viterbi);
  double mae_raw = 0, mae_fwd = 0, mae_vit = 0;
  for (int t = 0; t < T; ++t) {
    mae_raw += std::fabs(raw[t] - truth[t]) / T;
    mae_fwd += std::fabs(fwd[t] - truth[t]) / T;
    mae_vit += std::fabs(vit[t] - truth[t]) / T;
  }
  MESSAGE("MAE raw " << mae_raw << ", forward " << mae_fwd << ", Viterbi " << mae_vit);
  // Measured (seed 7): raw 12.7, forward 1.44, Viterbi 0.72 BPM; bounds leave ~1.7x margin.
  // Without the outlier floor of laplace_likelihoods, forward gives 11.9 and Viterbi 7.0.
  CHECK(mae_raw > 8);
  CHECK(mae_fwd < 2.5);
  CHECK(mae_vit < 1.25);
}

TEST_CASE("likelihood helpers: resampling, fusion and validation") {
  const HrGrid g = HrGrid::uniform(60, 80, 5);  // 60 65 70 75 80
  // Source on 62.5 / 72.5: 70 lies 3/4 of the way from the first to the second centre.
  const auto r = resample_likelihoods({1.0, 0.0}, {62.5, 72.5}, g, 0.0);
  CHECK(r.p[0] == doctest::Approx(1.0));    // below the first centre: its value
  CHECK(r.p[2] == doctest::Approx(0.25));
  CHECK(r.p[4] == doctest::Approx(0.0));    // above the last: its value
  const auto r_eps = resample_likelihoods({1.0, 0.0}, {62.5, 72.5}, g, 0.1);
  CHECK(r_eps.p[4] == doctest::Approx(0.05));  // eps x the source mean 0.5

  Likelihoods a, b;
  a.steps = b.steps = 1;
  a.states = b.states = 5;
  a.p = {1, 2, 4, 2, 1};
  b.p = {0, 1, 1, 0, 0};
  const auto f = fuse(a, b);
  CHECK(f.p == std::vector<double>{0, 0.5, 1, 0, 0});
  b.p = {0, 0, 0, 0, 1e-300};
  a.p = {1, 0, 0, 0, 0};
  CHECK(fuse(a, b).p == std::vector<double>{1, 0, 0, 0, 0});  // disjoint: a's row kept

  Likelihoods bad = a;
  bad.p[1] = std::nan("");
  CHECK_THROWS_AS(bad.validate("t"), std::invalid_argument);
  bad.p = {0, 0, 0, 0, 0};
  CHECK_THROWS_AS(bad.validate("t"), std::invalid_argument);
  CHECK_THROWS_AS(forward_filter(a, std::vector<double>(4, 0.25)), std::invalid_argument);
  CHECK_THROWS_AS(parse_track_mode("kalman", "--track"), std::invalid_argument);
  CHECK(parse_track_mode("viterbi", "--track") == TrackMode::Viterbi);
  CHECK_THROWS_AS(laplace_likelihoods({std::nanf("")}, g, 2.0), std::invalid_argument);
  CHECK_THROWS_AS(HrGrid::uniform(80, 60, 5), std::invalid_argument);
  CHECK(g.nearest(10) == 0);
  CHECK(g.nearest(66) == 1);
  CHECK(g.nearest(500) == 4);
}

namespace {

// Random likelihood rows (T, S) in [0.05, 1], with a few steps that rule out half the states.
Likelihoods random_likelihoods(int S, int T, uint64_t seed) {
  Likelihoods l = as_likelihoods(random_model(S, T, seed));
  for (int t = 3; t < T; t += 17)
    for (int j = 0; j < S / 2; ++j) l.p[size_t(t) * S + j] = 0;
  return l;
}

// The band as the dense (S, S) matrix it stands for.
std::vector<double> band_matrix(const TransitionBand& b) {
  const int S = b.states;
  std::vector<double> a(size_t(S) * S);  // (S, S)
  for (int i = 0; i < S; ++i)
    for (int j = 0; j < S; ++j) {
      const int d = i > j ? i - j : j - i;
      a[size_t(i) * S + j] = (d <= b.half_width ? b.row_scale[i] * b.taps[d] : 0.0) + b.jump;
    }
  return a;
}

// The 64 centres of the binned head (30-210 BPM) as a grid.
HrGrid bins64() { return HrGrid::uniform(30 + 90.0 / 64, 210 - 90.0 / 64, 64); }

}  // namespace

TEST_CASE("the banded forward filter (engine/kernels/hmm_forward.h) equals filtering with the full matrix") {
  const HrGrid g = bins64();
  for (double scale : {0.7, 1.5, 4.0}) {
    CAPTURE(scale);
    TransitionPrior prior;
    prior.scale_bpm = scale;
    const Likelihoods lik = random_likelihoods(g.size(), 300, uint64_t(scale * 10));
    const auto post = forward_filter(lik, prior.matrix(g));  // (T, S) the dense reference
    // W = S - 1: the band IS the matrix (rows sum to 1 the same way)
    const TransitionBand full = prior.band(g, g.size() - 1);
    const auto a = band_matrix(full), m = prior.matrix(g);
    for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == doctest::Approx(m[i]).epsilon(1e-13));
    // the automatic band: the taps it drops are < 1e-13 of the largest
    const TransitionBand band = prior.band(g);
    CHECK(band.half_width < g.size() - 1);
    CHECK(std::exp(-(band.half_width + 1) * g.step() / scale) < k::kHmmBandTol);
    CHECK(std::exp(-band.half_width * g.step() / scale) >= k::kHmmBandTol);
    for (const TransitionBand* b : {&full, &band}) {
      std::vector<double> belief(g.size()), scratch(g.size());  // (S) each
      double worst = 0;
      for (int64_t t = 0; t < lik.steps; ++t) {
        k::hmm_forward_step(b->view(), belief.data(), lik.p.data() + t * g.size(), scratch.data(), t == 0);
        for (int j = 0; j < g.size(); ++j) worst = std::max(worst, std::fabs(belief[j] - post[size_t(t) * g.size() + j]));
      }
      CAPTURE(b->half_width);
      MESSAGE("scale " << scale << ", W " << b->half_width << ": max |posterior - dense| " << worst);
      // measured: 2e-15 with the full band; the automatic one 4.7e-8 at a tolerance of 1e-9
      CHECK(worst < (b == &full ? 1e-13 : 1e-10));
    }
  }
}

TEST_CASE("a truncated band filters as brute-force enumeration over its dense matrix") {
  TransitionPrior prior;
  prior.scale_bpm = 3;
  prior.floor = 0.02;
  const HrGrid g = HrGrid::uniform(60, 75, 4);  // 5 BPM apart
  const TransitionBand b = prior.band(g, 1);    // neighbours only
  REQUIRE(b.half_width == 1);
  TinyModel m = random_model(4, 5, 42);
  m.a = band_matrix(b);
  m.init.assign(4, 0.25);
  for (int i = 0; i < 4; ++i) {  // rows are distributions
    double row = 0;
    for (int j = 0; j < 4; ++j) row += m.a[size_t(i) * 4 + j];
    CHECK(row == doctest::Approx(1.0).epsilon(1e-14));
  }
  CHECK(m.a[3] == doctest::Approx(0.02 / 4));  // 0 -> 3 is outside the band: the jump alone
  std::vector<double> belief(4), scratch(4);   // (S) each
  for (int t = 0; t < m.T; ++t) {
    k::hmm_forward_step(b.view(), belief.data(), m.lik.data() + t * 4, scratch.data(), t == 0);
    std::vector<double> marg(4, 0.0);  // (S) unnormalised p(s_t, obs 0..t)
    int paths = 1;
    for (int i = 0; i <= t; ++i) paths *= 4;
    for (int i = 0; i < paths; ++i) {
      const auto p = nth_path(i, 4, t + 1);
      marg[size_t(p[size_t(t)])] += path_probability(m, p, t + 1);
    }
    double z = 0;
    for (double v : marg) z += v;
    for (int j = 0; j < 4; ++j) CHECK(belief[size_t(j)] == doctest::Approx(marg[size_t(j)] / z).epsilon(1e-12));
  }
}

TEST_CASE("hmm_exp: the firmware's float exponential is within 2 ulp of exp") {
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -86.99f + 174.98f * float(i) / 200000.0f;  // x <= -87 gives 0 (below FLT_MIN), x > 88 saturates
    const double want = std::exp(double(x));
    worst = std::max(worst, std::fabs(double(k::hmm_exp(x)) - want) / want);
  }
  MESSAGE("hmm_exp: worst relative error " << worst);
  CHECK(worst < 2.4e-7);  // 2 ulp of float
  CHECK(k::hmm_exp(0.0f) == 1.0f);
  CHECK(k::hmm_exp(-100.0f) == 0.0f);
  CHECK(k::hmm_exp(std::nanf("")) == 0.0f);
}

TEST_CASE("the firmware's float filter (pk_hmm_step) follows the host's double tracker") {
  // A ramp with outliers as in the tracking test above, as the raw int32 outputs of a model
  // whose output scale is 1/64 BPM.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 2.0);
  std::bernoulli_distribution outlier(0.15);
  const int T = 400;
  const float out_scale = 1.0f / 64;
  std::vector<int32_t> raw(T);
  std::vector<float> hr(T);  // what the host sees: out_scale * raw in float, as deploy::heart_rates
  for (int t = 0; t < T; ++t) {
    const double truth = 80 + 70 * std::sin(t / 60.0);
    raw[size_t(t)] = int32_t(std::lround((outlier(rng) ? 175 : truth + noise(rng)) / out_scale));
    hr[size_t(t)] = out_scale * float(raw[size_t(t)]);
  }
  pulsekd::deploy::McuHmm h;
  h.prior_scale_bpm = 1.2;
  h.laplace_bpm = 4;
  for (int states : {64, 181}) {
    CAPTURE(states);
    h.states = states;
    pulsekd::deploy::McuHmmTables tab;
    pulsekd::deploy::mcu_hmm_tables(tab, h, out_scale);
    const std::vector<float> fw = pulsekd::deploy::mcu_hmm_track(tab, raw);  // float, the firmware's code
    const std::vector<double> c = h.centres();
    HrGrid g;
    g.bpm = c;
    TransitionPrior prior;
    prior.scale_bpm = h.prior_scale_bpm;
    const std::vector<float> host = track(laplace_likelihoods(hr, g, h.laplace_bpm, h.outlier), g, prior, TrackMode::Forward);
    double worst = 0, mean = 0;
    for (int t = 0; t < T; ++t) {
      worst = std::max(worst, std::fabs(double(fw[size_t(t)]) - host[size_t(t)]));
      mean += std::fabs(double(fw[size_t(t)]) - host[size_t(t)]) / T;
    }
    MESSAGE(states << " states: float firmware filter vs double host tracker: max " << worst << ", mean " << mean << " BPM");
    CHECK(worst < 1e-3);  // measured 4.6e-5 BPM for both grids (float rounding of the posterior)
  }
}

TEST_CASE("binned head: the freestanding softmax + resampling equals the host's likelihood") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> z(0, 3);
  const int bins = 64;
  std::vector<double> centres(bins), logits(bins), p(bins);  // (bins) each
  for (int b = 0; b < bins; ++b) {
    centres[size_t(b)] = 30 + (b + 0.5) * 180.0 / bins;
    logits[size_t(b)] = z(rng);
  }
  k::hmm_softmax(p.data(), logits.data(), bins);
  double mx = logits[0], sum = 0;
  for (double v : logits) mx = std::max(mx, v);
  for (double v : logits) sum += std::exp(v - mx);
  for (int b = 0; b < bins; ++b) CHECK(p[size_t(b)] == doctest::Approx(std::exp(logits[size_t(b)] - mx) / sum).epsilon(1e-14));
  // onto 181 states: as tracking::resample_likelihoods (which runs the same loop in double)
  const HrGrid g = HrGrid::uniform(30, 210, 181);
  const Likelihoods want = resample_likelihoods(p, centres, g, 1e-3);
  std::vector<float> pf(p.begin(), p.end()), cf(centres.begin(), centres.end()), gf(g.bpm.begin(), g.bpm.end()), lf(181);
  k::hmm_resample(lf.data(), gf.data(), 181, pf.data(), cf.data(), bins, 1e-3f);
  for (int j = 0; j < 181; ++j) CHECK(lf[size_t(j)] == doctest::Approx(want.p[size_t(j)]).epsilon(1e-5));
  // by hand: 100 BPM lies between centres 24 (99.84375) and 25 (102.65625)
  const double f = (100 - centres[24]) / (centres[25] - centres[24]);
  CHECK(want.p[70] == doctest::Approx((1 - f) * p[24] + f * p[25] + 1e-3 / bins));
}
