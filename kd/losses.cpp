// Distillation losses. The simple ones are compositions of gradient-checked ops; RKD
// (pairwise / triplet relations) and DKD (target / non-target split with logs of partial
// sums) are fused ops with their own forward and backward. Sums are accumulated in double.
#include "kd/losses.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/blas.h"
#include "engine/op_util.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace pulsekd {

namespace {

using detail::fail;

Graph& graph_of(const char* op, std::initializer_list<Var> vars) { return detail::graph_of(op, vars, true); }

// A per-sample vector: (B) or (B, 1). Returns B.
int64_t expect_vec(const char* op, const char* name, Var v) {
  const Shape& s = v.shape();
  if (s.ndim == 1 || (s.ndim == 2 && s[1] == 1)) return s[0];
  fail(op, std::string(name) + " must be (B) or (B, 1), got " + s.str());
}

void expect_2d(const char* op, const char* name, Var v) {
  if (v.shape().ndim != 2) fail(op, std::string(name) + " must be 2-D, got " + v.shape().str());
}

// Per-sample vectors as (B) for the pointwise losses.
Var as_vec(Var v, int64_t b) { return v.shape().ndim == 1 ? v : reshape(v, {b}); }

// Binned-head inputs: logits_s, logits_t, target_probs all (B, K), K ≥ 2.
void check_binned(const char* op, Var zs, Var zt, Var y) {
  expect_2d(op, "student logits", zs);
  if (zt.shape() != zs.shape())
    fail(op, "teacher logits " + zt.shape().str() + " and student logits " + zs.shape().str() + " differ");
  if (y.shape() != zs.shape())
    fail(op, "target probabilities " + y.shape().str() + " and logits " + zs.shape().str() + " differ");
  if (zs.shape()[0] < 1) fail(op, "empty batch " + zs.shape().str());
  if (zs.shape()[1] < 2) fail(op, "need at least 2 bins, got " + zs.shape().str());
}

inline double huber(double d) { return std::fabs(d) <= 1 ? 0.5 * d * d : std::fabs(d) - 0.5; }
inline double huber_grad(double d) { return std::fabs(d) <= 1 ? d : double((d > 0) - (d < 0)); }

// A scalar zero that depends on the inputs (so backward() works) but passes no gradient:
// RKD of a batch too small to have a pair or a triplet.
Var zero_loss(Graph& g, bool requires_grad, const char* op) {
  Tensor out = g.new_zeros({1});
  return g.record(out, requires_grad, [](const Tensor&) {}, op);
}

// ---- RKD distance helpers

struct PairDist {
  Tensor d;         // (B, B) distances, diagonal 0
  double mu = 0;    // mean of the non-zero off-diagonal distances (0 if none)
  int64_t nonzero = 0;
};

PairDist pair_distances(Graph& g, const Tensor& x) {
  const int64_t b = x.dim(0), w = x.dim(1);
  PairDist p;
  p.d = g.new_zeros({b, b});
  double acc = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = i + 1; j < b; ++j) {
      double s = 0;
      for (int64_t c = 0; c < w; ++c) {
        const double t = double(x.data[i * w + c]) - double(x.data[j * w + c]);
        s += t * t;
      }
      const double dist = std::sqrt(s);
      p.d.data[i * b + j] = p.d.data[j * b + i] = real(dist);
      if (dist > 0) {
        acc += 2 * dist;  // both ordered pairs
        p.nonzero += 2;
      }
    }
  p.mu = p.nonzero ? acc / double(p.nonzero) : 0.0;
  return p;
}

// gpsi (B, B): dL/dψ_ij over ordered pairs. Adds dL/dx into dx (B, W), through ψ = D/μ and μ.
void pair_distances_backward(const Tensor& x, const PairDist& p, const std::vector<double>& gpsi, real* dx) {
  if (p.mu <= 0) return;
  const int64_t b = x.dim(0), w = x.dim(1);
  double c = 0;  // Σ gψ_ij·ψ_ij / (μ·P): the gradient through μ
  for (int64_t i = 0; i < b * b; ++i) c += gpsi[size_t(i)] * double(p.d.data[i]) / p.mu;
  c /= p.mu * double(p.nonzero);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < b; ++j) {
      const double dist = p.d.data[i * b + j];
      if (i == j || !(dist > 0)) continue;  // zero distance: zero unit vector, no gradient
      const double gd = gpsi[size_t(i * b + j)] / p.mu - c;
      const double f = gd / dist;
      for (int64_t k = 0; k < w; ++k) {
        const real gv = real(f * (double(x.data[i * w + k]) - double(x.data[j * w + k])));
        dx[i * w + k] += gv;
        dx[j * w + k] -= gv;
      }
    }
}

// ---- RKD angle helpers

// Unit vectors e[j][i] = (x_i − x_j)/‖x_i − x_j‖ (zero for i = j or a zero distance), as
// (B, B, W), and the norms (B, B).
void unit_vectors(Graph& g, const Tensor& x, Tensor& e, Tensor& n) {
  const int64_t b = x.dim(0), w = x.dim(1);
  e = g.new_zeros({b, b, w});
  n = g.new_zeros({b, b});
  for (int64_t j = 0; j < b; ++j)
    for (int64_t i = 0; i < b; ++i) {
      if (i == j) continue;
      real* ev = e.data + (j * b + i) * w;
      double s = 0;
      for (int64_t c = 0; c < w; ++c) {
        const double t = double(x.data[i * w + c]) - double(x.data[j * w + c]);
        s += t * t;
      }
      const double nv = std::sqrt(s);
      n.data[j * b + i] = real(nv);
      if (!(nv > 0)) continue;
      for (int64_t c = 0; c < w; ++c) ev[c] = real((double(x.data[i * w + c]) - double(x.data[j * w + c])) / nv);
    }
}

// cos (B, B) = e_j e_jᵀ for anchor j.
void anchor_gram(const Tensor& e, int64_t j, real* cos) {
  const int64_t b = e.dim(0), w = e.dim(2);
  const real* ej = e.data + j * b * w;
  gemm(false, true, int(b), int(b), int(w), 1, ej, int(w), ej, int(w), 0, cos, int(b));
}

// Given ge (B, W) = dL/de_j· for anchor j, adds dL/dx through the normalisation.
void unit_vectors_backward(const Tensor& x, const Tensor& e, const Tensor& n, int64_t j, const real* ge, real* dx) {
  const int64_t b = x.dim(0), w = x.dim(1);
  for (int64_t i = 0; i < b; ++i) {
    const double nv = n.data[j * b + i];
    if (i == j || !(nv > 0)) continue;
    const real* ev = e.data + (j * b + i) * w;
    const real* gv = ge + i * w;
    double dot = 0;
    for (int64_t c = 0; c < w; ++c) dot += double(gv[c]) * double(ev[c]);
    for (int64_t c = 0; c < w; ++c) {
      const real d = real((double(gv[c]) - dot * double(ev[c])) / nv);
      dx[i * w + c] += d;
      dx[j * w + c] -= d;
    }
  }
}

void check_rkd(const char* op, Var f_s, Var f_t) {
  graph_of(op, {f_s, f_t});
  expect_2d(op, "student features", f_s);
  expect_2d(op, "teacher features", f_t);
  if (f_s.shape()[0] != f_t.shape()[0])
    fail(op, "student features " + f_s.shape().str() + " and teacher features " + f_t.shape().str() +
                 " have different batch sizes");
  if (f_s.shape()[1] < 1 || f_t.shape()[1] < 1)
    fail(op, "empty feature width: student " + f_s.shape().str() + ", teacher " + f_t.shape().str());
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Regression head

Var regression_task_loss(Var pred, Var target, const std::string& task) {
  if (task == "l1") return l1_loss(pred, target);
  if (task == "mse") return mse_loss(pred, target);
  if (task == "huber") return huber_loss(pred, target, real(1));
  if (task == "logcosh" || task == "log_cosh") return log_cosh_loss(pred, target);
  throw std::invalid_argument("regression_task_loss: unknown task '" + task + "' (l1, mse, huber, logcosh)");
}

Var pulse_kd_loss(Var hr_s, Var hr_t, Var y, Var dense_s, Var dense_t, real b, real g) {
  const char* op = "pulse_kd_loss";
  graph_of(op, {hr_s, hr_t, y, dense_s, dense_t});
  const int64_t n = expect_vec(op, "student hr", hr_s);
  if (expect_vec(op, "teacher hr", hr_t) != n || expect_vec(op, "label y", y) != n)
    fail(op, "student hr " + hr_s.shape().str() + ", teacher hr " + hr_t.shape().str() + " and label " +
                 y.shape().str() + " differ");
  expect_2d(op, "student dense", dense_s);
  if (dense_s.shape() != dense_t.shape())
    fail(op, "student dense " + dense_s.shape().str() + " and teacher dense " + dense_t.shape().str() + " differ");
  if (dense_s.shape()[0] != n)
    fail(op, "dense " + dense_s.shape().str() + " does not match batch of hr " + hr_s.shape().str());
  const Var hs = as_vec(hr_s, n), ht = as_vec(hr_t, n), yv = as_vec(y, n);
  const Var task = add(scale(l1_loss(hs, yv), b), scale(l1_loss(hs, ht), real(1) - b));
  const Var feat = mse_loss(softmax(dense_t, -1), softmax(dense_s, -1));
  return add(scale(task, g), scale(feat, real(1) - g));
}

Var hard_kd_loss_regression(Var hr_s, Var hr_t, Var y, const std::string& task) {
  const char* op = "hard_kd_loss_regression";
  graph_of(op, {hr_s, hr_t, y});
  const int64_t n = expect_vec(op, "student hr", hr_s);
  if (expect_vec(op, "teacher hr", hr_t) != n || expect_vec(op, "label y", y) != n)
    fail(op, "student hr " + hr_s.shape().str() + ", teacher hr " + hr_t.shape().str() + " and label " +
                 y.shape().str() + " differ");
  const Var hs = as_vec(hr_s, n);
  return scale(add(regression_task_loss(hs, as_vec(y, n), task), regression_task_loss(hs, as_vec(hr_t, n), task)),
               real(0.5));
}

// ---------------------------------------------------------------------------------------
// Relational KD

Var rkd_distance_loss(Var f_s, Var f_t) {
  const char* op = "rkd_distance_loss";
  check_rkd(op, f_s, f_t);
  Graph& g = *f_s.g;
  const bool gs = f_s.requires_grad(), gt = f_t.requires_grad();
  const int64_t b = f_s.shape()[0];
  if (b < 2) return zero_loss(g, gs || gt, op);
  const Tensor xs = f_s.value(), xt = f_t.value();
  const PairDist ps = pair_distances(g, xs), pt = pair_distances(g, xt);
  const double pairs = double(b * (b - 1));
  double acc = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < b; ++j) {
      if (i == j) continue;
      const double a = ps.mu > 0 ? ps.d.data[i * b + j] / ps.mu : 0.0;
      const double c = pt.mu > 0 ? pt.d.data[i * b + j] / pt.mu : 0.0;
      acc += huber(a - c);
    }
  Tensor out = g.new_tensor({1});
  out.data[0] = real(acc / pairs);
  const int sid = f_s.id, tid = f_t.id;
  return g.record(out, gs || gt, [=, &g](const Tensor& go) {
    const double s = double(go.data[0]) / pairs;
    std::vector<double> gpsi(size_t(b * b), 0.0);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < b; ++j) {
        if (i == j) continue;
        const double a = ps.mu > 0 ? ps.d.data[i * b + j] / ps.mu : 0.0;
        const double c = pt.mu > 0 ? pt.d.data[i * b + j] / pt.mu : 0.0;
        gpsi[size_t(i * b + j)] = s * huber_grad(a - c);
      }
    if (gs) pair_distances_backward(xs, ps, gpsi, g.grad(sid).data);
    if (gt) {
      for (auto& v : gpsi) v = -v;
      pair_distances_backward(xt, pt, gpsi, g.grad(tid).data);
    }
  }, op);
}

Var rkd_angle_loss(Var f_s, Var f_t) {
  const char* op = "rkd_angle_loss";
  check_rkd(op, f_s, f_t);
  Graph& g = *f_s.g;
  const bool gs = f_s.requires_grad() && grad_mode_enabled(), gt = f_t.requires_grad() && grad_mode_enabled();
  const int64_t b = f_s.shape()[0], ws = f_s.shape()[1], wt = f_t.shape()[1];
  if (b < 3) return zero_loss(g, gs || gt, op);
  const Tensor xs = f_s.value(), xt = f_t.value();
  Tensor es, ns, et, nt;
  unit_vectors(g, xs, es, ns);
  unit_vectors(g, xt, et, nt);
  const double triplets = double(b * (b - 1) * (b - 2));
  // The loss is a scalar, so its gradient is go · (the gradient at go = 1): computed here,
  // anchor by anchor, while the B×B cosine matrices of the anchor are at hand (they are B³
  // in all, too many to keep for the backward pass).
  Tensor cs = g.new_tensor({b, b}), ct = g.new_tensor({b, b}), gm = g.new_tensor({b, b});
  Tensor ge = g.new_tensor({b, std::max(ws, wt)});
  Tensor dxs, dxt;
  if (gs) dxs = g.new_zeros({b, ws});
  if (gt) dxt = g.new_zeros({b, wt});
  double acc = 0;
  for (int64_t j = 0; j < b; ++j) {
    anchor_gram(es, j, cs.data);  // cs[i,k] = cos(i, j, k); row and column j are 0 (e_jj = 0)
    anchor_gram(et, j, ct.data);
    // Every (i, k) in one branch-free sweep; triplets with i = j or k = j have both cosines 0
    // (no loss, no gradient), and the diagonal i = k is taken out afterwards.
    for (int64_t i = 0; i < b; ++i) {
      const real* rs = cs.data + i * b;
      const real* rt = ct.data + i * b;
      real* rg = gm.data + i * b;
      real row = 0;
      for (int64_t k = 0; k < b; ++k) {
        const real d = rs[k] - rt[k], a = std::fabs(d);
        row += a <= 1 ? real(0.5) * d * d : a - real(0.5);
        rg[k] = a <= 1 ? d : (d > 0 ? real(1) : real(-1));
      }
      acc += double(row) - huber(double(rs[i]) - double(rt[i]));
      rg[i] = 0;
    }
    if (!gs && !gt) continue;
    // cos(i,j,k) = <e_ij, e_kj> and G is symmetric, so dL/de_ij = 2 Σ_k G[i,k] e_kj.
    if (gs) {
      gemm(false, false, int(b), int(ws), int(b), real(2 / triplets), gm.data, int(b), es.data + j * b * ws, int(ws), 0, ge.data, int(ws));
      unit_vectors_backward(xs, es, ns, j, ge.data, dxs.data);
    }
    if (gt) {
      gemm(false, false, int(b), int(wt), int(b), real(-2 / triplets), gm.data, int(b), et.data + j * b * wt, int(wt), 0, ge.data, int(wt));
      unit_vectors_backward(xt, et, nt, j, ge.data, dxt.data);
    }
  }
  Tensor out = g.new_tensor({1});
  out.data[0] = real(acc / triplets);
  const int sid = f_s.id, tid = f_t.id;
  return g.record(out, gs || gt, [=, &g](const Tensor& go) {
    const real s = go.data[0];
    if (gs) {
      real* d = g.grad(sid).data;
      for (int64_t i = 0; i < b * ws; ++i) d[i] += s * dxs.data[i];
    }
    if (gt) {
      real* d = g.grad(tid).data;
      for (int64_t i = 0; i < b * wt; ++i) d[i] += s * dxt.data[i];
    }
  }, op);
}

// ---------------------------------------------------------------------------------------
// Binned head

Var hard_kd_loss_binned(Var logits_s, Var logits_t, Var target_probs) {
  const char* op = "hard_kd_loss_binned";
  Graph& g = graph_of(op, {logits_s, logits_t, target_probs});
  check_binned(op, logits_s, logits_t, target_probs);
  const int64_t n = logits_s.shape()[0], k = logits_s.shape()[1];
  // One-hot of the teacher's argmax (first maximum): a constant, no gradient to the teacher.
  Tensor onehot = g.new_zeros({n, k});
  const real* zt = logits_t.data();
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < k; ++c)
      if (zt[i * k + c] > zt[i * k + best]) best = c;
    onehot.data[i * k + best] = 1;
  }
  const Var hard = g.input({n, k}, onehot.data);
  return scale(add(soft_cross_entropy(logits_s, target_probs), soft_cross_entropy(logits_s, hard)), real(0.5));
}

Var soft_kd_loss(Var logits_s, Var logits_t, Var target_probs, real T, real alpha) {
  const char* op = "soft_kd_loss";
  graph_of(op, {logits_s, logits_t, target_probs});
  check_binned(op, logits_s, logits_t, target_probs);
  if (!(T > 0)) fail(op, "temperature must be > 0");
  const Var ce = soft_cross_entropy(logits_s, target_probs);
  const Var kl = kl_div(log_softmax(scale(logits_s, real(1) / T), -1), softmax(scale(logits_t, real(1) / T), -1));
  return add(scale(ce, real(1) - alpha), scale(kl, alpha * T * T));
}

Var dkd_loss(Var logits_s, Var logits_t, Var target_probs, const std::vector<int>& target_bin, real alpha,
             real beta, real T, real warmup_factor) {
  const char* op = "dkd_loss";
  Graph& g = graph_of(op, {logits_s, logits_t, target_probs});
  check_binned(op, logits_s, logits_t, target_probs);
  if (!(T > 0)) fail(op, "temperature must be > 0");
  const int64_t n = logits_s.shape()[0], k = logits_s.shape()[1];
  if (int64_t(target_bin.size()) != n)
    fail(op, "target_bin has " + std::to_string(target_bin.size()) + " entries for logits " + logits_s.shape().str());
  for (int t : target_bin)
    if (t < 0 || t >= k) fail(op, "target bin " + std::to_string(t) + " out of range for logits " + logits_s.shape().str());
  const Var ce = soft_cross_entropy(logits_s, target_probs);
  if (warmup_factor == 0) return ce;

  // Fused TCKD + NCKD. Per row, with u = z/T and t the target bin:
  //   log b = [u_t − lse(u), lse(u_≠t) − lse(u)],  log p̂_k = u_k − lse(u_≠t) (k ≠ t).
  // Excluding the target exactly equals the reference "subtract 1000 from the target logit"
  // (its target term is exp(−1000) = 0) without its failure for logit gaps near 1000·T.
  // Saved per row: log b_S, log b_T (2 each) and lse(u_≠t) for S and T.
  const bool gs = logits_s.requires_grad(), gt = logits_t.requires_grad();
  const Tensor zs = logits_s.value(), zt = logits_t.value();
  Tensor saved = g.new_tensor({n, 6});
  const double inv_t = 1.0 / double(T);
  auto lse = [&](const real* z, int64_t skip) {
    double m = -INFINITY;
    for (int64_t c = 0; c < k; ++c)
      if (c != skip) m = std::max(m, double(z[c]) * inv_t);
    double s = 0;
    for (int64_t c = 0; c < k; ++c)
      if (c != skip) s += std::exp(double(z[c]) * inv_t - m);
    return m + std::log(s);
  };
  double tckd = 0, nckd = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = target_bin[size_t(i)];
    const real* rs = zs.data + i * k;
    const real* rt = zt.data + i * k;
    const double ls = lse(rs, -1), ls_nt = lse(rs, t), lt = lse(rt, -1), lt_nt = lse(rt, t);
    const double bs0 = double(rs[t]) * inv_t - ls, bs1 = ls_nt - ls;  // log b_S
    const double bt0 = double(rt[t]) * inv_t - lt, bt1 = lt_nt - lt;  // log b_T
    tckd += std::exp(bt0) * (bt0 - bs0) + std::exp(bt1) * (bt1 - bs1);
    for (int64_t c = 0; c < k; ++c) {
      if (c == t) continue;
      const double lq_t = double(rt[c]) * inv_t - lt_nt, lq_s = double(rs[c]) * inv_t - ls_nt;
      nckd += std::exp(lq_t) * (lq_t - lq_s);
    }
    real* sv = saved.data + i * 6;
    sv[0] = real(bs0); sv[1] = real(bs1); sv[2] = real(bt0); sv[3] = real(bt1);
    sv[4] = real(ls_nt); sv[5] = real(lt_nt);
  }
  const double w = double(warmup_factor) * double(T) * double(T);
  Tensor out = g.new_tensor({1});
  out.data[0] = real(w * (double(alpha) * tckd + double(beta) * nckd) / double(n));
  const int sid = logits_s.id, tid = logits_t.id;
  const std::vector<int> tb = target_bin;
  const double a = alpha, be = beta;
  const Var kd = g.record(out, gs || gt, [=, &g](const Tensor& go) {
    // d/du then ×1/T for d/dz.
    const double s = double(go.data[0]) * w / double(n) * inv_t;
    real* ds = gs ? g.grad(sid).data : nullptr;
    real* dt = gt ? g.grad(tid).data : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = tb[size_t(i)];
      const real* rs = zs.data + i * k;
      const real* rt = zt.data + i * k;
      const real* sv = saved.data + i * 6;
      const double bs0 = std::exp(double(sv[0])), bs1 = std::exp(double(sv[1]));
      const double bt0 = std::exp(double(sv[2])), bt1 = std::exp(double(sv[3]));
      const double ls_nt = sv[4], lt_nt = sv[5];
      // NCKD = Σ_{c≠t} Q_c (log Q_c − log q_c): d/du_s = q − Q, d/du_t = Q (ρ − NCKD_row).
      double row_kl = 0;
      for (int64_t c = 0; c < k; ++c) {
        if (c == t) continue;
        const double lq_t = double(rt[c]) * inv_t - lt_nt, lq_s = double(rs[c]) * inv_t - ls_nt;
        row_kl += std::exp(lq_t) * (lq_t - lq_s);
      }
      // TCKD: d/du_s = [b_S0 − b_T0 at t; q_c (b_S1 − b_T1) elsewhere];
      // d/du_t = [b_T1 A0 − b_T0 A1 at t; −Q_c (b_T1 A0 − b_T0 A1) elsewhere], A_c = b_Tc log(b_Tc/b_Sc).
      const double a0 = bt0 * (double(sv[2]) - double(sv[0])), a1 = bt1 * (double(sv[3]) - double(sv[1]));
      const double tck_t = bt1 * a0 - bt0 * a1;
      for (int64_t c = 0; c < k; ++c) {
        if (c == t) {
          if (ds) ds[i * k + c] += real(s * a * (bs0 - bt0));
          if (dt) dt[i * k + c] += real(s * a * tck_t);
          continue;
        }
        const double lq_t = double(rt[c]) * inv_t - lt_nt, lq_s = double(rs[c]) * inv_t - ls_nt;
        const double q_t = std::exp(lq_t), q_s = std::exp(lq_s);
        if (ds) ds[i * k + c] += real(s * (a * q_s * (bs1 - bt1) + be * (q_s - q_t)));
        if (dt) dt[i * k + c] += real(s * (-a * q_t * tck_t + be * q_t * ((lq_t - lq_s) - row_kl)));
      }
    }
  }, op);
  return add(ce, kd);
}

// ---------------------------------------------------------------------------------------
// FitNets

Var fitnet_hint_loss(Var f_s_adapted, Var f_t) {
  const char* op = "fitnet_hint_loss";
  graph_of(op, {f_s_adapted, f_t});
  if (f_s_adapted.shape() != f_t.shape())
    fail(op, "adapted student features " + f_s_adapted.shape().str() + " and teacher features " + f_t.shape().str() +
                 " differ (adapt the width with FitNetAdapter, the length with match_time_lengths)");
  return mse_loss(f_s_adapted, f_t);
}

FitNetAdapter::FitNetAdapter(int64_t in_features, int64_t out_features, uint64_t seed)
    : in_(in_features), out_(out_features) {
  if (in_ < 1 || out_ < 1)
    throw ShapeError("FitNetAdapter: widths must be positive, got " + std::to_string(in_) + " -> " + std::to_string(out_));
  weight_ = &add_parameter("weight", {out_, in_});
  bias_ = &add_parameter("bias", {out_});
  init(seed);
}

void FitNetAdapter::init(uint64_t seed) {
  Rng rng(seed);
  init_uniform_fan_in(*weight_, bias_, in_, rng);
}

Var FitNetAdapter::forward(Graph& g, Var f_s) {
  const Shape& s = f_s.shape();
  if (s.ndim < 1 || s[s.ndim - 1] != in_)
    throw ShapeError("FitNetAdapter: input " + s.str() + " must end in the student width " + std::to_string(in_));
  return linear(f_s, g.param(*weight_), g.param(*bias_));
}

Var pool_time_to(Var x, int64_t t_out) {
  const char* op = "pool_time_to";
  graph_of(op, {x});
  if (x.shape().ndim != 3) fail(op, "input must be (N, T, C), got " + x.shape().str());
  const int64_t t = x.shape()[1];
  if (t_out < 1 || t % t_out != 0)
    fail(op, "length " + std::to_string(t) + " of " + x.shape().str() + " is not a multiple of " + std::to_string(t_out));
  if (t == t_out) return x;
  const int r = int(t / t_out);
  return avg_pool1d(x, r, r, false);
}

std::pair<Var, Var> match_time_lengths(Var f_s, Var f_t) {
  const char* op = "match_time_lengths";
  graph_of(op, {f_s, f_t});
  if (f_s.shape().ndim != 3 || f_t.shape().ndim != 3 || f_s.shape()[0] != f_t.shape()[0])
    fail(op, "student " + f_s.shape().str() + " and teacher " + f_t.shape().str() + " must be (N, T, C) with equal N");
  const int64_t ts = f_s.shape()[1], tt = f_t.shape()[1];
  if (ts == tt) return {f_s, f_t};
  if (ts > 0 && tt > ts && tt % ts == 0) return {f_s, pool_time_to(f_t, ts)};
  if (tt > 0 && ts > tt && ts % tt == 0) return {pool_time_to(f_s, tt), f_t};
  fail(op, "lengths of student " + f_s.shape().str() + " and teacher " + f_t.shape().str() +
               " do not divide one another");
}

// ---------------------------------------------------------------------------------------
// Binned-head helpers

std::vector<real> bin_centres(int bins, double lo, double hi) {
  if (bins < 1 || !(hi > lo)) throw std::invalid_argument("bin_centres: need bins >= 1 and hi > lo");
  std::vector<real> c(static_cast<size_t>(bins));
  const double step = (hi - lo) / bins;
  for (int i = 0; i < bins; ++i) c[size_t(i)] = real(lo + (i + 0.5) * step);
  return c;
}

std::vector<real> gaussian_bin_targets(const float* hr, int64_t B, int bins, double lo, double hi, double sigma) {
  if (!(sigma > 0)) throw std::invalid_argument("gaussian_bin_targets: sigma must be > 0");
  const std::vector<real> c = bin_centres(bins, lo, hi);
  std::vector<real> out(size_t(B * bins));
  std::vector<double> e(static_cast<size_t>(bins));
  for (int64_t i = 0; i < B; ++i) {
    const double h = hr[i];
    if (!std::isfinite(h)) throw std::invalid_argument("gaussian_bin_targets: non-finite heart rate");
    // log-domain with the largest exponent subtracted: an HR far outside the bins still
    // normalises (onto the nearest edge) instead of 0/0.
    double m = -INFINITY;
    for (int k = 0; k < bins; ++k) {
      const double d = (double(c[size_t(k)]) - h) / sigma;
      e[size_t(k)] = -0.5 * d * d;
      m = std::max(m, e[size_t(k)]);
    }
    double s = 0;
    for (int k = 0; k < bins; ++k) s += (e[size_t(k)] = std::exp(e[size_t(k)] - m));
    for (int k = 0; k < bins; ++k) out[size_t(i * bins + k)] = real(e[size_t(k)] / s);
  }
  return out;
}

std::vector<int> target_bin_index(const float* hr, int64_t B, int bins, double lo, double hi) {
  if (bins < 1 || !(hi > lo)) throw std::invalid_argument("target_bin_index: need bins >= 1 and hi > lo");
  const double step = (hi - lo) / bins;
  std::vector<int> out(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i) {
    if (std::isnan(double(hr[i]))) throw std::invalid_argument("target_bin_index: NaN heart rate");
    const double f = std::floor((double(hr[i]) - lo) / step);
    out[size_t(i)] = f < 0 ? 0 : f > bins - 1 ? bins - 1 : int(f);
  }
  return out;
}

}  // namespace pulsekd
