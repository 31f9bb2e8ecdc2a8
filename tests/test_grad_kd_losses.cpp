// Distillation losses on the regression head and features (kd/losses.h), double precision:
// PULSE's loss, hard KD (regression), RKD distance and angle — finite-difference gradients with
// respect to the student and the teacher inputs, values against hand-computed numbers and the
// independent references of tests/kd_loss_refs.h, identities (RKD of identical relations is 0),
// zero distances, tiny batches. Logit and FitNets losses: test_grad_kd_logit_losses.cpp.
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


// ---------------------------------------------------------------------------------------
// PULSE and hard regression

TEST_CASE("pulse_kd_loss: hand-computed value, B = 2") {
  const std::vector<real> hs = {70, 80}, ht = {71, 83}, y = {72, 79};
  const std::vector<real> ds = {0, 0, 0, 1, 0, 0}, dt = {0, 0, 0, 0, 0, 0};
  const double e = std::exp(1.0);
  // L1(s,y) = 1.5, L1(s,t) = 2; softmax rows: teacher all 1/3, student row 2 [e, 1, 1]/(e+2)
  const double mse = (std::pow(e / (e + 2) - 1.0 / 3, 2) + 2 * std::pow(1 / (e + 2) - 1.0 / 3, 2)) / 6;
  const double b = 0.5, gm = 0.6667;
  const double expected = gm * (b * 1.5 + (1 - b) * 2.0) + (1 - gm) * mse;
  const double got = value_of([&](Graph& g) {
    return pulse_kd_loss(g.input({2}, hs.data()), g.input({2}, ht.data()), g.input({2}, y.data()),
                         g.input({2, 3}, ds.data()), g.input({2, 3}, dt.data()));
  });
  CHECK(got == doctest::Approx(expected).epsilon(1e-12));
  // (B, 1) per-sample vectors are accepted as well
  const double got2 = value_of([&](Graph& g) {
    return pulse_kd_loss(g.input({2, 1}, hs.data()), g.input({2, 1}, ht.data()), g.input({2}, y.data()),
                         g.input({2, 3}, ds.data()), g.input({2, 3}, dt.data()), real(0.5), real(0.6667));
  });
  CHECK(got2 == doctest::Approx(expected).epsilon(1e-12));
}

TEST_CASE("gradcheck pulse_kd_loss w.r.t. student and teacher hr and dense features") {
  Rng rng(11);
  for (int64_t d : {7, 32}) {
    const int64_t b = d == 7 ? 5 : 6;
    Input hs = random_input({b}, rng, 60, 120);
    Input ht = offset_from(hs, rng, 0.3, 4);
    Input y = offset_from(hs, rng, 0.3, 4, false);
    Input fs = random_input({b, d}, rng, -2, 2), ft = random_input({b, d}, rng, -2, 2);
    report("pulse_kd_loss", check_gradients("pulse_kd_loss", {hs, ht, y, fs, ft}, [](Graph&, std::vector<Var>& v) {
             return pulse_kd_loss(v[0], v[1], v[2], v[3], v[4]);
           }));
    report("pulse_kd_loss b=0.3 g=0.2", check_gradients("pulse_kd_loss b g", {hs, ht, y, fs, ft}, [](Graph&, std::vector<Var>& v) {
             return pulse_kd_loss(v[0], v[1], v[2], v[3], v[4], real(0.3), real(0.2));
           }));
  }
}

TEST_CASE("hard_kd_loss_regression: every task, values and gradients") {
  Rng rng(12);
  const int64_t b = 5;
  Input hs = random_input({b}, rng, 60, 120);
  // offsets away from 0 (L1 kink) and from ±1 (Huber seam): magnitudes in [0.2, 0.8] or [1.3, 3]
  Input ht = hs, y = hs;
  y.needs_grad = false;
  for (int64_t i = 0; i < b; ++i) {
    ht.data[size_t(i)] += (i % 2 ? 1 : -1) * (i % 3 ? rng.uniform(0.2, 0.8) : rng.uniform(1.3, 3));
    y.data[size_t(i)] += (i % 2 ? -1 : 1) * (i % 3 ? rng.uniform(1.3, 3) : rng.uniform(0.2, 0.8));
  }
  auto task_ref = [](const std::string& task, double d) {
    if (task == "l1") return std::fabs(d);
    if (task == "mse") return d * d;
    if (task == "huber") return ref_huber(d);
    return std::log(std::cosh(d));
  };
  for (const std::string task : {"l1", "mse", "huber", "logcosh"}) {
    double expected = 0;
    for (int64_t i = 0; i < b; ++i)
      expected += 0.5 * task_ref(task, hs.data[size_t(i)] - y.data[size_t(i)]) / b +
                  0.5 * task_ref(task, hs.data[size_t(i)] - ht.data[size_t(i)]) / b;
    const double got = value_of([&](Graph& g) { return hard_kd_loss_regression(in(g, hs), in(g, ht), in(g, y), task); });
    CHECK(got == doctest::Approx(expected).epsilon(1e-12));
    const std::string name = "hard_kd_loss_regression " + task;
    report(name.c_str(), check_gradients(name, {hs, ht, y}, [&](Graph&, std::vector<Var>& v) {
             return hard_kd_loss_regression(v[0], v[1], v[2], task);
           }));
  }
  Graph g;
  CHECK_THROWS_AS(hard_kd_loss_regression(in(g, hs), in(g, ht), in(g, y), "cosine"), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Relational KD

TEST_CASE("rkd: hand-computed values, B = 3, different widths") {
  // distances: student points 0, 1, 3 on a line (μ = 2), teacher (0,0), (2,0), (4,0) (μ = 8/3):
  // ψ_s = .5, 1.5, 1 and ψ_t = .75, 1.5, .75 → Huber .03125, 0, .03125 per pair → 0.125 / 6
  const std::vector<real> s1 = {0, 1, 3}, t1 = {0, 0, 2, 0, 4, 0};
  CHECK(value_of([&](Graph& g) { return rkd_distance_loss(g.input({3, 1}, s1.data()), g.input({3, 2}, t1.data())); }) ==
        doctest::Approx(0.125 / 6).epsilon(1e-12));
  // angles: right isosceles triangle (cos 0, 1/√2, 1/√2) against an equilateral one (cos ½);
  // each anchor has two ordered (i, k) triplets.
  const std::vector<real> s2 = {0, 0, 1, 0, 0, 1}, t2 = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const double h = 0.5 * std::pow(1 / std::sqrt(2.0) - 0.5, 2);
  CHECK(value_of([&](Graph& g) { return rkd_angle_loss(g.input({3, 2}, s2.data()), g.input({3, 3}, t2.data())); }) ==
        doctest::Approx(2 * (0.125 + 2 * h) / 6).epsilon(1e-12));
  CHECK(2 * (0.125 + 2 * h) / 6 == doctest::Approx(0.05596440627115082).epsilon(1e-14));
}

TEST_CASE("rkd: forward against the reference on random batches, both Huber branches") {
  Rng rng(21);
  for (int rep = 0; rep < 3; ++rep) {
    const int64_t b = 5 + rep % 2, ws = 7, wt = 4 + 7 * rep;
    Input fs = random_input({b, ws}, rng), ft = random_input({b, wt}, rng);
    for (int64_t c = 0; c < ws; ++c) fs.data[size_t(2 * ws + c)] += 2.5;  // an outlier: |ψ_s − ψ_t| > 1
    Mat dd, da;
    const double rd = ref_rkd_distance(fs.data, ws, ft.data, wt, b, &dd);
    const double ra = ref_rkd_angle(fs.data, ws, ft.data, wt, b, &da);
    CHECK(value_of([&](Graph& g) { return rkd_distance_loss(in(g, fs), in(g, ft)); }) == doctest::Approx(rd).epsilon(1e-12));
    CHECK(value_of([&](Graph& g) { return rkd_angle_loss(in(g, fs), in(g, ft)); }) == doctest::Approx(ra).epsilon(1e-12));
    CHECK(std::any_of(dd.begin(), dd.end(), [](double d) { return std::fabs(d) > 1; }));
    CHECK(std::any_of(dd.begin(), dd.end(), [](double d) { return std::fabs(d) < 1; }));
  }
}

TEST_CASE("gradcheck rkd_distance_loss w.r.t. student and teacher features (Ds != Dt)") {
  Rng rng(22);
  struct Case { int64_t b, ws, wt; };
  for (const Case c : {Case{6, 7, 11}, Case{5, 3, 9}, Case{5, 13, 5}}) {
    Input fs = random_input({c.b, c.ws}, rng), ft = random_input({c.b, c.wt}, rng);
    for (int64_t k = 0; k < c.ws; ++k) fs.data[size_t(1 * c.ws + k)] += 2.0;  // reaches the linear Huber branch
    Mat dd;
    ref_rkd_distance(fs.data, c.ws, ft.data, c.wt, c.b, &dd);
    for (double d : dd) REQUIRE(std::fabs(std::fabs(d) - 1) > 1e-4);  // away from the seam
    report("rkd_distance_loss", check_gradients("rkd_distance_loss", {fs, ft}, [](Graph&, std::vector<Var>& v) {
             return rkd_distance_loss(v[0], v[1]);
           }));
  }
}

TEST_CASE("gradcheck rkd_angle_loss w.r.t. student and teacher features (Ds != Dt)") {
  Rng rng(23);
  struct Case { int64_t b, ws, wt; };
  for (const Case c : {Case{5, 7, 4}, Case{6, 3, 9}, Case{4, 5, 2}}) {
    Input fs = random_input({c.b, c.ws}, rng), ft = random_input({c.b, c.wt}, rng);
    Mat da;
    ref_rkd_angle(fs.data, c.ws, ft.data, c.wt, c.b, &da);
    for (double d : da) REQUIRE(std::fabs(std::fabs(d) - 1) > 1e-4);
    report("rkd_angle_loss", check_gradients("rkd_angle_loss", {fs, ft}, [](Graph&, std::vector<Var>& v) {
             return rkd_angle_loss(v[0], v[1]);
           }));
  }
}

TEST_CASE("rkd: identical relations give 0 (same features, scaled and shifted, zero-padded width)") {
  Rng rng(24);
  const int64_t b = 6, w = 5;
  Input f = random_input({b, w}, rng);
  Input scaled = f;
  for (size_t i = 0; i < scaled.data.size(); ++i) scaled.data[i] = 3 * scaled.data[i] + 0.7;
  Input padded{{b, w + 2}, {}, true};
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t c = 0; c < w; ++c) padded.data.push_back(f.data[size_t(i * w + c)]);
    padded.data.push_back(0);
    padded.data.push_back(0);
  }
  for (const Input* t : {&f, &scaled, &padded}) {
    CHECK(value_of([&](Graph& g) { return rkd_distance_loss(in(g, f), in(g, *t)); }) == doctest::Approx(0).epsilon(1e-12));
    CHECK(value_of([&](Graph& g) { return rkd_angle_loss(in(g, f), in(g, *t)); }) == doctest::Approx(0).epsilon(1e-12));
  }
  // and the gradient there is zero
  Graph g;
  Var s = g.leaf(f.shape, f.data.data(), true);
  g.backward(add(rkd_distance_loss(s, in(g, scaled)), rkd_angle_loss(s, in(g, scaled))));
  for (int64_t i = 0; i < b * w; ++i) CHECK(std::fabs(s.grad().data[i]) < 1e-12);
}

TEST_CASE("rkd: zero distances are safe (no NaN, excluded from mu, zero unit vectors)") {
  Rng rng(25);
  const int64_t b = 6, ws = 5, wt = 7;
  Input fs = random_input({b, ws}, rng), ft = random_input({b, wt}, rng);
  Input fs_dup = fs, ft_dup = ft;
  for (int64_t c = 0; c < ws; ++c) fs_dup.data[size_t(4 * ws + c)] = fs_dup.data[size_t(1 * ws + c)];
  for (int64_t c = 0; c < wt; ++c) ft_dup.data[size_t(3 * wt + c)] = ft_dup.data[size_t(0 * wt + c)];
  for (const auto& [s, t] : {std::pair{&fs_dup, &ft}, std::pair{&fs, &ft_dup}, std::pair{&fs_dup, &ft_dup}}) {
    CHECK(value_of([&](Graph& g) { return rkd_distance_loss(in(g, *s), in(g, *t)); }) ==
          doctest::Approx(ref_rkd_distance(s->data, ws, t->data, wt, b)).epsilon(1e-12));
    CHECK(value_of([&](Graph& g) { return rkd_angle_loss(in(g, *s), in(g, *t)); }) ==
          doctest::Approx(ref_rkd_angle(s->data, ws, t->data, wt, b)).epsilon(1e-12));
    Graph g;
    Var vs = g.leaf(s->shape, s->data.data(), true), vt = g.leaf(t->shape, t->data.data(), true);
    g.backward(add(rkd_distance_loss(vs, vt), rkd_angle_loss(vs, vt)));
    for (int64_t i = 0; i < b * ws; ++i) CHECK(std::isfinite(vs.grad().data[i]));
    for (int64_t i = 0; i < b * wt; ++i) CHECK(std::isfinite(vt.grad().data[i]));
  }
  // A duplicated pair in the (constant) teacher leaves the student side differentiable.
  Input t_const = ft_dup;
  t_const.needs_grad = false;
  report("rkd_distance_loss teacher duplicates", check_gradients("rkd_distance_loss dup teacher", {fs, t_const},
         [](Graph&, std::vector<Var>& v) { return rkd_distance_loss(v[0], v[1]); }));
  report("rkd_angle_loss teacher duplicates", check_gradients("rkd_angle_loss dup teacher", {fs, t_const},
         [](Graph&, std::vector<Var>& v) { return rkd_angle_loss(v[0], v[1]); }));
  // Every student feature equal: μ = 0, ψ = 0, finite loss, zero student gradient.
  Input same{{b, ws}, std::vector<real>(size_t(b * ws), real(0.25)), true};
  Graph g;
  Var vs = g.leaf(same.shape, same.data.data(), true);
  Var loss = add(rkd_distance_loss(vs, in(g, ft)), rkd_angle_loss(vs, in(g, ft)));
  CHECK(std::isfinite(loss.value().data[0]));
  g.backward(loss);
  for (int64_t i = 0; i < b * ws; ++i) CHECK(vs.grad().data[i] == 0);
}

TEST_CASE("rkd: batches too small for a pair / triplet give 0 and no gradient") {
  Rng rng(26);
  Input s2 = random_input({2, 3}, rng), t2 = random_input({2, 4}, rng), s1 = random_input({1, 3}, rng),
        t1 = random_input({1, 4}, rng);
  Graph g;
  Var a = g.leaf(s2.shape, s2.data.data(), true), c = g.leaf(s1.shape, s1.data.data(), true);
  Var loss = add(rkd_angle_loss(a, in(g, t2)), rkd_distance_loss(c, in(g, t1)));
  CHECK(loss.value().data[0] == 0);
  g.backward(loss);
  for (int i = 0; i < 6; ++i) CHECK(a.grad().data[i] == 0);
}

// ---------------------------------------------------------------------------------------
// Binned head
