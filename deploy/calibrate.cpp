// Post-training quantisation of a PULSE student or teacher: calibration of the activation ranges
// on normalised windows through the float reference forward (deploy/float_reference.h), then
// per-layer weights (deploy/gptq.h). Scheme and per-layer choices: docs/MCU.md.
#include "deploy/calibrate.h"

#include "datasets/dataset.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "datasets/folds.h"
#include "deploy/float_reference.h"
#include "deploy/gptq.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"

namespace pulsekd::deploy {

namespace k = pulsekd::kernels;
using models::PulseModel;

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

namespace {

// Range of one quantisation point's float values: min/max, and a sample for percentiles.
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

// The teacher's layers between the rows and dense (docs/MCU.md, "Teacher"): attn_in_proj (q, k,
// v int32 clamped to +-kQkvMax, 24 bits: attention.h), attention (integer softmax, int16 ctx),
// attn_out_proj (per-token linear) and layer_norm (integer), both at the bits of opt (int16 by
// default). Returns the LayerNorm output's quantisation. stats: float ranges by name; qt: a
// tensor's quantisation by name; H_of: a layer's GPTQ input statistics by name (nullptr: round
// to nearest). GPTQ on the projections: per-window |d| 0.242 -> 0.184 BPM on SPC 2015.
constexpr int32_t kQkvMax = (1 << 23) - 1;

template <class QtOf, class HOf>
static QTensor quantize_teacher_attention(QuantModel& q, PulseModel& m, const models::PulsePlan& g, QTensor cur,
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
  P.rows = g.rows;
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
  A.rows = g.rows;
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

// Activation ranges by quantisation point and GPTQ input statistics by weighted layer.
struct Calibration {
  std::map<std::string, Stat> stats;
  std::map<std::string, Hess> hess;
};

// Runs the float reference forward over (a subsample of) the calibration windows (n, 4, 256).
static Calibration observe(PulseModel& m, const models::PulsePlan& g, const float* calib, int64_t n, bool gptq) {
  Calibration cal;
  std::map<std::string, const models::PulsePlan::Conv*> conv_of;
  for (auto& c : g.convs) conv_of[c.name] = &c;
  std::vector<double> v;
  // Input vectors of each weighted layer, in the order of its weights' inner dimension.
  auto add_inputs = [&](const std::string& name, const float* x, size_t count) {
    Hess& H = cal.hess[name];
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
      H.d = g.rows * c;
      v.assign(size_t(H.d), 0.0);
      for (int ti = 0; ti < t; ++ti) {
        for (int r = 0; r < g.rows; ++r)
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
    const bool use_h = gptq && (seen % std::max<int64_t>(1, (n / step) / 512) == 0);
    pulse_forward_f32(m, g, calib + i * data::kWindowValues, [&](const std::string& name, const float* x, size_t c) {
      if (name.rfind("in:", 0) == 0) {
        if (use_h) add_inputs(name.substr(3), x, c);
      } else {
        cal.stats[name].add(x, c);
      }
    });
  }
  return cal;
}

// The output layer (dense -> 1): the raw int32 accumulator, heart rate = out.scale * output.
static QLayer output_layer(PulseModel& m, const models::PulsePlan& g, const QTensor& in, const Hess* H) {
  QLayer L;
  L.name = "out";
  L.op = QOp::Linear;
  L.c_in = g.dense;
  L.c_out = 1;
  L.in = in;
  L.out.bits = 32;
  L.out.scale = 1.f;
  quantize_weights(L, to_f(param(m, "out.weight").value), to_f(param(m, "out.bias").value), H);
  L.out.scale = float(double(L.in.scale) * double(L.w_scale[0]));
  return L;
}

QuantModel quantize_model(PulseModel& m, const RowNorm& norm, const float* calib, int64_t n,
                          const QuantOptions& opt, const std::string& source) {
  if (opt.calib != "minmax" && opt.calib != "percentile")
    throw std::runtime_error("--calib must be 'minmax' or 'percentile', got '" + opt.calib + "'");
  if (n < 1) throw std::runtime_error("quantize: no calibration windows");
  const models::PulsePlan& g = quantizable_plan(m);
  for (const char* fixed : {"attn_in_proj", "attention"})
    if (g.teacher && opt.bits.count(fixed))
      throw std::runtime_error(std::string("quantize: '") + fixed +
                               "' has fixed bits (q/k/v int32 with a 24-bit clamp, the attention output int16: docs/MCU.md); "
                               "remove it from --bits");
  Calibration cal = observe(m, g, calib, n, opt.gptq);
  std::map<std::string, Stat>& stats = cal.stats;
  const std::map<std::string, Hess>& hess = cal.hess;
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
  size_t ci = 0;
  for (size_t blk = 0; blk < g.pools.size(); ++blk) {
    for (; ci <= size_t(g.block_end[blk]); ++ci) {
      const auto& c = g.convs[ci];
      QLayer L;
      L.name = c.name;
      L.op = QOp::Conv;
      L.c_in = c.c_in;
      L.c_out = c.c_out;
      L.kernel = c.kernel;
      L.dilation = c.dilation;
      L.pad = c.pad;
      L.t_in = c.t_in;
      L.relu = true;
      L.in = cur;
      L.out = qt(c.name);
      quantize_weights(L, to_f(param(m, c.name + ".weight").value), to_f(param(m, c.name + ".bias").value), H_of(c.name));
      cur = L.out;
      q.layers.push_back(std::move(L));
    }
    QLayer P;
    P.name = g.pools[blk].name;
    P.op = QOp::AvgPool;
    P.c_in = P.c_out = g.convs[ci - 1].c_out;
    P.pool = P.kernel = g.pools[blk].size;
    P.t_in = g.pools[blk].t_in;
    P.in = P.out = cur;
    P.act_min = cur.qmin();
    P.act_max = cur.qmax();
    q.layers.push_back(std::move(P));
  }
  q.row_layers = int(q.layers.size());
  if (g.teacher) {
    cur = quantize_teacher_attention(q, m, g, cur, stats, qt, H_of);
  } else {
    QLayer L;
    L.name = "conv4";
    L.op = QOp::ModalityConv;
    L.rows = g.rows;
    L.c_in = L.c_out = g.c3;
    L.t_in = g.t_final;
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
    L.c_in = g.flat;
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
  q.layers.push_back(output_layer(m, g, cur, H_of("out")));
  q.out_scale = q.layers.back().out.scale;
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
    nz.apply(x.data() + ws.subjects[s].first_window * data::kWindowValues, ws.subjects[s].num_windows);
  }
  return x;
}

std::vector<int16_t> quantize_input(const QuantModel& q, const float* x, int64_t n) {
  std::vector<int16_t> o(size_t(n) * data::kWindowValues);
  const double inv = 1.0 / double(q.input.scale);
  for (size_t i = 0; i < o.size(); ++i) {
    const double v = std::round(double(x[i]) * inv) + q.input.zp;  // ties away from zero
    o[i] = int16_t(std::clamp<double>(v, q.input.qmin(), q.input.qmax()));
  }
  return o;
}


}  // namespace pulsekd::deploy
