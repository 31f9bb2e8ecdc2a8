// Shared by the double-precision KD loss tests (tests/test_grad_kd_losses.cpp,
// test_grad_kd_logit_losses.cpp): input helpers and small independent re-implementations of the
// losses written from the formulas of KD-STRATEGIES.md (plain loops, no engine ops).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/module.h"
#include "engine/ops.h"
#include "kd/losses.h"
#include "tests/gradcheck.h"

namespace pulsekd::testing::kd_refs {

using pulsekd::testing::Input;

using Mat = std::vector<double>;  // row-major

inline double value_of(const std::function<Var(Graph&)>& f) {
  Graph g;
  return f(g).value().data[0];
}

inline Var in(Graph& g, const Input& x) { return g.input(x.shape, x.data.data()); }

// base + a random signed offset of magnitude in [lo, hi] per element (keeps differences away
// from the L1 kink at 0).
inline Input offset_from(const Input& base, Rng& rng, double lo, double hi, bool needs_grad = true) {
  Input out = base;
  out.needs_grad = needs_grad;
  for (auto& v : out.data) v += (rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(lo, hi);
  return out;
}

// A (B, K) batch of probability rows.
inline Input random_probs(int64_t b, int64_t k, Rng& rng) {
  Input p{{b, k}, std::vector<real>(size_t(b * k)), false};
  for (int64_t i = 0; i < b; ++i) {
    double s = 0;
    for (int64_t c = 0; c < k; ++c) s += (p.data[size_t(i * k + c)] = rng.uniform(0.05, 1.0));
    for (int64_t c = 0; c < k; ++c) p.data[size_t(i * k + c)] /= s;
  }
  return p;
}

inline void report(const char* name, double worst) { MESSAGE(std::string(name) << ": worst relative gradient error " << worst); }

// ---- independent references (straight from the formulas)

inline double ref_huber(double d) { return std::fabs(d) <= 1 ? 0.5 * d * d : std::fabs(d) - 0.5; }

inline Mat ref_softmax_row(const double* z, int64_t k, double T = 1) {
  Mat p(static_cast<size_t>(k));
  double m = z[0] / T;
  for (int64_t c = 1; c < k; ++c) m = std::max(m, z[c] / T);
  double s = 0;
  for (int64_t c = 0; c < k; ++c) s += (p[size_t(c)] = std::exp(z[c] / T - m));
  for (auto& v : p) v /= s;
  return p;
}

// mean over rows of -Σ y log σ(z)
inline double ref_ce(const Mat& z, const Mat& y, int64_t b, int64_t k) {
  double acc = 0;
  for (int64_t i = 0; i < b; ++i) {
    const Mat p = ref_softmax_row(&z[size_t(i * k)], k);
    for (int64_t c = 0; c < k; ++c) acc -= y[size_t(i * k + c)] * std::log(p[size_t(c)]);
  }
  return acc / double(b);
}

inline double ref_dist(const Mat& x, int64_t w, int64_t i, int64_t j) {
  double s = 0;
  for (int64_t c = 0; c < w; ++c) s += (x[size_t(i * w + c)] - x[size_t(j * w + c)]) * (x[size_t(i * w + c)] - x[size_t(j * w + c)]);
  return std::sqrt(s);
}

// Park et al. distance loss; diffs receives every ψ_s − ψ_t.
inline double ref_rkd_distance(const Mat& s, int64_t ws, const Mat& t, int64_t wt, int64_t b, Mat* diffs = nullptr) {
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
inline double ref_cos(const Mat& x, int64_t w, int64_t i, int64_t j, int64_t k) {
  const double ni = ref_dist(x, w, i, j), nk = ref_dist(x, w, k, j);
  if (ni == 0 || nk == 0) return 0;
  double dot = 0;
  for (int64_t c = 0; c < w; ++c) dot += (x[size_t(i * w + c)] - x[size_t(j * w + c)]) * (x[size_t(k * w + c)] - x[size_t(j * w + c)]);
  return dot / (ni * nk);
}

inline double ref_rkd_angle(const Mat& s, int64_t ws, const Mat& t, int64_t wt, int64_t b, Mat* diffs = nullptr) {
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
inline double ref_kl(const Mat& p, const Mat& q) {
  double acc = 0;
  for (size_t c = 0; c < p.size(); ++c)
    if (p[c] > 0) acc += p[c] * std::log(p[c] / q[c]);
  return acc;
}

inline double ref_soft_kd(const Mat& zs, const Mat& zt, const Mat& y, int64_t b, int64_t k, double T, double alpha) {
  double kl = 0;
  for (int64_t i = 0; i < b; ++i)
    kl += ref_kl(ref_softmax_row(&zt[size_t(i * k)], k, T), ref_softmax_row(&zs[size_t(i * k)], k, T));
  return (1 - alpha) * ref_ce(zs, y, b, k) + alpha * T * T * kl / double(b);
}

// Zhao et al. reference implementation, literally: b = [p_t, Σ_{c≠t} p_c]; p̂ = softmax of z/T
// with 1000 subtracted at the target.
inline double ref_dkd(const Mat& zs, const Mat& zt, const Mat& y, const std::vector<int>& tgt, int64_t b, int64_t k,
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

inline double ref_hard_binned(const Mat& zs, const Mat& zt, const Mat& y, int64_t b, int64_t k) {
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
inline void check_shape_error(const char* name, Fn fn) {
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


}  // namespace pulsekd::testing::kd_refs
