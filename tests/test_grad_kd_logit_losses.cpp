// Distillation losses on logits and features (kd/losses.h), double precision: soft KD, hard KD
// on the binned head, DKD, the binned-head helpers, the FitNets adapter and hint, and shape
// errors — finite-difference gradients, values against the independent references of
// tests/kd_loss_refs.h, identities (DKD with warmup 0 and soft KD with alpha = 0 are the
// cross-entropy). The regression-head losses (PULSE, hard, RKD) are in test_grad_kd_losses.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kd/losses.h"
#include "engine/module.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"
#include "tests/kd_loss_refs.h"

using namespace pulsekd;
using pulsekd::testing::check_gradients;
using pulsekd::testing::Input;
using pulsekd::testing::random_input;
using namespace pulsekd::testing::kd_refs;

TEST_CASE("soft_kd_loss: reference values, alpha = 0 is the cross-entropy, gradients") {
  Rng rng(31);
  const int64_t b = 5, k = 9;
  Input zs = random_input({b, k}, rng, -3, 3), zt = random_input({b, k}, rng, -3, 3);
  Input y = random_probs(b, k, rng);
  for (const auto& [T, alpha] : {std::pair{4.0, 0.9}, std::pair{1.0, 0.5}, std::pair{2.5, 1.0}}) {
    const double got = value_of([&, T = T, alpha = alpha](Graph& g) {
      return soft_kd_loss(in(g, zs), in(g, zt), in(g, y), real(T), real(alpha));
    });
    CHECK(got == doctest::Approx(ref_soft_kd(zs.data, zt.data, y.data, b, k, T, alpha)).epsilon(1e-12));
    const std::string name = "soft_kd_loss T=" + std::to_string(T) + " alpha=" + std::to_string(alpha);
    report(name.c_str(), check_gradients(name, {zs, zt, y}, [T = T, alpha = alpha](Graph&, std::vector<Var>& v) {
             return soft_kd_loss(v[0], v[1], v[2], real(T), real(alpha));
           }));
  }
  const double ce = value_of([&](Graph& g) { return soft_cross_entropy(in(g, zs), in(g, y)); });
  CHECK(value_of([&](Graph& g) { return soft_kd_loss(in(g, zs), in(g, zt), in(g, y), real(4), real(0)); }) == ce);
  CHECK(ce == doctest::Approx(ref_ce(zs.data, y.data, b, k)).epsilon(1e-12));
  // defaults are T = 4, α = 0.9
  CHECK(value_of([&](Graph& g) { return soft_kd_loss(in(g, zs), in(g, zt), in(g, y)); }) ==
        doctest::Approx(ref_soft_kd(zs.data, zt.data, y.data, b, k, 4, 0.9)).epsilon(1e-12));
}

TEST_CASE("hard_kd_loss_binned: reference value, gradients (teacher gets none)") {
  Rng rng(32);
  const int64_t b = 6, k = 7;
  Input zs = random_input({b, k}, rng, -3, 3), zt = random_input({b, k}, rng, -3, 3);
  Input y = random_probs(b, k, rng);
  CHECK(value_of([&](Graph& g) { return hard_kd_loss_binned(in(g, zs), in(g, zt), in(g, y)); }) ==
        doctest::Approx(ref_hard_binned(zs.data, zt.data, y.data, b, k)).epsilon(1e-12));
  // hand: B = 1, K = 2, z_s = [0, 0], teacher argmax 1, y = [1, 0]: ½·log 2 + ½·log 2
  const std::vector<real> a = {0, 0}, t = {0.1, 0.5}, yy = {1, 0};
  CHECK(value_of([&](Graph& g) { return hard_kd_loss_binned(g.input({1, 2}, a.data()), g.input({1, 2}, t.data()), g.input({1, 2}, yy.data())); }) ==
        doctest::Approx(std::log(2.0)).epsilon(1e-12));
  // the teacher input "needs grad": its analytic gradient (0) must match the finite difference
  report("hard_kd_loss_binned", check_gradients("hard_kd_loss_binned", {zs, zt, y}, [](Graph&, std::vector<Var>& v) {
           return hard_kd_loss_binned(v[0], v[1], v[2]);
         }));
}

TEST_CASE("dkd_loss: reference (subtract-1000 form) values, warmup 0 is the cross-entropy, gradients") {
  Rng rng(33);
  struct Case { int64_t b, k; double alpha, beta, T, w, spread; };
  const Case cases[] = {{5, 7, 1, 8, 4, 1, 3}, {6, 9, 1, 8, 4, 0.35, 3}, {5, 11, 0.5, 2, 1, 1, 2},
                        {6, 5, 1, 0.5, 2, 0.8, 6}, {5, 64, 1, 8, 4, 1, 4}};
  for (const Case& c : cases) {
    Input zs = random_input({c.b, c.k}, rng, -c.spread, c.spread), zt = random_input({c.b, c.k}, rng, -c.spread, c.spread);
    Input y = random_probs(c.b, c.k, rng);
    std::vector<int> tgt;
    for (int64_t i = 0; i < c.b; ++i) tgt.push_back(int(rng.below(uint64_t(c.k))));
    const double got = value_of([&](Graph& g) {
      return dkd_loss(in(g, zs), in(g, zt), in(g, y), tgt, real(c.alpha), real(c.beta), real(c.T), real(c.w));
    });
    CHECK(got == doctest::Approx(ref_dkd(zs.data, zt.data, y.data, tgt, c.b, c.k, c.alpha, c.beta, c.T, c.w)).epsilon(1e-11));
    // TCKD and NCKD separately
    for (const auto& [a, be] : {std::pair{1.0, 0.0}, std::pair{0.0, 1.0}}) {
      const double part = value_of([&, a = a, be = be](Graph& g) {
        return dkd_loss(in(g, zs), in(g, zt), in(g, y), tgt, real(a), real(be), real(c.T), real(c.w));
      });
      CHECK(part == doctest::Approx(ref_dkd(zs.data, zt.data, y.data, tgt, c.b, c.k, a, be, c.T, c.w)).epsilon(1e-11));
    }
    if (c.k <= 11) {
      const std::string name = "dkd_loss K=" + std::to_string(c.k) + " T=" + std::to_string(c.T);
      report(name.c_str(), check_gradients(name, {zs, zt, y}, [&](Graph&, std::vector<Var>& v) {
               return dkd_loss(v[0], v[1], v[2], tgt, real(c.alpha), real(c.beta), real(c.T), real(c.w));
             }));
      for (const auto& [a, be] : {std::pair{1.0, 0.0}, std::pair{0.0, 1.0}}) {
        const std::string part = name + (a > 0 ? " TCKD only" : " NCKD only");
        report(part.c_str(), check_gradients(part, {zs, zt, y}, [&, a = a, be = be](Graph&, std::vector<Var>& v) {
                 return dkd_loss(v[0], v[1], v[2], tgt, real(a), real(be), real(c.T), real(c.w));
               }));
      }
    }
    const double ce = value_of([&](Graph& g) { return soft_cross_entropy(in(g, zs), in(g, y)); });
    CHECK(value_of([&](Graph& g) { return dkd_loss(in(g, zs), in(g, zt), in(g, y), tgt, real(1), real(8), real(4), real(0)); }) == ce);
  }
  // the student equal to the teacher: only the cross-entropy is left
  Input z = random_input({5, 6}, rng, -2, 2);
  Input y = random_probs(5, 6, rng);
  const std::vector<int> tgt = {0, 5, 2, 2, 3};
  CHECK(value_of([&](Graph& g) { return dkd_loss(in(g, z), in(g, z), in(g, y), tgt); }) ==
        doctest::Approx(ref_ce(z.data, y.data, 5, 6)).epsilon(1e-12));
  // far-apart logits (a target gap of 60·T) stay finite
  Input big = z;
  for (int64_t i = 0; i < 5; ++i) big.data[size_t(i * 6 + tgt[size_t(i)])] += 240;
  Graph g;
  Var vs = g.leaf(big.shape, big.data.data(), true), vt = g.leaf(z.shape, z.data.data(), true);
  Var l = dkd_loss(vs, vt, in(g, y), tgt);
  g.backward(l);
  CHECK(std::isfinite(l.value().data[0]));
  for (int i = 0; i < 30; ++i) CHECK((std::isfinite(vs.grad().data[i]) && std::isfinite(vt.grad().data[i])));
}

TEST_CASE("binned-head helpers: bin centres, Gaussian targets, target bins") {
  const std::vector<real> c = bin_centres(64, 30, 210);
  REQUIRE(c.size() == 64);
  CHECK(c[0] == doctest::Approx(30 + 0.5 * 180.0 / 64).epsilon(1e-12));
  CHECK(c[63] == doctest::Approx(210 - 0.5 * 180.0 / 64).epsilon(1e-12));
  const std::vector<real> c180 = bin_centres(180, 30, 210);
  CHECK(c180[0] == doctest::Approx(30.5));
  CHECK(c180[179] == doctest::Approx(209.5));

  const std::vector<float> hr = {75.3f, 30.0f, 209.9f, 12.0f, 400.0f};
  const std::vector<real> p = gaussian_bin_targets(hr.data(), 5, 180, 30, 210);
  const std::vector<int> tb = target_bin_index(hr.data(), 5, 180, 30, 210);
  CHECK(tb == std::vector<int>{45, 0, 179, 0, 179});
  for (int i = 0; i < 5; ++i) {
    double s = 0;
    int arg = 0;
    for (int k = 0; k < 180; ++k) {
      const double v = p[size_t(i * 180 + k)];
      REQUIRE(std::isfinite(v));
      s += v;
      if (v > p[size_t(i * 180 + arg)]) arg = k;
    }
    CHECK(s == doctest::Approx(1).epsilon(1e-12));
    CHECK(arg == tb[size_t(i)]);
  }
  // the bump itself: ratio of neighbouring bins follows exp(−(c−hr)²/(2σ²)), σ = 1.5
  const double r = p[46] / p[45];
  const double h = double(hr[0]);
  CHECK(r == doctest::Approx(std::exp(-(std::pow(76.5 - h, 2) - std::pow(75.5 - h, 2)) / (2 * 1.5 * 1.5))).epsilon(1e-10));
  // 64 bins over 30–210 BPM
  const std::vector<int> tb64 = target_bin_index(hr.data(), 1, 64, 30, 210);
  CHECK(tb64[0] == int((75.3 - 30) / (180.0 / 64)));
}

// ---------------------------------------------------------------------------------------
// FitNets

TEST_CASE("FitNetAdapter: parameters, initialisation, forward, parameter gradients") {
  FitNetAdapter ad(5, 3, 7);
  const auto named = ad.named_parameters();
  REQUIRE(named.size() == 2);
  CHECK(named[0].first == "weight");
  CHECK(named[0].second->shape == Shape{3, 5});
  CHECK(named[1].first == "bias");
  CHECK(named[1].second->shape == Shape{3});
  const double bound = 1 / std::sqrt(5.0);
  for (auto& [n, p] : named)
    for (real v : p->value) CHECK(std::fabs(v) <= bound);
  FitNetAdapter same(5, 3, 7), other(5, 3, 8);
  CHECK(same.find("weight")->value == ad.find("weight")->value);
  CHECK(other.find("weight")->value != ad.find("weight")->value);

  Rng rng(41);
  Input x = random_input({2, 4, 5}, rng), t = random_input({2, 4, 3}, rng);
  Graph g;
  Var out = ad.forward(g, in(g, x));
  REQUIRE(out.shape() == Shape{2, 4, 3});
  const std::vector<real>& w = ad.find("weight")->value;
  const std::vector<real>& bb = ad.find("bias")->value;
  for (int r = 0; r < 8; ++r)
    for (int o = 0; o < 3; ++o) {
      double e = bb[size_t(o)];
      for (int i = 0; i < 5; ++i) e += w[size_t(o * 5 + i)] * x.data[size_t(r * 5 + i)];
      CHECK(out.data()[r * 3 + o] == doctest::Approx(e).epsilon(1e-12));
    }
  CHECK_THROWS_AS(ad.forward(g, g.input({2, 4}, x.data.data())), ShapeError);

  // d(hint loss)/d(weight, bias) against central differences on the parameters
  ad.zero_grad();
  auto loss = [&]() {
    Graph g2;
    Var l = fitnet_hint_loss(ad.forward(g2, in(g2, x)), in(g2, t));
    return std::pair<double, Var>{l.value().data[0], l};
  };
  {
    Graph g2;
    Var l = fitnet_hint_loss(ad.forward(g2, in(g2, x)), in(g2, t));
    g2.backward(l);
  }
  double worst = 0;
  for (auto& [n, p] : ad.named_parameters()) {
    for (size_t i = 0; i < p->value.size(); ++i) {
      const real orig = p->value[i];
      NoGradGuard ng;
      p->value[i] = orig + 1e-6;
      const double up = loss().first;
      p->value[i] = orig - 1e-6;
      const double dn = loss().first;
      p->value[i] = orig;
      const double num = (up - dn) / 2e-6;
      worst = std::max(worst, std::fabs(num - p->grad[i]) / std::max(1.0, std::fabs(num)));
    }
  }
  CHECK(worst < 1e-6);
  report("FitNetAdapter parameters", worst);
}

TEST_CASE("fitnet_hint_loss, time matching: values and gradients") {
  Rng rng(42);
  // PULSE-like: teacher map 16 steps, student 8 (N = B*4 rows)
  const int64_t n = 6, ts = 8, tt = 16, cs = 3, ct = 5;
  Input fs = random_input({n, ts, cs}, rng), ft = random_input({n, tt, ct}, rng);
  {
    Graph g;
    auto [s, t] = match_time_lengths(in(g, fs), in(g, ft));
    REQUIRE(s.shape() == Shape{n, ts, cs});
    REQUIRE(t.shape() == Shape{n, ts, ct});
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < ts; ++k)
        for (int64_t c = 0; c < ct; ++c)
          CHECK(t.data()[(r * ts + k) * ct + c] ==
                doctest::Approx(0.5 * (ft.data[size_t((r * tt + 2 * k) * ct + c)] + ft.data[size_t((r * tt + 2 * k + 1) * ct + c)])).epsilon(1e-12));
    // the other way round: the student is pooled
    auto [s2, t2] = match_time_lengths(in(g, ft), in(g, fs));
    CHECK(s2.shape() == Shape{n, ts, ct});
    CHECK(t2.shape() == Shape{n, ts, cs});
    // equal lengths: untouched
    Var a = in(g, fs);
    CHECK(match_time_lengths(a, a).first.id == a.id);
    CHECK(pool_time_to(in(g, ft), 4).shape() == Shape{n, 4, ct});
  }
  // hint loss value: mean of squared differences
  Input a = random_input({5, 3}, rng), b = random_input({5, 3}, rng);
  double e = 0;
  for (size_t i = 0; i < a.data.size(); ++i) e += std::pow(a.data[i] - b.data[i], 2) / 15;
  CHECK(value_of([&](Graph& g) { return fitnet_hint_loss(in(g, a), in(g, b)); }) == doctest::Approx(e).epsilon(1e-12));
  report("fitnet_hint_loss", check_gradients("fitnet_hint_loss", {a, b}, [](Graph&, std::vector<Var>& v) {
           return fitnet_hint_loss(v[0], v[1]);
         }));
  // the whole hint path: adapter over channels, teacher pooled 16 → 8
  FitNetAdapter ad(cs, ct, 3);
  report("fitnet hint path", check_gradients("fitnet hint path", {fs, ft}, [&](Graph& g, std::vector<Var>& v) {
           auto [s, t] = match_time_lengths(v[0], v[1]);
           return fitnet_hint_loss(ad.forward(g, s), t);
         }));
  Input odd = random_input({n, 12, ct}, rng);
  Graph g;
  CHECK_THROWS_AS(match_time_lengths(in(g, fs), in(g, odd)), ShapeError);
  CHECK_THROWS_AS(pool_time_to(in(g, odd), 5), ShapeError);
}

// ---------------------------------------------------------------------------------------
// Shape errors

TEST_CASE("shape mismatches throw ShapeError naming the loss and the shapes") {
  Rng rng(51);
  Input h5 = random_input({5}, rng), h4 = random_input({4}, rng), d5 = random_input({5, 32}, rng),
        d5b = random_input({5, 31}, rng), d4 = random_input({4, 32}, rng);
  check_shape_error("pulse_kd_loss", [&](Graph& g) { return pulse_kd_loss(in(g, h5), in(g, h4), in(g, h5), in(g, d5), in(g, d5)); });
  check_shape_error("pulse_kd_loss", [&](Graph& g) { return pulse_kd_loss(in(g, h5), in(g, h5), in(g, h5), in(g, d5), in(g, d5b)); });
  check_shape_error("pulse_kd_loss", [&](Graph& g) { return pulse_kd_loss(in(g, h5), in(g, h5), in(g, h5), in(g, d4), in(g, d4)); });
  check_shape_error("pulse_kd_loss", [&](Graph& g) { return pulse_kd_loss(in(g, d5), in(g, h5), in(g, h5), in(g, d5), in(g, d5)); });
  check_shape_error("hard_kd_loss_regression", [&](Graph& g) { return hard_kd_loss_regression(in(g, h5), in(g, h5), in(g, h4)); });
  check_shape_error("rkd_distance_loss", [&](Graph& g) { return rkd_distance_loss(in(g, d5), in(g, d4)); });
  check_shape_error("rkd_distance_loss", [&](Graph& g) { return rkd_distance_loss(in(g, h5), in(g, d5)); });
  check_shape_error("rkd_angle_loss", [&](Graph& g) { return rkd_angle_loss(in(g, d5), in(g, d4)); });
  Input z = random_input({5, 7}, rng), z8 = random_input({5, 8}, rng), z1 = random_input({5, 1}, rng);
  Input y = random_probs(5, 7, rng);
  const std::vector<int> tgt = {0, 1, 2, 3, 4};
  check_shape_error("hard_kd_loss_binned", [&](Graph& g) { return hard_kd_loss_binned(in(g, z), in(g, z8), in(g, y)); });
  check_shape_error("soft_kd_loss", [&](Graph& g) { return soft_kd_loss(in(g, z), in(g, z), in(g, z8)); });
  check_shape_error("soft_kd_loss", [&](Graph& g) { return soft_kd_loss(in(g, h5), in(g, h5), in(g, h5)); });
  check_shape_error("soft_kd_loss", [&](Graph& g) { return soft_kd_loss(in(g, z1), in(g, z1), in(g, z1)); });
  check_shape_error("dkd_loss", [&](Graph& g) { return dkd_loss(in(g, z), in(g, z8), in(g, y), tgt); });
  check_shape_error("dkd_loss", [&](Graph& g) { return dkd_loss(in(g, z), in(g, z), in(g, y), std::vector<int>{0, 1}); });
  check_shape_error("dkd_loss", [&](Graph& g) { return dkd_loss(in(g, z), in(g, z), in(g, y), std::vector<int>{0, 1, 2, 3, 7}); });
  check_shape_error("fitnet_hint_loss", [&](Graph& g) { return fitnet_hint_loss(in(g, z), in(g, z8)); });
  check_shape_error("match_time_lengths", [&](Graph& g) { return match_time_lengths(in(g, z), in(g, z)).first; });
}
