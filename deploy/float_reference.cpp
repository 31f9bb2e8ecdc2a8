// The float forward of a PULSE student or teacher through the SAME reference loops the integer
// model runs (engine/kernels/ with ArithFloat<float>): calibration observes its tensors, and
// predict_float_ref checks it against PulseModel::predict.
#include "deploy/float_reference.h"

#include "datasets/dataset.h"

#include <algorithm>
#include <stdexcept>

#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/pool1d.h"

namespace pulsekd::deploy {

namespace k = pulsekd::kernels;
using models::PulseModel;

Parameter& param(PulseModel& m, const std::string& name) {
  Parameter* p = m.find(name);
  if (!p) throw std::runtime_error("quantize: model has no parameter '" + name + "'");
  return *p;
}

const models::PulsePlan& quantizable_plan(const PulseModel& m) {
  const models::ModelConfig& cfg = m.config();
  if (cfg.arch != "student" && cfg.arch != "teacher")
    throw std::runtime_error("quantize: only the PULSE student and teacher are supported (got arch '" + cfg.arch + "')");
  if (cfg.head != "regression") throw std::runtime_error("quantize: only the regression head is supported");
  const models::PulsePlan& g = m.plan();
  if (g.teacher && (g.t_final % g.heads != 0 || (g.rows - 1) * g.c3 > kernels::kSoftmaxMaxKeys))
    throw std::runtime_error("quantize: teacher attention needs the embedding (" + std::to_string(g.t_final) +
                             ") divisible by " + std::to_string(g.heads) + " heads and at most " + std::to_string(kernels::kSoftmaxMaxKeys) + " keys");
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

namespace {
using FloatA = k::ArithFloat<float>;
}  // namespace

// The per-row convolutions and poolings of one window x (4, 256) -> rows (4, t_final, c3).
// obs(name, data, count) is called with each quantisation point's float values ("in:NAME":
// the inputs of weighted layers, for the error-compensating rounding).
static std::vector<float> rows_forward_f32(PulseModel& m, const models::PulsePlan& g, const float* x, const Observer& obs) {
  const FloatA::quant nq{};
  std::vector<float> rowsout(size_t(g.rows) * g.t_final * g.c3);  // (4, t_final, c3)
  std::vector<float> a, b;
  obs("input", x, size_t(g.rows) * g.t_in);
  for (int r = 0; r < g.rows; ++r) {
    a.assign(x + r * g.t_in, x + (r + 1) * g.t_in);
    int t = g.t_in;
    size_t ci = 0;
    for (size_t blk = 0; blk < g.pools.size(); ++blk) {
      for (; ci <= size_t(g.block_end[blk]); ++ci) {
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
      k::pool1d_params pp{g.pools[blk].size, g.pools[blk].size, 1};
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
static float dense_out_f32(PulseModel& m, const models::PulsePlan& g, const std::vector<float>& flat, const std::vector<float>& wd, const Observer& obs) {
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

static float student_forward_f32(PulseModel& m, const models::PulsePlan& g, const float* x /*(4,256)*/, const Observer& obs) {
  const FloatA::quant nq{};
  const std::vector<float> rowsout = rows_forward_f32(m, g, x, obs);
  const std::vector<float> w4 = param_f(m, "conv4.weight"), b4 = param_f(m, "conv4.bias");
  std::vector<float> fused(size_t(g.t_final) * g.c3);  // (t_final, c3)
  obs("in:conv4", rowsout.data(), rowsout.size());
  k::modality_conv_fwd_ref<FloatA>(fused.data(), rowsout.data(), w4.data(), b4.data(), k::modality_conv_params{g.rows, g.t_final, g.c3, g.c3}, nq);
  obs("conv4", fused.data(), fused.size());
  return dense_out_f32(m, g, fused, dense_to_tc(param_f(m, "dense.weight"), g.dense, g.c3, g.t_final), obs);
}

// Teacher after the rows: cross-attention (query: the c3 channel-tokens of the PPG row; key =
// value: the 3 c3 tokens of the ACC rows; embedding = t_final), LayerNorm per token, flatten
// token-major (c * E + e, PyTorch's order, so dense keeps its own weight layout), dense, out.
static float teacher_forward_f32(PulseModel& m, const models::PulsePlan& g, const float* x /*(4,256)*/, const Observer& obs) {
  const FloatA::quant nq{};
  const std::vector<float> rowsout = rows_forward_f32(m, g, x, obs);
  const int e = g.t_final, lq = g.c3, lk = (g.rows - 1) * g.c3;
  const std::vector<float> w_in = param_f(m, "multihead_attn.in_proj_weight"), b_in = param_f(m, "multihead_attn.in_proj_bias");
  std::vector<float> qkv(size_t(lq) * e + size_t(lk) * 2 * e);  // q (lq, e), then kv (lk, 2e): k | v per key token
  k::attn_in_proj_fwd_ref<FloatA>(qkv.data(), rowsout.data(), w_in.data(), b_in.data(), g.rows, g.t_final, g.c3, nq);
  const float* q = qkv.data();
  const float* kv = qkv.data() + size_t(lq) * e;
  {  // the in-projection's input tokens (c3 of row 0, 3 c3 of rows 1-3), for GPTQ
    std::vector<float> tokens(size_t(g.rows) * g.c3 * e);  // (4 c3, e)
    for (int r = 0; r < g.rows; ++r)
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

float pulse_forward_f32(PulseModel& m, const models::PulsePlan& g, const float* x, const Observer& obs) {
  return g.teacher ? teacher_forward_f32(m, g, x, obs) : student_forward_f32(m, g, x, obs);
}

std::vector<float> predict_float_ref(PulseModel& m, const float* x, int64_t n) {
  const models::PulsePlan& g = quantizable_plan(m);
  std::vector<float> hr(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    hr[size_t(i)] = pulse_forward_f32(m, g, x + i * data::kWindowValues, [](const std::string&, const float*, size_t) {});
  return hr;
}

}  // namespace pulsekd::deploy
