// The quantised-model format (save / parse / validate) and the bit-exact host integer
// simulation (fuzzed by fuzz/fuzz_quant_model.cpp). Depends on engine/ (safetensors, kernels)
// and nlohmann::json only. Calibration and quantisation proper live in models/quantize.cpp.
//
// A quantised model file is user input: parse_quant_model() / load_quant_model() check every
// invariant the simulation, the code generator and the firmware rely on (validate_quant_model)
// and throw std::runtime_error naming the file and what was expected; a model that passes runs
// without out-of-bounds access, int32 accumulator overflow or out-of-range shifts.
#include "models/quantize.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d.h"
#include "engine/kernels/pool1d_int.h"
#include "engine/safetensors.h"

namespace pulsekd::models {

namespace k = pulsekd::kernels;
using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Small pieces

int32_t QTensor::qmin() const { return bits == 8 ? -128 : bits == 16 ? -32768 : INT32_MIN; }
int32_t QTensor::qmax() const { return bits == 8 ? 127 : bits == 16 ? 32767 : INT32_MAX; }

const char* qop_name(QOp op) {
  switch (op) {
    case QOp::Conv: return "conv";
    case QOp::AvgPool: return "avgpool";
    case QOp::ModalityConv: return "modality_conv";
    case QOp::Linear: return "linear";
    case QOp::AttnInProj: return "attn_in_proj";
    case QOp::Attention: return "attention";
    case QOp::LayerNorm: return "layer_norm";
  }
  return "?";
}

int QLayer::t_out() const {
  switch (op) {
    case QOp::Conv: return k::conv1d_out_len(t_in, k::conv1d_params{c_in, c_out, kernel, 1, pad, dilation, 1});
    case QOp::AvgPool: return k::pool1d_out_len(t_in, k::pool1d_params{pool, pool, 1});
    case QOp::ModalityConv: return t_in;
    case QOp::Linear: return t_in;  // tokens (1: one flattened vector)
    case QOp::AttnInProj: return c_in;  // the query tokens (one per channel of the PPG row)
    case QOp::Attention: return t_in;
    case QOp::LayerNorm: return t_in;
  }
  return 0;
}
int64_t QLayer::out_elems() const {
  // q (c_in, t_in) then kv ((rows - 1) c_in, 2 t_in)
  if (op == QOp::AttnInProj) return int64_t(c_in) * t_in * (2 * int64_t(rows) - 1);
  return int64_t(t_out()) * c_out;
}
int64_t QLayer::in_elems() const {
  if (op == QOp::ModalityConv || op == QOp::AttnInProj) return int64_t(t_in) * c_in * rows;
  if (op == QOp::Attention) return int64_t(t_in) * c_in * (2 * int64_t(rows) - 1);  // q + kv
  return int64_t(t_in) * c_in;
}
int64_t QLayer::weights_per_channel() const {
  switch (op) {
    case QOp::Conv: return int64_t(c_in) * kernel;
    case QOp::ModalityConv: return int64_t(c_in) * rows;
    case QOp::Linear: return c_in;
    case QOp::AttnInProj: return t_in;  // in_proj_weight (3E, E), E = t_in
    case QOp::LayerNorm: return 1;      // gamma, one per channel
    case QOp::AvgPool:
    case QOp::Attention: return -1;
  }
  return -1;
}
// int32 outputs are raw accumulators except the attention's q/k/v (requantised, 24-bit clamp)
bool QLayer::raw_output() const { return out.bits == 32 && op != QOp::AttnInProj; }
size_t QLayer::requant_channels() const {
  if (op == QOp::AvgPool || raw_output()) return 0;
  return op == QOp::Attention ? 2 : size_t(c_out);
}
int64_t QLayer::macs_per_row() const {
  switch (op) {
    case QOp::Conv: return int64_t(t_out()) * c_out * kernel * c_in;
    case QOp::AvgPool: return 0;
    case QOp::ModalityConv: return int64_t(t_in) * c_out * rows * c_in;
    case QOp::Linear: return int64_t(t_in) * c_out * c_in;
    case QOp::AttnInProj: return int64_t(c_in) * t_in * t_in * (2 * int64_t(rows) - 1);
    case QOp::Attention: return 2 * int64_t(t_in) * (int64_t(rows) - 1) * t_in * c_in;  // QK^T and P.V
    case QOp::LayerNorm: return int64_t(t_in) * c_in;  // the gamma products
  }
  return 0;
}
k::requant_params QLayer::requant() const {
  return k::requant_params{in.zp, out.zp, mult.empty() ? nullptr : mult.data(),
                           shift.empty() ? nullptr : shift.data(), act_min, act_max};
}

// ---------------------------------------------------------------------------------------
// Host integer simulation

std::vector<int16_t> quantize_input(const QuantModel& q, const float* x, int64_t n) {
  std::vector<int16_t> o(size_t(n) * 1024);
  const double inv = 1.0 / double(q.input.scale);
  for (size_t i = 0; i < o.size(); ++i) {
    const double v = std::round(double(x[i]) * inv) + q.input.zp;  // ties away from zero
    o[i] = int16_t(std::clamp<double>(v, q.input.qmin(), q.input.qmax()));
  }
  return o;
}

namespace {

// An activation buffer of one of the three integer widths.
struct Act {
  int bits = 8;
  std::vector<int8_t> b8;
  std::vector<int16_t> b16;
  std::vector<int32_t> b32;
  void resize(int bits_, size_t n) {
    bits = bits_;
    if (bits == 8) b8.assign(n, 0);
    else if (bits == 16) b16.assign(n, 0);
    else b32.assign(n, 0);
  }
};

template <class In, class Out>
void run_layer_t(const QLayer& L, const In* x, Out* y) {
  using A = k::ArithInt<In, Out>;
  const k::requant_params rq = L.requant();
  switch (L.op) {
    case QOp::Conv:
      k::conv1d_fwd_ref<A>(y, x, L.w.data(), L.bias.data(), L.t_in,
                           k::conv1d_params{L.c_in, L.c_out, L.kernel, 1, L.pad, L.dilation, 1}, rq);
      break;
    case QOp::ModalityConv:
      k::modality_conv_fwd_ref<A>(y, x, L.w.data(), L.bias.data(), k::modality_conv_params{L.rows, L.t_in, L.c_in, L.c_out}, rq);
      break;
    case QOp::Linear:
      k::linear_fwd_ref<A>(y, x, L.w.data(), L.bias.data(), L.t_in, L.c_in, L.c_out, rq);
      break;
    case QOp::AttnInProj:
      k::attn_in_proj_fwd_ref<A>(y, x, L.w.data(), L.bias.data(), L.rows, L.t_in, L.c_in, rq);
      break;
    case QOp::LayerNorm:
      k::layernorm_fwd_int<In, Out>(y, x, L.w.data(), L.bias.data(), L.t_in, L.c_in, L.norm_eps, rq);
      break;
    case QOp::AvgPool:
    case QOp::Attention:
      break;
  }
}

// Attention: int32 q/kv in, int16 ctx out (validate_quant_model).
void run_attention(const QLayer& L, const int32_t* x, int16_t* y) {
  const size_t lk = size_t(L.rows - 1) * size_t(L.t_in);
  std::vector<int64_t> scores(lk);
  std::vector<int32_t> scratch(2 * lk);  // reduced scores, exponentials
  std::vector<int16_t> probs(lk);
  k::attention_fwd_int<int16_t>(y, x, x + size_t(L.t_in) * L.c_in, scores.data(), scratch.data(), probs.data(), L.t_in,
                                int32_t(lk), L.c_in, L.heads, L.mult[0], L.shift[0], L.mult[1], L.shift[1], L.act_min, L.act_max);
}

template <class In>
void run_layer_in(const QLayer& L, const In* x, Act& y) {
  if (L.out.bits == 8) run_layer_t<In, int8_t>(L, x, y.b8.data());
  else if (L.out.bits == 16) run_layer_t<In, int16_t>(L, x, y.b16.data());
  else run_layer_t<In, int32_t>(L, x, y.b32.data());
}

void run_layer(const QLayer& L, const Act& x, size_t x_off, Act& y) {
  if (L.op == QOp::AvgPool) {
    const k::pool1d_params pp{L.pool, L.pool, 1};
    if (x.bits == 8) k::avgpool1d_fwd_int<int8_t>(y.b8.data(), x.b8.data() + x_off, L.t_in, L.c_in, pp);
    else k::avgpool1d_fwd_int<int16_t>(y.b16.data(), x.b16.data() + x_off, L.t_in, L.c_in, pp);
    return;
  }
  if (L.op == QOp::Attention) {
    run_attention(L, x.b32.data() + x_off, y.b16.data());
    return;
  }
  if (x.bits == 8) run_layer_in<int8_t>(L, x.b8.data() + x_off, y);
  else run_layer_in<int16_t>(L, x.b16.data() + x_off, y);
}

void copy_into(const Act& src, Act& dst, size_t off) {
  if (src.bits == 8) std::copy(src.b8.begin(), src.b8.end(), dst.b8.begin() + long(off));
  else if (src.bits == 16) std::copy(src.b16.begin(), src.b16.end(), dst.b16.begin() + long(off));
  else std::copy(src.b32.begin(), src.b32.end(), dst.b32.begin() + long(off));
}

}  // namespace

std::vector<int32_t> simulate(const QuantModel& q, const int16_t* qin, int64_t n) {
  validate_quant_model(q, "simulate");
  std::vector<int32_t> out(static_cast<size_t>(n));
  const QLayer& last_row = q.layers[size_t(q.row_layers) - 1];
  const size_t row_elems = size_t(last_row.out_elems());
  Act in, a, b, rows;
  for (int64_t i = 0; i < n; ++i) {
    rows.resize(last_row.out.bits, row_elems * size_t(q.rows));
    for (int r = 0; r < q.rows; ++r) {
      const int16_t* xr = qin + (i * q.rows + r) * 256;
      in.resize(q.input.bits, 256);
      for (int t = 0; t < 256; ++t) {
        if (q.input.bits == 8) in.b8[size_t(t)] = int8_t(xr[t]);
        else in.b16[size_t(t)] = xr[t];
      }
      const Act* cur = &in;
      for (int l = 0; l < q.row_layers; ++l) {
        const QLayer& L = q.layers[size_t(l)];
        Act& dst = (cur == &a) ? b : a;
        dst.resize(L.out.bits, size_t(L.out_elems()));
        run_layer(L, *cur, 0, dst);
        cur = &dst;
      }
      copy_into(*cur, rows, size_t(r) * row_elems);
    }
    const Act* cur = &rows;
    for (size_t l = size_t(q.row_layers); l < q.layers.size(); ++l) {
      const QLayer& L = q.layers[l];
      Act& dst = (cur == &a) ? b : a;
      dst.resize(L.out.bits, size_t(L.out_elems()));
      run_layer(L, *cur, 0, dst);
      cur = &dst;
    }
    out[size_t(i)] = cur->b32.at(0);
  }
  return out;
}

std::vector<float> predict_quantized(const QuantModel& q, const float* x, int64_t n) {
  const std::vector<int16_t> qi = quantize_input(q, x, n);
  const std::vector<int32_t> acc = simulate(q, qi.data(), n);
  std::vector<float> hr(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) hr[i] = float(double(acc[i]) * double(q.out_scale));
  return hr;
}

int64_t quant_param_bytes(const QuantModel& q) {
  int64_t b = 0;
  for (auto& L : q.layers)
    b += int64_t(L.w.size()) + 4 * int64_t(L.bias.size() + L.mult.size() + L.shift.size()) + (L.op == QOp::LayerNorm ? 8 : 0);
  return b;
}

// ---------------------------------------------------------------------------------------
// Validation

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg) {
  throw std::runtime_error("quantised model '" + what + "': " + msg);
}
std::string s(int64_t v) { return std::to_string(v); }

constexpr int kMaxLayers = 64;
constexpr int kMaxDim = 4096;              // channels, time steps, padding, dilation, pool
constexpr int kMaxKernel = 64;
constexpr int64_t kMaxElems = int64_t(1) << 22;  // per activation tensor / weight tensor

bool ident_ok(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  if (!(std::isalpha((unsigned char)n[0]) || n[0] == '_')) return false;
  for (char c : n)
    if (!(std::isalnum((unsigned char)c) || c == '_')) return false;
  return true;
}

void check_qtensor(const QTensor& t, const std::string& what, const std::string& where, bool allow32) {
  if (t.bits != 8 && t.bits != 16 && !(allow32 && t.bits == 32))
    bad(what, where + ": bits is " + s(t.bits) + ", expected " + (allow32 ? "8, 16 or 32" : "8 or 16"));
  if (!std::isfinite(t.scale) || !(t.scale > 0)) bad(what, where + ": scale must be finite and > 0");
  if (t.bits == 8 && (t.zp < -128 || t.zp > 127)) bad(what, where + ": int8 zero point " + s(t.zp) + " outside [-128, 127]");
  if (t.bits != 8 && t.zp != 0) bad(what, where + ": int" + s(t.bits) + " zero point must be 0, is " + s(t.zp));
}

// The attention layer i against its attn_in_proj (layer i - 1): shapes, int32 q/kv, int16 ctx,
// and the bounds of the integer attention (attention.h): with |q|, |k|, |v| <= A, score
// differences 2 dh A^2 < 2^(31 + kScoreShift) and P.V sums A (2^15 + keys) < 2^(31 + kPvShift)
// fit int32 after their shifts.
void check_attention(const QuantModel& q, int i, const std::string& what, const std::string& where) {
  const QLayer& L = q.layers[size_t(i)];
  const QLayer& P = q.layers[size_t(i) - 1];
  if (L.t_in != P.c_in || L.c_in != P.t_in || L.rows != P.rows || L.c_out != L.c_in)
    bad(what, where + ": attention must have t_in " + s(P.c_in) + " (query tokens), c_in = c_out " + s(P.t_in) + " (embedding), rows " +
                  s(P.rows) + " as its attn_in_proj");
  if (L.heads < 1 || L.heads > L.c_in || L.c_in % L.heads != 0)
    bad(what, where + ": heads " + s(L.heads) + " must divide the embedding " + s(L.c_in));
  const int64_t keys = int64_t(L.rows - 1) * L.t_in;
  if (keys > k::kSoftmaxMaxKeys) bad(what, where + ": " + s(keys) + " keys, at most " + s(k::kSoftmaxMaxKeys));
  if (L.in.bits != 32 || L.out.bits != 16) bad(what, where + ": attention input must be int32 and its output int16");
  const int64_t a = std::max(std::llabs(int64_t(P.act_min)), std::llabs(int64_t(P.act_max)));
  const int64_t dh = L.c_in / L.heads;
  // a <= 2^31 and dh <= 4096: 2 dh a^2 as a double is exact enough for the comparison
  if (2.0 * double(dh) * double(a) * double(a) >= std::ldexp(1.0, 31 + k::kScoreShift) ||
      a * ((int64_t(1) << k::kProbBits) + keys) >= (int64_t(1) << (31 + k::kPvShift)))
    bad(what, where + ": q/k/v clamp +-" + s(a) + " of the attn_in_proj lets scores or P.V sums overflow int32 (head dim " + s(dh) + ")");
}

}  // namespace

void validate_quant_model(const QuantModel& q, const std::string& what) {
  if (q.arch != "student" && q.arch != "teacher") bad(what, "arch is '" + q.arch + "', expected 'student' or 'teacher'");
  if (q.rows != 4) bad(what, "rows is " + s(q.rows) + ", expected 4 (windows are 4 x 256)");
  check_qtensor(q.input, what, "input", false);
  if (!std::isfinite(q.out_scale) || !(q.out_scale > 0)) bad(what, "out_scale must be finite and > 0");
  if (q.norm.present)
    for (int r = 0; r < 4; ++r)
      if (!std::isfinite(q.norm.mean[r]) || !std::isfinite(q.norm.std[r]) || !(q.norm.std[r] > 0))
        bad(what, "normalisation row " + s(r) + ": mean must be finite, std finite and > 0");
  const int nl = int(q.layers.size());
  if (nl < 2 || nl > kMaxLayers) bad(what, s(nl) + " layers, expected 2.." + s(kMaxLayers));
  if (q.row_layers < 1 || q.row_layers >= nl)
    bad(what, "row_layers is " + s(q.row_layers) + ", expected 1.." + s(nl - 1) + " (layers run per row, then at least one after)");
  std::set<std::string> names;
  // Shape and quantisation flowing into the next layer.
  int64_t t = 256, c = 1;
  QTensor flow = q.input;
  for (int i = 0; i < nl; ++i) {
    const QLayer& L = q.layers[size_t(i)];
    const std::string where = "layer " + s(i) + " ('" + L.name + "')";
    if (!ident_ok(L.name)) bad(what, "layer " + s(i) + ": name must be a C identifier of at most 64 characters");
    if (L.name == "input" || L.name == "rows") bad(what, where + ": the names 'input' and 'rows' are reserved");
    if (!names.insert(L.name).second) bad(what, where + ": duplicate layer name");
    auto in_range = [&](const char* field, int v, int lo, int hi) {
      if (v < lo || v > hi) bad(what, where + ": " + field + " is " + s(v) + ", expected " + s(lo) + ".." + s(hi));
    };
    in_range("c_in", L.c_in, 1, kMaxDim);
    in_range("c_out", L.c_out, 1, kMaxDim);
    in_range("t_in", L.t_in, 1, kMaxDim);
    in_range("kernel", L.kernel, 1, kMaxKernel);
    in_range("dilation", L.dilation, 1, kMaxDim);
    in_range("pad", L.pad, 0, kMaxDim);
    in_range("pool", L.pool, 1, kMaxDim);
    in_range("rows", L.rows, 1, 16);
    const bool last = i == nl - 1;
    // Structure first. The first layer after the per-row layers fuses the rows: a
    // modality_conv (student) or the attention's in-projection (teacher).
    const QOp fuse_op = q.arch == "teacher" ? QOp::AttnInProj : QOp::ModalityConv;
    if (i == q.row_layers) {
      if (L.op != fuse_op)
        bad(what, where + ": the first layer after the per-row layers must be a " + qop_name(fuse_op) + " (arch " + q.arch + ")");
      if (L.rows != q.rows) bad(what, where + ": rows is " + s(L.rows) + ", expected " + s(q.rows));
    } else if (L.op == QOp::ModalityConv || L.op == QOp::AttnInProj) {
      bad(what, where + ": a " + qop_name(L.op) + " may only be the first layer after the per-row layers");
    }
    if (L.op == QOp::AttnInProj && (last || q.layers[size_t(i) + 1].op != QOp::Attention))
      bad(what, where + ": attn_in_proj must be followed by an attention layer");
    if (L.op == QOp::Attention && (i == 0 || q.layers[size_t(i) - 1].op != QOp::AttnInProj))
      bad(what, where + ": attention must follow an attn_in_proj layer");
    // int32 tensors: the raw output of the last layer, and the attention's q/k/v
    check_qtensor(L.in, what, where + " input", L.op == QOp::Attention);
    check_qtensor(L.out, what, where + " output", last || L.op == QOp::AttnInProj);
    if (last && L.out.bits != 32) bad(what, where + ": the last layer must output the raw int32 accumulator (bits 32)");
    if (L.in.bits != flow.bits || L.in.zp != flow.zp)
      bad(what, where + ": input is int" + s(L.in.bits) + " zp " + s(L.in.zp) + ", expected int" + s(flow.bits) + " zp " +
                    s(flow.zp) + " (the previous tensor)");
    // Shapes against the previous tensor.
    if (L.op == QOp::Linear) {
      // t_in 1: over the flattened previous tensor; t_in > 1: per token of a (t, c) tensor
      if (L.t_in == 1 ? L.c_in != t * c : (L.t_in != t || L.c_in != c))
        bad(what, where + ": linear expects t_in 1 and c_in " + s(t * c) + " (flattened) or t_in " + s(t) + " and c_in " + s(c) +
                      " (per token), has t_in " + s(L.t_in) + ", c_in " + s(L.c_in));
    } else if (L.op == QOp::Attention) {
      check_attention(q, i, what, where);
    } else if (L.t_in != t || L.c_in != c) {
      bad(what, where + ": input is (t " + s(L.t_in) + ", c " + s(L.c_in) + "), the previous tensor is (t " + s(t) + ", c " + s(c) + ")");
    }
    int64_t t_out = 1;
    if (L.op == QOp::Conv) {
      t_out = int64_t(L.t_in) + 2 * int64_t(L.pad) - int64_t(L.dilation) * (L.kernel - 1);
      if (t_out < 1) bad(what, where + ": kernel span " + s(int64_t(L.dilation) * (L.kernel - 1) + 1) + " exceeds the padded input");
    } else if (L.op == QOp::AvgPool) {
      t_out = (int64_t(L.t_in) + L.pool - 1) / L.pool;
      if (L.c_out != L.c_in) bad(what, where + ": avgpool c_out " + s(L.c_out) + " must equal c_in " + s(L.c_in));
      if (L.out.bits != L.in.bits || L.out.zp != L.in.zp) bad(what, where + ": avgpool output must keep its input's bits and zero point");
      if (last) bad(what, where + ": the last layer cannot be avgpool");
    } else if (L.op == QOp::ModalityConv || L.op == QOp::Linear || L.op == QOp::Attention) {
      t_out = L.t_in;
    } else if (L.op == QOp::AttnInProj) {
      t_out = L.c_in;
      if (L.rows < 2) bad(what, where + ": attn_in_proj needs a query row and at least one key/value row (rows >= 2)");
      if (int64_t(L.c_out) != 3 * int64_t(L.t_in))
        bad(what, where + ": attn_in_proj c_out " + s(L.c_out) + " must be 3 x the embedding t_in = " + s(3 * int64_t(L.t_in)));
      if (L.out.bits != 32) bad(what, where + ": attn_in_proj output must be int32 (q, k, v)");
    } else if (L.op == QOp::LayerNorm) {
      t_out = L.t_in;
      if (L.c_out != L.c_in) bad(what, where + ": layer_norm c_out " + s(L.c_out) + " must equal c_in " + s(L.c_in));
      if (L.c_in < 2 || L.c_in > k::kLayerNormMaxDim) bad(what, where + ": layer_norm width must be 2.." + s(k::kLayerNormMaxDim));
      if (L.norm_eps < 1 || L.norm_eps > (int64_t(1) << 62))
        bad(what, where + ": layer_norm eps_q is " + s(L.norm_eps) + ", expected 1..2^62");
    }
    if (t_out != L.t_out()) bad(what, where + ": internal shape mismatch");
    if (L.out_elems() > kMaxElems || L.in_elems() > kMaxElems) bad(what, where + ": tensor too large (over " + s(kMaxElems) + " values)");
    if (last && L.out_elems() != 1) bad(what, where + ": the last layer must have one output value, has " + s(L.out_elems()));
    // Activation clamp.
    if (L.act_min > L.act_max || L.act_min < L.out.qmin() || L.act_max > L.out.qmax())
      bad(what, where + ": act_min/act_max [" + s(L.act_min) + ", " + s(L.act_max) + "] must be an interval inside [" + s(L.out.qmin()) +
                    ", " + s(L.out.qmax()) + "]");
    // Parameters.
    const int64_t per_co = L.weights_per_channel();
    const size_t nm = L.requant_channels();
    if (L.mult.size() != nm || L.shift.size() != nm)
      bad(what, where + ": expected " + s(int64_t(nm)) + " multipliers and shifts, has " + s(int64_t(L.mult.size())) + " and " +
                    s(int64_t(L.shift.size())));
    for (size_t j = 0; j < nm; ++j) {
      const int32_t m = L.mult[j], sh = L.shift[j];
      const std::string which = (L.op == QOp::Attention ? " " : " of channel ") + s(int64_t(j));
      if (!(m == 0 || m >= (int32_t(1) << 30)))
        bad(what, where + ": multiplier" + which + " is " + s(m) + ", expected 0 or [2^30, 2^31)");
      if (sh < -31 || sh > 30) bad(what, where + ": shift" + which + " is " + s(sh) + ", expected -31..30");
    }
    if (per_co < 0) {
      if (!L.w.empty() || !L.bias.empty() || !L.w_scale.empty()) bad(what, where + ": " + qop_name(L.op) + (L.op == QOp::AvgPool ? " has no parameters" : " has no weights or biases"));
    } else {
      if (int64_t(L.c_out) * per_co > kMaxElems) bad(what, where + ": weight tensor too large");
      if (int64_t(L.w.size()) != int64_t(L.c_out) * per_co || L.bias.size() != size_t(L.c_out) || L.w_scale.size() != size_t(L.c_out))
        bad(what, where + ": weight/bias/weight_scale sizes do not match c_out " + s(L.c_out) + " x " + s(per_co));
      // layer_norm: the weights multiply the normalised values, |z| < 2^15 (attention.h)
      const int64_t xmax = L.op == QOp::LayerNorm || L.in.bits != 8 ? 32768 : 128;
      for (int co = 0; co < L.c_out; ++co) {
        int64_t sw = 0;
        const int8_t* w = L.w.data() + co * per_co;
        for (int64_t j = 0; j < per_co; ++j) {
          if (w[j] == -128) bad(what, where + ": weight -128 (weights are symmetric int8 in [-127, 127])");
          sw += w[j] < 0 ? -int64_t(w[j]) : int64_t(w[j]);
        }
        // Every partial sum of the int32 accumulator is bounded by |bias| + max|x| * sum|w|.
        const int64_t bound = std::llabs(int64_t(L.bias[size_t(co)])) + xmax * sw;
        if (bound > INT32_MAX)
          bad(what, where + ": channel " + s(co) + " can overflow the int32 accumulator (|bias| + " + s(xmax) + " * sum|w| = " + s(bound) + ")");
        if (!std::isfinite(L.w_scale[size_t(co)])) bad(what, where + ": weight_scale of channel " + s(co) + " is not finite");
      }
    }
    // (After the last per-row layer the next one, a modality_conv, sees rows x (t, c).)
    flow = L.out;
    t = t_out;
    c = L.c_out;
  }
}

// ---------------------------------------------------------------------------------------
// Files

static json qt_json(const QTensor& t) { return {{"bits", t.bits}, {"scale", t.scale}, {"zp", t.zp}}; }

template <class T>
static SafeTensor tensor_of(const std::string& dtype, const std::vector<T>& v) {
  SafeTensor t;
  t.dtype = dtype;
  t.shape = {int64_t(v.size())};
  t.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

static SafeTensorsFile quant_file_of(const QuantModel& q, const std::string& what) {
  validate_quant_model(q, what);
  SafeTensorsFile f;
  json layers = json::array();
  for (auto& L : q.layers) {
    layers.push_back({{"name", L.name}, {"op", qop_name(L.op)}, {"c_in", L.c_in}, {"c_out", L.c_out},
                      {"kernel", L.kernel}, {"dilation", L.dilation}, {"pad", L.pad}, {"pool", L.pool},
                      {"rows", L.rows}, {"t_in", L.t_in}, {"relu", L.relu}, {"in", qt_json(L.in)},
                      {"out", qt_json(L.out)}, {"act_min", L.act_min}, {"act_max", L.act_max}});
    // fields only the teacher's ops have (older files stay readable)
    if (L.op == QOp::Attention) layers.back()["heads"] = L.heads;
    if (L.op == QOp::LayerNorm) layers.back()["eps_q"] = L.norm_eps;
    if (L.weights_per_channel() >= 0) {
      f.tensors[L.name + ".weight"] = tensor_of("I8", L.w);
      f.tensors[L.name + ".bias_folded"] = tensor_of("I32", L.bias);
      f.tensors[L.name + ".weight_scale"] = tensor_of("F32", L.w_scale);
    }
    if (!L.mult.empty()) {
      f.tensors[L.name + ".multiplier"] = tensor_of("I32", L.mult);
      f.tensors[L.name + ".shift"] = tensor_of("I32", L.shift);
    }
  }
  json meta = {{"format", "pulsekd-quant-1"}, {"arch", q.arch}, {"calib", q.calib}, {"source", q.source},
               {"input", qt_json(q.input)}, {"rows", q.rows}, {"row_layers", q.row_layers},
               {"out_scale", q.out_scale}, {"layers", layers},
               {"normalisation", q.norm.present ? "checkpoint" : "per-recording z-score"}};
  if (q.norm.present) {
    meta["norm_mean"] = std::vector<float>(q.norm.mean, q.norm.mean + 4);
    meta["norm_std"] = std::vector<float>(q.norm.std, q.norm.std + 4);
  }
  f.metadata["pulsekd.quant"] = meta.dump();
  return f;
}

void save_quant_model(const std::string& path, const QuantModel& q) { save_safetensors(path, quant_file_of(q, path)); }

std::vector<uint8_t> serialize_quant_model(const QuantModel& q) { return serialize_safetensors(quant_file_of(q, "serialize")); }

namespace {

// Strict JSON field readers: the right JSON type and a value representable in the target type
// (nlohmann's get<int>() would silently truncate 1e30 or 2^40).
struct Reader {
  const std::string& what;
  const json& at(const json& j, const std::string& where, const char* key) const {
    if (!j.is_object()) bad(what, where + " must be a JSON object");
    auto it = j.find(key);
    if (it == j.end()) bad(what, where + ": missing field '" + key + "'");
    return *it;
  }
  int64_t i64(const json& j, const std::string& where, const char* key, int64_t lo, int64_t hi) const {
    const json& v = at(j, where, key);
    if (!v.is_number_integer()) bad(what, where + ": field '" + key + "' must be an integer");
    // (an unsigned JSON value is <= hi <= INT64_MAX once the first test passes)
    if (v.is_number_unsigned() ? (v.get<uint64_t>() > uint64_t(hi) || int64_t(v.get<uint64_t>()) < lo)
                               : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
      bad(what, where + ": field '" + key + "' is " + v.dump() + ", expected " + s(lo) + ".." + s(hi));
    return v.is_number_unsigned() ? int64_t(v.get<uint64_t>()) : v.get<int64_t>();
  }
  int i32(const json& j, const std::string& where, const char* key) const { return int(i64(j, where, key, INT32_MIN, INT32_MAX)); }
  float f32(const json& v, const std::string& where) const {
    if (!v.is_number()) bad(what, where + " must be a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > double(FLT_MAX)) bad(what, where + " is not a finite float");
    return float(d);
  }
  float f32(const json& j, const std::string& where, const char* key) const { return f32(at(j, where, key), where + ": field '" + key + "'"); }
  std::string str(const json& j, const std::string& where, const char* key) const {
    const json& v = at(j, where, key);
    if (!v.is_string()) bad(what, where + ": field '" + key + "' must be a string");
    return v.get<std::string>();
  }
  bool boolean(const json& j, const std::string& where, const char* key) const {
    const json& v = at(j, where, key);
    if (!v.is_boolean()) bad(what, where + ": field '" + key + "' must be true or false");
    return v.get<bool>();
  }
  QTensor qt(const json& j, const std::string& where) const {
    QTensor t;
    t.bits = i32(j, where, "bits");
    t.scale = f32(j, where, "scale");
    t.zp = i32(j, where, "zp");
    return t;
  }
  template <class T>
  std::vector<T> tensor(const SafeTensorsFile& f, const std::string& name, const char* dtype, int64_t expect) const {
    auto it = f.tensors.find(name);
    if (it == f.tensors.end()) bad(what, "missing tensor '" + name + "'");
    const SafeTensor& t = it->second;
    if (t.dtype != dtype) bad(what, "tensor '" + name + "' must be " + dtype + ", is " + t.dtype);
    if (t.shape.size() != 1 || t.shape[0] != expect)
      bad(what, "tensor '" + name + "' must have shape (" + s(expect) + "), has " + s(int64_t(t.shape.size())) + " dimension(s)" +
                    (t.shape.size() == 1 ? " of " + s(t.shape[0]) : std::string()));
    if (int64_t(t.bytes.size()) != expect * int64_t(sizeof(T)))
      bad(what, "tensor '" + name + "' holds " + s(int64_t(t.bytes.size())) + " bytes, expected " + s(expect * int64_t(sizeof(T))));
    std::vector<T> v(static_cast<size_t>(expect));
    if (expect) std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
    return v;
  }
};

QOp qop_from(const std::string& what, const std::string& where, const std::string& op) {
  if (op == "conv") return QOp::Conv;
  if (op == "avgpool") return QOp::AvgPool;
  if (op == "modality_conv") return QOp::ModalityConv;
  if (op == "linear") return QOp::Linear;
  if (op == "attn_in_proj") return QOp::AttnInProj;
  if (op == "attention") return QOp::Attention;
  if (op == "layer_norm") return QOp::LayerNorm;
  bad(what, where + ": unknown op '" + op + "' (expected conv, avgpool, modality_conv, linear, attn_in_proj, attention or layer_norm)");
}

QuantModel quant_model_from(const SafeTensorsFile& f, const std::string& what) {
  auto it = f.metadata.find("pulsekd.quant");
  if (it == f.metadata.end()) bad(what, "no 'pulsekd.quant' metadata (not written by pulsekd quantize?)");
  json m;
  try {
    m = json::parse(it->second);
  } catch (const json::exception& e) {
    bad(what, std::string("'pulsekd.quant' metadata is not JSON (") + e.what() + ")");
  }
  const Reader rd{what};
  const std::string top = "metadata";
  if (rd.str(m, top, "format") != "pulsekd-quant-1") bad(what, "format is not 'pulsekd-quant-1'");
  QuantModel q;
  q.arch = rd.str(m, top, "arch");
  q.calib = rd.str(m, top, "calib");
  q.source = rd.str(m, top, "source");
  q.input = rd.qt(rd.at(m, top, "input"), "input");
  q.rows = int(rd.i64(m, top, "rows", 1, 16));
  q.row_layers = int(rd.i64(m, top, "row_layers", 1, kMaxLayers));
  q.out_scale = rd.f32(m, top, "out_scale");
  if (m.contains("norm_mean") || m.contains("norm_std")) {
    const json& mu = rd.at(m, top, "norm_mean");
    const json& sd = rd.at(m, top, "norm_std");
    if (!mu.is_array() || !sd.is_array() || mu.size() != 4 || sd.size() != 4) bad(what, "norm_mean and norm_std must be arrays of 4 numbers");
    q.norm.present = true;
    for (size_t r = 0; r < 4; ++r) {
      q.norm.mean[r] = rd.f32(mu[r], "norm_mean[" + s(int64_t(r)) + "]");
      q.norm.std[r] = rd.f32(sd[r], "norm_std[" + s(int64_t(r)) + "]");
    }
  }
  const json& layers = rd.at(m, top, "layers");
  if (!layers.is_array() || layers.empty() || layers.size() > size_t(kMaxLayers))
    bad(what, "'layers' must be an array of 1.." + s(kMaxLayers) + " layers");
  std::set<std::string> used;
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& j = layers[i];
    const std::string where = "layer " + s(int64_t(i));
    QLayer L;
    L.name = rd.str(j, where, "name");
    if (!ident_ok(L.name)) bad(what, where + ": name must be a C identifier of at most 64 characters");
    const std::string wl = where + " ('" + L.name + "')";
    L.op = qop_from(what, wl, rd.str(j, wl, "op"));
    L.c_in = int(rd.i64(j, wl, "c_in", 1, kMaxDim));
    L.c_out = int(rd.i64(j, wl, "c_out", 1, kMaxDim));
    L.kernel = int(rd.i64(j, wl, "kernel", 1, kMaxKernel));
    L.dilation = int(rd.i64(j, wl, "dilation", 1, kMaxDim));
    L.pad = int(rd.i64(j, wl, "pad", 0, kMaxDim));
    L.pool = int(rd.i64(j, wl, "pool", 1, kMaxDim));
    L.rows = int(rd.i64(j, wl, "rows", 1, 16));
    L.t_in = int(rd.i64(j, wl, "t_in", 1, kMaxDim));
    L.relu = rd.boolean(j, wl, "relu");
    L.in = rd.qt(rd.at(j, wl, "in"), wl + " input");
    L.out = rd.qt(rd.at(j, wl, "out"), wl + " output");
    L.act_min = rd.i32(j, wl, "act_min");
    L.act_max = rd.i32(j, wl, "act_max");
    if (L.op == QOp::Attention) L.heads = int(rd.i64(j, wl, "heads", 1, kMaxDim));
    if (L.op == QOp::LayerNorm) L.norm_eps = rd.i64(j, wl, "eps_q", 1, int64_t(1) << 62);
    const int64_t per_co = L.weights_per_channel();
    if (per_co >= 0) {
      const int64_t nw = int64_t(L.c_out) * per_co;
      if (nw > kMaxElems) bad(what, wl + ": weight tensor of " + s(nw) + " values is too large");
      L.w = rd.tensor<int8_t>(f, L.name + ".weight", "I8", nw);
      L.bias = rd.tensor<int32_t>(f, L.name + ".bias_folded", "I32", L.c_out);
      L.w_scale = rd.tensor<float>(f, L.name + ".weight_scale", "F32", L.c_out);
      used.insert({L.name + ".weight", L.name + ".bias_folded", L.name + ".weight_scale"});
    }
    const int64_t nm = int64_t(L.requant_channels());
    if (nm > 0) {
      L.mult = rd.tensor<int32_t>(f, L.name + ".multiplier", "I32", nm);
      L.shift = rd.tensor<int32_t>(f, L.name + ".shift", "I32", nm);
      used.insert({L.name + ".multiplier", L.name + ".shift"});
    }
    q.layers.push_back(std::move(L));
  }
  for (auto& kv : f.tensors)
    if (!used.count(kv.first)) bad(what, "unexpected tensor '" + kv.first + "' (no layer uses it)");
  validate_quant_model(q, what);
  return q;
}

}  // namespace

QuantModel parse_quant_model(const uint8_t* data, size_t size, const std::string& what) {
  return quant_model_from(parse_safetensors(data, size, what), what);
}

QuantModel load_quant_model(const std::string& path) { return quant_model_from(load_safetensors(path), path); }

}  // namespace pulsekd::models
