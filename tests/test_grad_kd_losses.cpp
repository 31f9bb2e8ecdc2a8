// Distillation losses (kd/losses.h), double precision: finite-difference gradients of
// every loss with respect to the student and the teacher inputs, forward values against
// hand-computed numbers and against small independent re-implementations written from the
// formulas of KD-STRATEGIES.md (plain loops, no engine ops), identities (DKD with warmup 0 and
// soft KD with α = 0 are the cross-entropy, RKD of identical relations is 0), zero distances
// and shape errors.
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

using namespace pulsekd;
using pulsekd::testing::check_gradients;
using pulsekd::testing::Input;
using pulsekd::testing::random_input;

namespace {

using Mat = std::vector<double>;  // row-major

double value_of(const std::function<Var(Graph&)>& f) {
  Graph g;
  return f(g).value().data[0];
}

Var in(Graph& g, const Input& x) { return g.input(x.shape, x.data.data()); }

// base + a random signed offset of magnitude in [lo, hi] per element (keeps differences away
// from the L1 kink at 0).
Input offset_from(const Input& base, Rng& rng, double lo, double hi, bool needs_grad = true) {
  Input out = base;
  out.needs_grad = needs_grad;
  for (auto& v : out.data) v += (rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(lo, hi);
  return out;
}

// A (B, K) batch of probability rows.
Input random_probs(int64_t b, int64_t k, Rng& rng) {
  Input p{{b, k}, std::vector<real>(size_t(b * k)), false};
  for (int64_t i = 0; i < b; ++i) {
    double s = 0;
    for (int64_t c = 0; c < k; ++c) s += (p.data[size_t(i * k + c)] = rng.uniform(0.05, 1.0));
    for (int64_t c = 0; c < k; ++c) p.data[size_t(i * k + c)] /= s;
  }
  return p;
}

void report(const char* name, double worst) { MESSAGE(std::string(name) << ": worst relative gradient error " << worst); }

// ---- independent references (straight from the formulas)

double ref_huber(double d) { return std::fabs(d) <= 1 ? 0.5 * d * d : std::fabs(d) - 0.5; }

Mat ref_softmax_row(const double* z, int64_t k, double T = 1) {
  Mat p(static_cast<size_t>(k));
  double m = z[0] / T;
  for (int64_t c = 1; c < k; ++c) m = std::max(m, z[c] / T);
  double s = 0;
  for (int64_t c = 0; c < k; ++c) s += (p[size_t(c)] = std::exp(z[c] / T - m));
  for (auto& v : p) v /= s;
  return p;
}

// mean over rows of -Σ y log σ(z)
double ref_ce(const Mat& z, const Mat& y, int64_t b, int64_t k) {
  double acc = 0;
  for (int64_t i = 0; i < b; ++i) {
    const Mat p = ref_softmax_row(&z[size_t(i * k)], k);
    for (int64_t c = 0; c < k; ++c) acc -= y[size_t(i * k + c)] * std::log(p[size_t(c)]);
  }
  return acc / double(b);
}

double ref_dist(const Mat& x, int64_t w, int64_t i, int64_t j) {
  double s = 0;
  for (int64_t c = 0; c < w; ++c) s += (x[size_t(i * w + c)] - x[size_t(j * w + c)]) * (x[size_t(i * w + c)] - x[size_t(j * w + c)]);
  return std::sqrt(s);
}

// Park et al. distance loss; diffs receives every ψ_s − ψ_t.
double ref_rkd_distance(const Mat& s, int64_t ws, const Mat& t, int64_t wt, int64_t b, Mat* diffs = nullptr) {
  auto psi = [&](const Mat& x, int64_t w) {
    double sum = 0;
    int cnt = 0;
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < b; ++j)
        if (i != j && ref_dist(x, w, i, j) > 0) { sum += ref_dist(x, w, i, j); ++cnt; }
    const double mu = cnt ? sum / cnt : 0;
    Mat p(size_t(b * b), 0.0);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < b; ++j)
        if (i != j && mu > 0) p[size_t(i * b + j)] = ref_dist(x, w, i, j) / mu;
    return p;
  };
  const Mat ps = psi(s, ws), pt = psi(t, wt);
  double acc = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < b; ++j)
      if (i != j) {
        const double d = ps[size_t(i * b + j)] - pt[size_t(i * b + j)];
        acc += ref_huber(d);
        if (diffs) diffs->push_back(d);
      }
  return acc / double(b * (b - 1));
}

// cos of the angle at x_j between x_i and x_k, 0 if either side has zero length.
double ref_cos(const Mat& x, int64_t w, int64_t i, int64_t j, int64_t k) {
  const double ni = ref_dist(x, w, i, j), nk = ref_dist(x, w, k, j);
  if (ni == 0 || nk == 0) return 0;
  double dot = 0;
  for (int64_t c = 0; c < w; ++c) dot += (x[size_t(i * w + c)] - x[size_t(j * w + c)]) * (x[size_t(k * w + c)] - x[size_t(j * w + c)]);
  return dot / (ni * nk);
}

double ref_rkd_angle(const Mat& s, int64_t ws, const Mat& t, int64_t wt, int64_t b, Mat* diffs = nullptr) {
  double acc = 0;
  int64_t cnt = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t k = 0; k < b; ++k) {
        if (i == j || j == k || i == k) continue;
        const double d = ref_cos(s, ws, i, j, k) - ref_cos(t, wt, i, j, k);
        acc += ref_huber(d);
        if (diffs) diffs->push_back(d);
        ++cnt;
      }
  return acc / double(cnt);
}

// Σ_c p_c log(p_c / q_c), terms with p_c = 0 dropped
double ref_kl(const Mat& p, const Mat& q) {
  double acc = 0;
  for (size_t c = 0; c < p.size(); ++c)
    if (p[c] > 0) acc += p[c] * std::log(p[c] / q[c]);
  return acc;
}

double ref_soft_kd(const Mat& zs, const Mat& zt, const Mat& y, int64_t b, int64_t k, double T, double alpha) {
  double kl = 0;
  for (int64_t i = 0; i < b; ++i)
    kl += ref_kl(ref_softmax_row(&zt[size_t(i * k)], k, T), ref_softmax_row(&zs[size_t(i * k)], k, T));
  return (1 - alpha) * ref_ce(zs, y, b, k) + alpha * T * T * kl / double(b);
}

// Zhao et al. reference implementation, literally: b = [p_t, Σ_{c≠t} p_c]; p̂ = softmax of z/T
// with 1000 subtracted at the target.
double ref_dkd(const Mat& zs, const Mat& zt, const Mat& y, const std::vector<int>& tgt, int64_t b, int64_t k,
               double alpha, double beta, double T, double w) {
  double tckd = 0, nckd = 0;
  for (int64_t i = 0; i < b; ++i) {
    const int t = tgt[size_t(i)];
    const Mat ps = ref_softmax_row(&zs[size_t(i * k)], k, T), pt = ref_softmax_row(&zt[size_t(i * k)], k, T);
    double os = 0, ot = 0;
    for (int64_t c = 0; c < k; ++c)
      if (c != t) { os += ps[size_t(c)]; ot += pt[size_t(c)]; }
    tckd += ref_kl({pt[size_t(t)], ot}, {ps[size_t(t)], os});
    Mat ms(&zs[size_t(i * k)], &zs[size_t(i * k)] + k), mt(&zt[size_t(i * k)], &zt[size_t(i * k)] + k);
    for (auto& v : ms) v /= T;
    for (auto& v : mt) v /= T;
    ms[size_t(t)] -= 1000;
    mt[size_t(t)] -= 1000;
    nckd += ref_kl(ref_softmax_row(mt.data(), k), ref_softmax_row(ms.data(), k));
  }
  return ref_ce(zs, y, b, k) + w * T * T * (alpha * tckd + beta * nckd) / double(b);
}

double ref_hard_binned(const Mat& zs, const Mat& zt, const Mat& y, int64_t b, int64_t k) {
  double hard = 0;
  for (int64_t i = 0; i < b; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < k; ++c)
      if (zt[size_t(i * k + c)] > zt[size_t(i * k + best)]) best = c;
    hard -= std::log(ref_softmax_row(&zs[size_t(i * k)], k)[size_t(best)]);
  }
  return 0.5 * ref_ce(zs, y, b, k) + 0.5 * hard / double(b);
}

template <class Fn>
void check_shape_error(const char* name, Fn fn) {
  Graph g;
  try {
    fn(g);
    FAIL(name << ": no exception");
  } catch (const ShapeError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find(name) != std::string::npos);
    CHECK(std::string(e.what()).find("[") != std::string::npos);  // names the shapes
  }
}

}  // namespace

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
