#include "models/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "datasets/folds.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d.h"
#include "engine/kernels/pool1d_int.h"
#include "engine/safetensors.h"

namespace pulsekd::models {

namespace k = pulsekd::kernels;
using nlohmann::json;


std::map<std::string, int> default_layer_bits(const std::string& arch) {
  // Teacher, measured on SPC 2015 with the released teacher (docs/MCU.md): int8 LayerNorm or
  // dense outputs cost 0.09 and 0.02 BPM of mean per-window difference, so every tensor stays
  // int16 (the dense layer's int32 bound holds for it: quantize checks it per channel).
  if (arch == "teacher") return {};
  // Measured on SPC 2015 with the released student (docs/MCU.md): every int8 tensor of the
  // three conv blocks costs 0.07-0.2 BPM of mean per-window difference, the modality conv and
  // dense outputs almost nothing. Everything else (input included) is int16 (default_bits).
  return {{"conv4", 8}, {"dense", 8}};
}

// Choose (lo, hi) for a tensor and its quantisation.
static QTensor make_qtensor(double lo, double hi, int bits) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QTensor t;
  t.bits = bits;
  if (bits == 8) {
    double s = (hi - lo) / 255.0;
    if (!(s > 1e-12)) s = 1.0 / 255.0;  // a constant-zero tensor (dead ReLU channels): any scale
    t.scale = float(s);
    double zp = std::round(-128.0 - lo / double(t.scale));
    t.zp = int32_t(std::clamp(zp, -128.0, 127.0));
  } else {
    double m = std::max(-lo, hi);
    double s = m / 32767.0;
    if (!(s > 1e-12)) s = 1.0 / 32767.0;
    t.scale = float(s);
    t.zp = 0;
  }
  return t;
}

// real multiplier m > 0 -> (M in [2^30, 2^31), shift) with m = M * 2^(shift - 31)
static void quantize_multiplier(double m, int32_t& mult, int32_t& shift) {
  if (!(m > 0)) {
    mult = 0;
    shift = 0;
    return;
  }
  int e = 0;
  const double f = std::frexp(m, &e);  // m = f * 2^e, f in [0.5, 1)
  int64_t q = std::llround(f * double(int64_t(1) << 31));
  if (q == (int64_t(1) << 31)) {
    q /= 2;
    ++e;
  }
  if (e < -31) {  // underflow: the output is always the zero point
    mult = 0;
    shift = 0;
    return;
  }
  if (e > 30) throw std::runtime_error("quantize: requantisation multiplier too large (" + std::to_string(m) + ")");
  mult = int32_t(q);
  shift = e;
}

// Second moments H = sum x x^T of a layer's input vectors (in the weights' inner order),
// for error-compensating rounding.
struct Hess {
  int d = 0;
  std::vector<double> h;  // (d, d), upper triangle accumulated
  int64_t n = 0;
  void add(const double* v) {
    if (h.empty()) h.assign(size_t(d) * d, 0.0);
    for (int i = 0; i < d; ++i) {
      if (v[i] == 0) continue;
      const double vi = v[i];
      double* hi = h.data() + size_t(i) * d;
      for (int j = i; j < d; ++j) hi[j] += vi * v[j];
    }
    ++n;
  }
};

// Upper Cholesky factor U of H^-1 (H damped by 1 % of its mean diagonal): H^-1 = U^T U.
static bool hinv_upper(const Hess& H, std::vector<double>& U) {
  const int d = H.d;
  std::vector<double> A(size_t(d) * d);
  double mean_diag = 0;
  for (int i = 0; i < d; ++i) mean_diag += H.h[size_t(i) * d + i];
  mean_diag /= d;
  const double damp = 0.01 * (mean_diag > 0 ? mean_diag : 1.0);
  for (int i = 0; i < d; ++i)
    for (int j = i; j < d; ++j) A[size_t(i) * d + j] = A[size_t(j) * d + i] = H.h[size_t(i) * d + j] + (i == j ? damp : 0.0);
  auto chol = [d](std::vector<double>& M) {  // in place, lower L with M = L L^T
    for (int j = 0; j < d; ++j) {
      double s = M[size_t(j) * d + j];
      for (int kk = 0; kk < j; ++kk) s -= M[size_t(j) * d + kk] * M[size_t(j) * d + kk];
      if (!(s > 0)) return false;
      const double l = std::sqrt(s);
      M[size_t(j) * d + j] = l;
      for (int i = j + 1; i < d; ++i) {
        double t = M[size_t(i) * d + j];
        for (int kk = 0; kk < j; ++kk) t -= M[size_t(i) * d + kk] * M[size_t(j) * d + kk];
        M[size_t(i) * d + j] = t / l;
      }
      for (int i = 0; i < j; ++i) M[size_t(i) * d + j] = 0;
    }
    return true;
  };
  if (!chol(A)) return false;
  // Inverse of L (lower), then H^-1 = L^-T L^-1.
  std::vector<double> Li(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i) {
    Li[size_t(i) * d + i] = 1.0 / A[size_t(i) * d + i];
    for (int j = 0; j < i; ++j) {
      double t = 0;
      for (int kk = j; kk < i; ++kk) t += A[size_t(i) * d + kk] * Li[size_t(kk) * d + j];
      Li[size_t(i) * d + j] = -t / A[size_t(i) * d + i];
    }
  }
  std::vector<double> Hi(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double t = 0;
      for (int kk = std::max(i, j); kk < d; ++kk) t += Li[size_t(kk) * d + i] * Li[size_t(kk) * d + j];
      Hi[size_t(i) * d + j] = t;
    }
  if (!chol(Hi)) return false;
  U.assign(size_t(d) * d, 0.0);  // U = L'^T where Hi = L' L'^T
  for (int i = 0; i < d; ++i)
    for (int j = i; j < d; ++j) U[size_t(i) * d + j] = Hi[size_t(j) * d + i];
  return true;
}

// Per-channel symmetric int8 weights, int32 bias with the input zero point folded in,
// requantisation to `out` (or raw accumulator when out.bits == 32). With H, the weights of
// each channel are rounded one by one and the rounding error of each is compensated on the
// ones not yet rounded, minimising the channel's output error on the calibration inputs
// (GPTQ, Frantar et al. 2023); the per-channel scale stays max|w| / 127.
// out_scales (c_out), if given, replaces L.out.scale per channel (the attention's in-projection
// writes q, k and v at three scales).
static void quantize_weights(QLayer& L, const std::vector<float>& w_in /*(c_out, per_co)*/,
                             const std::vector<float>& b /*(c_out)*/, const Hess* H = nullptr,
                             const std::vector<double>* out_scales = nullptr) {
  const int co_n = L.c_out;
  const size_t per = w_in.size() / size_t(co_n);
  std::vector<float> w(w_in);
  std::vector<double> U;
  const bool gptq = H && H->n > 0 && H->d == int(per) && hinv_upper(*H, U);
  if (gptq) {
    for (int co = 0; co < co_n; ++co) {
      float mx = 0;
      for (size_t i = 0; i < per; ++i) mx = std::max(mx, std::fabs(w[co * per + i]));
      if (!(mx > 0)) continue;
      const double sw = double(mx) / 127.0;
      std::vector<double> r(w.begin() + long(co * per), w.begin() + long((co + 1) * per));
      for (size_t i = 0; i < per; ++i) {
        const double qv = std::clamp(std::round(r[i] / sw), -127.0, 127.0) * sw;
        const double err = (r[i] - qv) / U[i * per + i];
        for (size_t j = i + 1; j < per; ++j) r[j] -= err * U[i * per + j];
        r[i] = qv;
      }
      for (size_t i = 0; i < per; ++i) w[co * per + i] = float(r[i]);
    }
  }
  L.w.assign(w.size(), 0);
  L.bias.assign(size_t(co_n), 0);
  L.w_scale.assign(size_t(co_n), 1.f);
  L.mult.clear();
  L.shift.clear();
  for (int co = 0; co < co_n; ++co) {
    float mx = 0;
    for (size_t i = 0; i < per; ++i) mx = std::max(mx, std::fabs(w_in[co * per + i]));
    const float sw = mx > 0 ? mx / 127.f : 1.f;
    L.w_scale[co] = sw;
    int64_t wsum = 0, wabs = 0;
    for (size_t i = 0; i < per; ++i) {
      const long q = std::lround(double(w[co * per + i]) / double(sw));
      L.w[co * per + i] = int8_t(std::clamp<long>(q, -127, 127));
      wsum += L.w[co * per + i];
      wabs += std::abs(int(L.w[co * per + i]));
    }
    const double sb = double(L.in.scale) * double(sw);
    const double bq = std::round(double(b[size_t(co)]) / sb);
    double folded = bq - double(L.in.zp) * double(wsum);
    // Overflow bound (fixed_point.h): every partial sum is bounded by
    // |folded bias| + sum_i |x_i||w_i| with |x_i| <= 2^(bits-1). A bias beyond what keeps the
    // bound (a channel whose bias dwarfs any input contribution, by 2^7 at least) is saturated
    // there; its output is then pinned to the same clamp in practice. Counted in bias_saturated.
    const double room = 2147483647.0 - double(wabs) * double(int64_t(1) << (L.in.bits - 1)) - 1.0;
    if (room < double(int64_t(1) << 24))
      throw std::runtime_error("quantize: layer " + L.name + " channel " + std::to_string(co) +
                               " could overflow its int32 accumulator (sum |w| = " + std::to_string(wabs) +
                               "); quantise its input tensor to int8 (--bits NAME=8)");
    if (std::fabs(folded) > room) {
      folded = folded > 0 ? room : -room;
      ++L.bias_saturated;
    }
    L.bias[co] = int32_t(folded);
    if (!L.raw_output()) {
      int32_t M, s;
      quantize_multiplier(sb / (out_scales ? (*out_scales)[size_t(co)] : double(L.out.scale)), M, s);
      L.mult.push_back(M);
      L.shift.push_back(s);
    }
  }
  if (L.raw_output()) {
    L.act_min = INT32_MIN;
    L.act_max = INT32_MAX;
  } else {
    L.act_min = L.relu ? std::max(L.out.zp, L.out.qmin()) : L.out.qmin();
    L.act_max = L.out.qmax();
  }
}

// ---------------------------------------------------------------------------------------
// Float forward through the reference loops (student and teacher), with an observer per
// quantisation point.

namespace {

constexpr float kLayerNormEps = 1e-5f;  // nn.LayerNorm's default, as engine/ops.h layer_norm

struct PulseGeom {
  struct Conv {
    std::string name;
    int c_in, c_out, kernel, dilation, pad, t_in;
  };
  bool teacher = false;
  std::vector<Conv> convs;       // in order
  std::vector<int> block_end;    // index of the last conv of each block
  std::vector<int> pools;
  std::vector<int> pool_t_in;
  int c3 = 0, t_final = 0, dense = 0;
  int heads = 4;                 // teacher: attention heads (PULSE.md section 2)
};

Parameter& param(PulseModel& m, const std::string& name) {
  Parameter* p = m.find(name);
  if (!p) throw std::runtime_error("quantize: model has no parameter '" + name + "'");
  return *p;
}

// The row-shared convolution stack of the student or the teacher (PULSE.md sections 2, 3).
PulseGeom pulse_geom(PulseModel& m) {
  const ModelConfig& cfg = m.config();
  if (cfg.arch != "student" && cfg.arch != "teacher")
    throw std::runtime_error("quantize: only the PULSE student and teacher are supported (got arch '" + cfg.arch + "')");
  if (cfg.head != "regression") throw std::runtime_error("quantize: only the regression head is supported");
  PulseGeom g;
  g.teacher = cfg.arch == "teacher";
  const std::vector<int> dil = g.teacher ? std::vector<int>{2, 2, 2} : std::vector<int>{2, 3, 4};
  g.pools = g.teacher ? std::vector<int>{4, 2, 2} : std::vector<int>{4, 4, 2};
  const std::vector<int> ch = m.block_channels();
  int c_in = 1, t = 256;
  for (int b = 0; b < 3; ++b) {
    for (int i = 0; i < cfg.convs_per_block; ++i) {
      const std::string name = "conv" + std::to_string(b + 1) + std::to_string(i + 1);
      Parameter& w = param(m, name + ".weight");  // (c_out, K, c_in)
      const int K = int(w.shape[1]);
      g.convs.push_back({name, c_in, ch[size_t(b)], K, dil[size_t(b)], dil[size_t(b)] * (K - 1) / 2, t});
      c_in = ch[size_t(b)];
    }
    g.block_end.push_back(int(g.convs.size()) - 1);
    g.pool_t_in.push_back(t);
    t = (t + g.pools[size_t(b)] - 1) / g.pools[size_t(b)];
  }
  g.c3 = ch[2];
  g.t_final = t;
  g.dense = cfg.dense;
  if (g.teacher && (g.t_final % g.heads != 0 || (4 - 1) * g.c3 > kernels::kSoftmaxMaxKeys))
    throw std::runtime_error("quantize: teacher attention needs the embedding (" + std::to_string(g.t_final) +
                             ") divisible by 4 heads and at most " + std::to_string(kernels::kSoftmaxMaxKeys) + " keys");
  return g;
}

std::vector<float> to_f(const std::vector<real>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<float> param_f(PulseModel& m, const std::string& name) { return to_f(param(m, name).value); }

// Dense weights (dense, C*T) in PyTorch's c*T + t flatten order -> (dense, T*C) in the
// channels-last t*C + c order the integer model keeps (a permutation: exact in integers).
std::vector<float> dense_to_tc(const std::vector<float>& w, int dense, int c, int t) {
  std::vector<float> o(w.size());
  for (int d = 0; d < dense; ++d)
    for (int ci = 0; ci < c; ++ci)
      for (int ti = 0; ti < t; ++ti) o[size_t(d) * c * t + size_t(ti) * c + ci] = w[size_t(d) * c * t + size_t(ci) * t + ti];
  return o;
}

using FloatA = k::ArithFloat<float>;

// The per-row convolutions and poolings of one window x (4, 256) -> rows (4, t_final, c3).
// obs(name, data, count) is called with each quantisation point's float values ("in:NAME":
// the inputs of weighted layers, for the error-compensating rounding).
template <class Obs>
std::vector<float> rows_forward_f32(PulseModel& m, const PulseGeom& g, const float* x, Obs&& obs) {
  const FloatA::quant nq{};
  std::vector<float> rowsout(size_t(4) * g.t_final * g.c3);  // (4, t_final, c3)
  std::vector<float> a, b;
  obs("input", x, size_t(4 * 256));
  for (int r = 0; r < 4; ++r) {
    a.assign(x + r * 256, x + (r + 1) * 256);
    int t = 256;
    size_t ci = 0;
    for (int blk = 0; blk < 3; ++blk) {
      for (; ci <= size_t(g.block_end[size_t(blk)]); ++ci) {
        const auto& c = g.convs[ci];
        const std::vector<float> w = param_f(m, c.name + ".weight"), bb = param_f(m, c.name + ".bias");
        k::conv1d_params p{c.c_in, c.c_out, c.kernel, 1, c.pad, c.dilation, 1};
        const int to = k::conv1d_out_len(t, p);
        b.assign(size_t(to) * c.c_out, 0.f);
        obs("in:" + c.name, a.data(), a.size());
        k::conv1d_fwd_ref<FloatA>(b.data(), a.data(), w.data(), bb.data(), t, p, nq);
        for (auto& v : b) v = v > 0 ? v : 0.f;
        obs(c.name, b.data(), b.size());
        std::swap(a, b);
        t = to;
      }
      const int c = g.convs[ci - 1].c_out;
      k::pool1d_params pp{g.pools[size_t(blk)], g.pools[size_t(blk)], 1};
      const int to = k::pool1d_out_len(t, pp);
      b.assign(size_t(to) * c, 0.f);
      k::avgpool1d_fwd_ref<float>(b.data(), a.data(), t, c, pp);
      std::swap(a, b);
      t = to;
    }
    std::copy(a.begin(), a.end(), rowsout.begin() + long(r) * g.t_final * g.c3);
  }
  return rowsout;
}

// dense (flat -> dense32) and out (dense32 -> 1): the heads both models share.
template <class Obs>
float dense_out_f32(PulseModel& m, const PulseGeom& g, const std::vector<float>& flat, const std::vector<float>& wd, Obs& obs) {
  const FloatA::quant nq{};
  const std::vector<float> bd = param_f(m, "dense.bias");
  std::vector<float> d(size_t(g.dense));
  obs("in:dense", flat.data(), flat.size());
  k::linear_fwd_ref<FloatA>(d.data(), flat.data(), wd.data(), bd.data(), 1, int32_t(flat.size()), g.dense, nq);
  obs("dense", d.data(), d.size());
  const std::vector<float> wo = param_f(m, "out.weight"), bo = param_f(m, "out.bias");
  float hr = 0;
  obs("in:out", d.data(), d.size());
  k::linear_fwd_ref<FloatA>(&hr, d.data(), wo.data(), bo.data(), 1, g.dense, 1, nq);
  return hr;
}

template <class Obs>
float student_forward_f32(PulseModel& m, const PulseGeom& g, const float* x /*(4,256)*/, Obs&& obs) {
  const FloatA::quant nq{};
  const std::vector<float> rowsout = rows_forward_f32(m, g, x, obs);
  const std::vector<float> w4 = param_f(m, "conv4.weight"), b4 = param_f(m, "conv4.bias");
  std::vector<float> fused(size_t(g.t_final) * g.c3);  // (t_final, c3)
  obs("in:conv4", rowsout.data(), rowsout.size());
  k::modality_conv_fwd_ref<FloatA>(fused.data(), rowsout.data(), w4.data(), b4.data(), k::modality_conv_params{4, g.t_final, g.c3, g.c3}, nq);
  obs("conv4", fused.data(), fused.size());
  return dense_out_f32(m, g, fused, dense_to_tc(param_f(m, "dense.weight"), g.dense, g.c3, g.t_final), obs);
}

// Teacher after the rows: cross-attention (query: the c3 channel-tokens of the PPG row; key =
// value: the 3 c3 tokens of the ACC rows; embedding = t_final), LayerNorm per token, flatten
// token-major (c * E + e, PyTorch's order, so dense keeps its own weight layout), dense, out.
template <class Obs>
float teacher_forward_f32(PulseModel& m, const PulseGeom& g, const float* x /*(4,256)*/, Obs&& obs) {
  const FloatA::quant nq{};
  const std::vector<float> rowsout = rows_forward_f32(m, g, x, obs);
  const int e = g.t_final, lq = g.c3, lk = 3 * g.c3;
  const std::vector<float> w_in = param_f(m, "multihead_attn.in_proj_weight"), b_in = param_f(m, "multihead_attn.in_proj_bias");
  std::vector<float> qkv(size_t(lq) * e + size_t(lk) * 2 * e);  // q (lq, e), then kv (lk, 2e): k | v per key token
  k::attn_in_proj_fwd_ref<FloatA>(qkv.data(), rowsout.data(), w_in.data(), b_in.data(), 4, g.t_final, g.c3, nq);
  const float* q = qkv.data();
  const float* kv = qkv.data() + size_t(lq) * e;
  {  // the in-projection's input tokens (c3 of row 0, 3 c3 of rows 1-3), for GPTQ
    std::vector<float> tokens(size_t(4) * g.c3 * e);  // (4 c3, e)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < g.c3; ++c)
        for (int t = 0; t < e; ++t) tokens[(size_t(r) * g.c3 + c) * e + t] = rowsout[(size_t(r) * e + t) * g.c3 + c];
    obs("in:tokens:attn_q", tokens.data(), size_t(lq) * e);
    obs("in:tokens:attn_kv", tokens.data() + size_t(lq) * e, size_t(lk) * e);
  }
  obs("q", q, size_t(lq) * e);
  std::vector<float> part(size_t(lk) * e);  // k, then v, gathered for their statistics
  for (int half = 0; half < 2; ++half) {
    for (int i = 0; i < lk; ++i)
      std::copy(kv + size_t(i) * 2 * e + half * e, kv + size_t(i) * 2 * e + (half + 1) * e, part.begin() + long(i) * e);
    obs(half == 0 ? "k" : "v", part.data(), part.size());
  }
  std::vector<float> ctx(size_t(lq) * e), scratch(static_cast<size_t>(lk)), att(size_t(lq) * e), ln(size_t(lq) * e);  // (lq, e) each
  k::attention_fwd_ref<float>(ctx.data(), q, kv, scratch.data(), lq, lk, e, g.heads);
  obs("attention", ctx.data(), ctx.size());
  obs("in:tokens:attn_out_proj", ctx.data(), ctx.size());
  const std::vector<float> w_o = param_f(m, "multihead_attn.out_proj.weight"), b_o = param_f(m, "multihead_attn.out_proj.bias");
  k::linear_fwd_ref<FloatA>(att.data(), ctx.data(), w_o.data(), b_o.data(), lq, e, e, nq);
  obs("attn_out_proj", att.data(), att.size());
  const std::vector<float> gam = param_f(m, "layer_norm.weight"), bet = param_f(m, "layer_norm.bias");
  k::layernorm_fwd_ref<float>(ln.data(), nullptr, nullptr, att.data(), gam.data(), bet.data(), size_t(lq), e, kLayerNormEps);
  obs("layer_norm", ln.data(), ln.size());
  return dense_out_f32(m, g, ln, param_f(m, "dense.weight"), obs);
}

template <class Obs>
float pulse_forward_f32(PulseModel& m, const PulseGeom& g, const float* x, Obs&& obs) {
  return g.teacher ? teacher_forward_f32(m, g, x, obs) : student_forward_f32(m, g, x, obs);
}

struct Stat {
  double lo = 1e300, hi = -1e300;
  std::vector<float> sample;
  uint64_t seen = 0;
  void add(const float* v, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      lo = std::min(lo, double(v[i]));
      hi = std::max(hi, double(v[i]));
      if ((seen++ % 7) == 0) sample.push_back(v[i]);
    }
  }
  void range(const std::string& calib, double pct, double& l, double& h) {
    if (calib == "minmax" || sample.empty()) {
      l = lo;
      h = hi;
      return;
    }
    std::sort(sample.begin(), sample.end());
    const double f = (100.0 - pct) / 100.0;
    const size_t n = sample.size();
    const size_t il = size_t(std::floor(f * double(n - 1)));
    const size_t ih = size_t(std::ceil((1.0 - f) * double(n - 1)));
    l = sample[il];
    h = sample[std::min(ih, n - 1)];
  }
};

}  // namespace

std::vector<float> predict_float_ref(PulseModel& m, const float* x, int64_t n) {
  const PulseGeom g = pulse_geom(m);
  std::vector<float> hr(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    hr[size_t(i)] = pulse_forward_f32(m, g, x + i * 1024, [](const std::string&, const float*, size_t) {});
  return hr;
}

// The teacher's layers between the rows and dense (docs/MCU.md, "Teacher"): attn_in_proj (q, k,
// v int32 clamped to +-kQkvMax, 24 bits: attention.h), attention (integer softmax, int16 ctx),
// attn_out_proj (per-token linear) and layer_norm (integer), both at the bits of opt (int16 by
// default). Returns the LayerNorm output's quantisation. stats: float ranges by name; qt: a
// tensor's quantisation by name; H_of: a layer's GPTQ input statistics by name (nullptr: round
// to nearest). GPTQ on the projections: per-window |d| 0.242 -> 0.184 BPM on SPC 2015.
constexpr int32_t kQkvMax = (1 << 23) - 1;

template <class QtOf, class HOf>
static QTensor quantize_teacher_attention(QuantModel& q, PulseModel& m, const PulseGeom& g, QTensor cur,
                                          std::map<std::string, Stat>& stats, QtOf&& qt, HOf&& H_of) {
  const int e = g.t_final;
  auto sym_scale = [&](const std::string& name, double qmax) {  // symmetric min/max scale
    const double mx = std::max(std::fabs(stats[name].lo), std::fabs(stats[name].hi));
    return mx > 1e-12 ? mx / qmax : 1.0 / qmax;
  };
  const double s_q = sym_scale("q", kQkvMax), s_k = sym_scale("k", kQkvMax), s_v = sym_scale("v", kQkvMax);
  QLayer P;
  P.name = "attn_in_proj";
  P.op = QOp::AttnInProj;
  P.rows = 4;
  P.t_in = e;
  P.c_in = g.c3;
  P.c_out = 3 * e;
  P.in = cur;
  P.out = {32, float(s_q), 0};  // nominal: channels [e, 2e) are at s_k, [2e, 3e) at s_v
  // q's weights see the PPG tokens, k's and v's the ACC tokens: rounded (GPTQ) against their own
  // inputs, as two parts [0, e) and [e, 3e) of the packed weights
  const std::vector<float> w_in = param_f(m, "multihead_attn.in_proj_weight"), b_in = param_f(m, "multihead_attn.in_proj_bias");
  for (int part = 0; part < 2; ++part) {
    const int co0 = part == 0 ? 0 : e, n_co = part == 0 ? e : 2 * e;
    QLayer Pp = P;
    Pp.c_out = n_co;
    std::vector<double> part_scale(static_cast<size_t>(n_co));
    for (int co = 0; co < n_co; ++co) part_scale[size_t(co)] = co0 + co < e ? s_q : co0 + co < 2 * e ? s_k : s_v;
    quantize_weights(Pp, std::vector<float>(w_in.begin() + long(co0) * e, w_in.begin() + long(co0 + n_co) * e),
                     std::vector<float>(b_in.begin() + co0, b_in.begin() + co0 + n_co), H_of(part == 0 ? "tokens:attn_q" : "tokens:attn_kv"),
                     &part_scale);
    P.w.insert(P.w.end(), Pp.w.begin(), Pp.w.end());
    P.bias.insert(P.bias.end(), Pp.bias.begin(), Pp.bias.end());
    P.w_scale.insert(P.w_scale.end(), Pp.w_scale.begin(), Pp.w_scale.end());
    P.mult.insert(P.mult.end(), Pp.mult.begin(), Pp.mult.end());
    P.shift.insert(P.shift.end(), Pp.shift.begin(), Pp.shift.end());
    P.bias_saturated += Pp.bias_saturated;
  }
  P.act_min = -kQkvMax;
  P.act_max = kQkvMax;
  q.layers.push_back(P);

  QLayer A;
  A.name = "attention";
  A.op = QOp::Attention;
  A.rows = 4;
  A.t_in = g.c3;
  A.c_in = A.c_out = e;
  A.heads = g.heads;
  A.in = P.out;
  const double s_ctx = sym_scale("attention", 32767);
  A.out = {16, float(s_ctx), 0};
  A.act_min = A.out.qmin();
  A.act_max = A.out.qmax();
  int32_t mm, sh;
  // score difference (units 2^kScoreShift s_q s_k) -> base-2 exponent in Q16, 1/sqrt(dh) folded in
  const double dh = double(e / g.heads);
  if (e / g.heads > 4) throw std::runtime_error("quantize: attention head dim above 4 needs a smaller q/k clamp (not implemented)");
  quantize_multiplier(std::ldexp(s_q * s_k, k::kScoreShift) / std::sqrt(dh) / std::log(2.0) * double(1 << k::kExp2Frac), mm, sh);
  A.mult.push_back(mm);
  A.shift.push_back(sh);
  quantize_multiplier(std::ldexp(s_v, k::kPvShift - k::kProbBits) / s_ctx, mm, sh);  // P (Q15) . V >> kPvShift -> ctx
  A.mult.push_back(mm);
  A.shift.push_back(sh);
  q.layers.push_back(A);

  // per-token layers on the (c3 tokens, e) attention output
  auto token_layer = [&](const char* name, QOp op, const QTensor& in) {
    QLayer L;
    L.name = name;
    L.op = op;
    L.t_in = g.c3;
    L.c_in = L.c_out = e;
    L.in = in;
    return L;
  };
  QLayer O = token_layer("attn_out_proj", QOp::Linear, A.out);
  O.out = qt("attn_out_proj");
  quantize_weights(O, param_f(m, "multihead_attn.out_proj.weight"), param_f(m, "multihead_attn.out_proj.bias"), H_of("tokens:attn_out_proj"));
  q.layers.push_back(O);

  // gamma/beta act on z = normalised / sqrt(e) in Q15 (attention.h): quantised as a
  // one-tap-per-channel layer whose input scale is sqrt(e) 2^-15 (|gamma| / 127 per channel
  // makes every gamma exactly +-127); then the layer's real input goes back in.
  QLayer N = token_layer("layer_norm", QOp::LayerNorm, {16, float(std::sqrt(double(e)) / double(1 << k::kLayerNormZBits)), 0});
  N.out = qt("layer_norm");
  quantize_weights(N, param_f(m, "layer_norm.weight"), param_f(m, "layer_norm.bias"));
  N.in = O.out;
  const double s_a = double(O.out.scale);
  const double eps_q = std::round(double(e) * e * e * double(kLayerNormEps) / (s_a * s_a));
  N.norm_eps = int64_t(std::clamp(eps_q, 1.0, std::ldexp(1.0, 62)));
  q.layers.push_back(N);
  return N.out;
}

QuantModel quantize_model(PulseModel& m, const RowNorm& norm, const float* calib, int64_t n,
                          const QuantOptions& opt, const std::string& source) {
  if (opt.calib != "minmax" && opt.calib != "percentile")
    throw std::runtime_error("--calib must be 'minmax' or 'percentile', got '" + opt.calib + "'");
  if (n < 1) throw std::runtime_error("quantize: no calibration windows");
  const PulseGeom g = pulse_geom(m);
  for (const char* fixed : {"attn_in_proj", "attention"})
    if (g.teacher && opt.bits.count(fixed))
      throw std::runtime_error(std::string("quantize: '") + fixed +
                               "' has fixed bits (q/k/v int32 with a 24-bit clamp, the attention output int16: docs/MCU.md); "
                               "remove it from --bits");
  std::map<std::string, Stat> stats;
  std::map<std::string, Hess> hess;
  std::map<std::string, const PulseGeom::Conv*> conv_of;
  for (auto& c : g.convs) conv_of[c.name] = &c;
  std::vector<double> v;
  // Input vectors of each weighted layer, in the order of its weights' inner dimension.
  auto add_inputs = [&](const std::string& name, const float* x, size_t count) {
    Hess& H = hess[name];
    auto it = conv_of.find(name);
    if (it != conv_of.end()) {  // conv: (t, c_in) -> vectors (K, c_in) per output step
      const auto& c = *it->second;
      const int t_in = int(count / size_t(c.c_in));
      H.d = c.kernel * c.c_in;
      v.assign(size_t(H.d), 0.0);
      const int t_out = k::conv1d_out_len(t_in, k::conv1d_params{c.c_in, c.c_out, c.kernel, 1, c.pad, c.dilation, 1});
      for (int t = 0; t < t_out; ++t) {
        for (int kk = 0; kk < c.kernel; ++kk) {
          const int ti = t - c.pad + kk * c.dilation;
          for (int ci = 0; ci < c.c_in; ++ci)
            v[size_t(kk) * c.c_in + ci] = (ti < 0 || ti >= t_in) ? 0.0 : x[size_t(ti) * c.c_in + ci];
        }
        H.add(v.data());
      }
    } else if (name == "conv4") {  // (rows, t, c) -> vectors (rows, c) per step
      const int t = g.t_final, c = g.c3;
      H.d = 4 * c;
      v.assign(size_t(H.d), 0.0);
      for (int ti = 0; ti < t; ++ti) {
        for (int r = 0; r < 4; ++r)
          for (int ci = 0; ci < c; ++ci) v[size_t(r) * c + ci] = x[(size_t(r) * t + ti) * c + ci];
        H.add(v.data());
      }
    } else if (name.rfind("tokens:", 0) == 0) {  // teacher: (tokens, e) -> one vector per token
      H.d = g.t_final;
      for (size_t i = 0; i + size_t(H.d) <= count; i += size_t(H.d)) {
        v.assign(x + i, x + i + size_t(H.d));
        H.add(v.data());
      }
    } else {  // linear: one vector
      H.d = int(count);
      v.assign(x, x + count);
      H.add(v.data());
    }
  };
  // Subsample windows so calibration stays a few seconds: at most 2048 windows, evenly
  // spread; the error-compensating rounding uses at most 512 of them.
  const int64_t step = std::max<int64_t>(1, n / 2048);
  int64_t seen = 0;
  for (int64_t i = 0; i < n; i += step, ++seen) {
    const bool use_h = opt.gptq && (seen % std::max<int64_t>(1, (n / step) / 512) == 0);
    pulse_forward_f32(m, g, calib + i * 1024, [&](const std::string& name, const float* x, size_t c) {
      if (name.rfind("in:", 0) == 0) {
        if (use_h) add_inputs(name.substr(3), x, c);
      } else {
        stats[name].add(x, c);
      }
    });
  }
  auto H_of = [&](const std::string& name) -> const Hess* {
    auto it = hess.find(name);
    return it == hess.end() ? nullptr : &it->second;
  };

  auto bits_of = [&](const std::string& name) {
    auto it = opt.bits.find(name);
    const int b = it == opt.bits.end() ? opt.default_bits : it->second;
    if (b != 8 && b != 16) throw std::runtime_error("quantize: bits for '" + name + "' must be 8 or 16");
    return b;
  };
  auto qt = [&](const std::string& name) {
    double lo, hi;
    // Clipping outliers buys resolution only at 8 bits; int16 tensors always take min/max.
    const int b = bits_of(name);
    stats[name].range(b == 8 ? opt.calib : "minmax", opt.percentile, lo, hi);
    return make_qtensor(lo, hi, b);
  };

  QuantModel q;
  q.arch = g.teacher ? "teacher" : "student";
  q.calib = opt.calib;
  q.source = source;
  q.norm = norm;
  q.input = qt("input");
  QTensor cur = q.input;
  int t = 256;
  size_t ci = 0;
  for (int blk = 0; blk < 3; ++blk) {
    for (; ci <= size_t(g.block_end[size_t(blk)]); ++ci) {
      const auto& c = g.convs[ci];
      QLayer L;
      L.name = c.name;
      L.op = QOp::Conv;
      L.c_in = c.c_in;
      L.c_out = c.c_out;
      L.kernel = c.kernel;
      L.dilation = c.dilation;
      L.pad = c.pad;
      L.t_in = t;
      L.relu = true;
      L.in = cur;
      L.out = qt(c.name);
      quantize_weights(L, to_f(param(m, c.name + ".weight").value), to_f(param(m, c.name + ".bias").value), H_of(c.name));
      cur = L.out;
      t = L.t_out();
      q.layers.push_back(std::move(L));
    }
    QLayer P;
    P.name = "pool" + std::to_string(blk + 1);
    P.op = QOp::AvgPool;
    P.c_in = P.c_out = g.convs[ci - 1].c_out;
    P.pool = P.kernel = g.pools[size_t(blk)];
    P.t_in = t;
    P.in = P.out = cur;
    P.act_min = cur.qmin();
    P.act_max = cur.qmax();
    t = P.t_out();
    q.layers.push_back(std::move(P));
  }
  q.row_layers = int(q.layers.size());
  if (g.teacher) {
    cur = quantize_teacher_attention(q, m, g, cur, stats, qt, H_of);
  } else {
    QLayer L;
    L.name = "conv4";
    L.op = QOp::ModalityConv;
    L.rows = 4;
    L.c_in = L.c_out = g.c3;
    L.t_in = t;
    L.in = cur;
    L.out = qt("conv4");
    quantize_weights(L, to_f(param(m, "conv4.weight").value), to_f(param(m, "conv4.bias").value), H_of("conv4"));
    cur = L.out;
    q.layers.push_back(std::move(L));
  }
  {
    QLayer L;
    L.name = "dense";
    L.op = QOp::Linear;
    L.c_in = g.t_final * g.c3;
    L.c_out = g.dense;
    L.in = cur;
    L.out = qt("dense");
    // the student's fused map is channels-last (t, c): permute PyTorch's c*T + t weights; the
    // teacher's LayerNorm output is token-major (c, e) as PyTorch flattens it already
    const std::vector<float> wd = param_f(m, "dense.weight");
    quantize_weights(L, g.teacher ? wd : dense_to_tc(wd, g.dense, g.c3, g.t_final), param_f(m, "dense.bias"), H_of("dense"));
    cur = L.out;
    q.layers.push_back(std::move(L));
  }
  {
    QLayer L;
    L.name = "out";
    L.op = QOp::Linear;
    L.c_in = g.dense;
    L.c_out = 1;
    L.in = cur;
    L.out.bits = 32;
    L.out.scale = 1.f;
    quantize_weights(L, to_f(param(m, "out.weight").value), to_f(param(m, "out.bias").value), H_of("out"));
    q.out_scale = float(double(L.in.scale) * double(L.w_scale[0]));
    L.out.scale = q.out_scale;
    q.layers.push_back(std::move(L));
  }
  return q;
}

std::vector<float> normalised_windows(const data::WindowSet& ws, const RowNorm& norm) {
  std::vector<float> x(ws.x);
  if (norm.present) {
    norm.apply(x.data(), ws.size());
    return x;
  }
  for (size_t s = 0; s < ws.subjects.size(); ++s) {
    const std::vector<int64_t> idx = data::windows_of(ws, {int(s)});
    if (idx.empty()) continue;
    const data::Normalizer nz = data::Normalizer::fit(ws, idx);
    nz.apply(x.data() + ws.subjects[s].first_window * 1024, ws.subjects[s].num_windows);
  }
  return x;
}

}  // namespace pulsekd::models
