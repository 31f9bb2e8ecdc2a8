// The quantised model's layer geometry and its validation. A quantised model file is user input:
// validate_quant_model checks every invariant the host runtime, the code generator and the
// firmware rely on and throws std::runtime_error naming the file and what was expected; a model
// that passes runs without out-of-bounds access, int32 accumulator overflow or out-of-range shifts.
#include "deploy/quant_model.h"

#include "datasets/dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/pool1d.h"

namespace pulsekd::deploy {

namespace k = pulsekd::kernels;

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

int64_t quant_param_bytes(const QuantModel& q) {
  int64_t b = 0;
  for (auto& L : q.layers)
    b += int64_t(L.w.size()) + 4 * int64_t(L.bias.size() + L.mult.size() + L.shift.size()) + (L.op == QOp::LayerNorm ? 8 : 0);
  return b;
}

void quant_model_error(const std::string& what, const std::string& msg) {
  throw std::runtime_error("quantised model '" + what + "': " + msg);
}

bool is_c_identifier(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  if (!(std::isalpha((unsigned char)n[0]) || n[0] == '_')) return false;
  for (char c : n)
    if (!(std::isalnum((unsigned char)c) || c == '_')) return false;
  return true;
}

// ---------------------------------------------------------------------------------------
// Validation

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg) { quant_model_error(what, msg); }
std::string s(int64_t v) { return std::to_string(v); }

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

// Layer L's multipliers, shifts, weights and biases: sizes, ranges and the int32 accumulator bound.
void check_params(const QLayer& L, const std::string& what, const std::string& where) {
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
}

}  // namespace

void validate_quant_model(const QuantModel& q, const std::string& what) {
  if (q.arch != "student" && q.arch != "teacher") bad(what, "arch is '" + q.arch + "', expected 'student' or 'teacher'");
  if (q.rows != data::kRows) bad(what, "rows is " + s(q.rows) + ", expected 4 (windows are 4 x 256)");
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
  int64_t t = data::kWindow, c = 1;
  QTensor flow = q.input;
  for (int i = 0; i < nl; ++i) {
    const QLayer& L = q.layers[size_t(i)];
    const std::string where = "layer " + s(i) + " ('" + L.name + "')";
    if (!is_c_identifier(L.name)) bad(what, "layer " + s(i) + ": name must be a C identifier of at most 64 characters");
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
    check_params(L, what, where);
    // (After the last per-row layer the next one, a modality_conv, sees rows x (t, c).)
    flow = L.out;
    t = t_out;
    c = L.c_out;
  }
}

}  // namespace pulsekd::deploy
