// Forward and backward of every op. Each op: check shapes, compute the output with the
// reference kernel (or a fast path held equal to it by tests), record a closure that adds the
// input gradients. Closures capture Tensors (views into the arena) and node ids only.
#include "engine/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "engine/blas.h"
#include "engine/host_fast/dispatch.h"
#include "engine/kernels/activation.h"
#include "engine/host_fast/pool_modality.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/elementwise.h"
#include "engine/kernels/loss.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/pool1d.h"
#include "engine/kernels/softmax.h"
#include "engine/module.h"
#include "engine/op_util.h"
#include "engine/rng.h"

namespace pulsekd {

namespace k = kernels;
using F = k::ArithFloat<real>;

namespace {

using detail::fail;
using detail::graph_of;
using detail::norm_axis;
using detail::split_axis;

void expect_ndim(const char* op, const char* name, Var v, int nd) {
  if (v.shape().ndim != nd)
    fail(op, std::string(name) + " must be " + std::to_string(nd) + "-D, got " + v.shape().str());
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Convolutions

Var conv1d(Var x, Var w, Var b, const Conv1dOpts& o) {
  const char* op = o.relu ? "conv1d_relu" : "conv1d";
  Graph& g = graph_of(op, {x, w, b});
  expect_ndim(op, "input", x, 3);
  expect_ndim(op, "weight", w, 3);
  const int64_t n = x.shape()[0], t_in = x.shape()[1], c_in = x.shape()[2];
  const int64_t c_out = w.shape()[0], kern = w.shape()[1];
  if (o.groups < 1 || o.stride < 1 || o.dilation < 1 || o.pad < 0) fail(op, "stride, dilation, groups must be >= 1 and padding >= 0");
  if (c_in % o.groups || c_out % o.groups)
    fail(op, "channels " + std::to_string(c_in) + "→" + std::to_string(c_out) + " not divisible by groups " + std::to_string(o.groups));
  if (w.shape()[2] != c_in / o.groups)
    fail(op, "weight " + w.shape().str() + " does not fit input " + x.shape().str() + " with groups " + std::to_string(o.groups));
  if (b.defined() && (b.shape().ndim != 1 || b.shape()[0] != c_out))
    fail(op, "bias " + b.shape().str() + " must be [" + std::to_string(c_out) + "]");
  const k::conv1d_params p{int32_t(c_in), int32_t(c_out), int32_t(kern), o.stride, o.pad, o.dilation, o.groups};
  const int32_t t_out = k::conv1d_out_len(int32_t(t_in), p);
  if (t_out <= 0) fail(op, "input length " + std::to_string(t_in) + " too short for the kernel");
  Tensor out = g.new_tensor({n, t_out, c_out});
  const Tensor xv = x.value(), wv = w.value();
  const real* bias = b.defined() ? b.data() : nullptr;
  const bool fused_relu = o.relu;
  conv1d_forward(out.data, xv.data, wv.data, bias, n, int32_t(t_in), p, fused_relu);
  const int xid = x.id, wid = w.id, bid = b.defined() ? b.id : -1;
  const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  return g.record(out, gx || gw || gb, [=, &g](const Tensor& go) {
    if (fused_relu) {
      // Gradient through the ReLU, masked in place: this node's gradient is complete when its
      // backward runs and nothing reads it afterwards.
      const int64_t cnt = go.numel();
      for (int64_t i = 0; i < cnt; ++i) go.data[i] = out.data[i] > 0 ? go.data[i] : real(0);
    }
    if (gx) conv1d_backward_data(g.grad(xid).data, go.data, wv.data, n, int32_t(t_in), p);
    if (gw || gb) {
      // Weight and bias gradients come out of one pass; route the unwanted one to scratch.
      Tensor dw = gw ? g.grad(wid) : g.new_zeros(wv.shape);
      real* db = gb ? g.grad(bid).data : nullptr;
      conv1d_backward_weight(dw.data, db, go.data, xv.data, n, int32_t(t_in), p);
    }
  }, op);
}

Var modality_conv(Var x, Var w, Var b) {
  const char* op = "modality_conv";
  Graph& g = graph_of(op, {x, w, b});
  expect_ndim(op, "input", x, 4);
  expect_ndim(op, "weight", w, 3);
  const int64_t bs = x.shape()[0], rows = x.shape()[1], t = x.shape()[2], c_in = x.shape()[3];
  const int64_t c_out = w.shape()[0];
  if (w.shape()[1] != rows || w.shape()[2] != c_in)
    fail(op, "weight " + w.shape().str() + " does not fit input " + x.shape().str() + " (expected [Cout, R, C])");
  if (b.defined() && (b.shape().ndim != 1 || b.shape()[0] != c_out))
    fail(op, "bias " + b.shape().str() + " must be [" + std::to_string(c_out) + "]");
  const k::modality_conv_params p{int32_t(rows), int32_t(t), int32_t(c_in), int32_t(c_out)};
  Tensor out = g.new_tensor({bs, t, c_out});
  const Tensor xv = x.value(), wv = w.value();
  const real* bias = b.defined() ? b.data() : nullptr;
  const int64_t in_sz = rows * t * c_in, out_sz = t * c_out;
  const std::vector<real> wt = fast::modality_weights_transposed(wv.data, p);  // (rows * c_in, c_out)
  for (int64_t i = 0; i < bs; ++i) fast::modality_conv_fwd(out.data + i * out_sz, xv.data + i * in_sz, wt.data(), bias, p);
  const int xid = x.id, wid = w.id, bid = b.defined() ? b.id : -1;
  const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  return g.record(out, gx || gw || gb, [=, &g](const Tensor& go) {
    Tensor dx = gx ? g.grad(xid) : Tensor{};
    Tensor dw = gw ? g.grad(wid) : (gb ? g.new_zeros(wv.shape) : Tensor{});
    real* db = gb ? g.grad(bid).data : nullptr;
    for (int64_t i = 0; i < bs; ++i) {
      if (gx) k::modality_conv_bwd_data_ref<real>(dx.data + i * in_sz, go.data + i * out_sz, wv.data, p);
      if (gw || gb) k::modality_conv_bwd_weight_ref<real>(dw.data, db, go.data + i * out_sz, xv.data + i * in_sz, p);
    }
  }, op);
}

Var linear(Var x, Var w, Var b) {
  const char* op = "linear";
  Graph& g = graph_of(op, {x, w, b});
  expect_ndim(op, "weight", w, 2);
  const Shape xs = x.shape();
  if (xs.ndim < 1) fail(op, "input must have at least 1 dimension");
  const int64_t in_f = xs[xs.ndim - 1], out_f = w.shape()[0];
  if (w.shape()[1] != in_f) fail(op, "weight " + w.shape().str() + " does not fit input " + xs.str());
  if (b.defined() && (b.shape().ndim != 1 || b.shape()[0] != out_f))
    fail(op, "bias " + b.shape().str() + " must be [" + std::to_string(out_f) + "]");
  const int64_t rows = xs.numel() / std::max<int64_t>(in_f, 1);
  Shape os = xs;
  os[os.ndim - 1] = out_f;
  Tensor out = g.new_tensor(os);
  const Tensor xv = x.value(), wv = w.value();
  if (b.defined())
    for (int64_t r = 0; r < rows; ++r) std::memcpy(out.data + r * out_f, b.data(), sizeof(real) * out_f);
  // out (rows, out_f) = x (rows, in_f) · w^T
  gemm(false, true, int(rows), int(out_f), int(in_f), 1, xv.data, int(in_f), wv.data, int(in_f), b.defined() ? 1 : 0, out.data, int(out_f));
  const int xid = x.id, wid = w.id, bid = b.defined() ? b.id : -1;
  const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
  return g.record(out, gx || gw || gb, [=, &g](const Tensor& go) {
    if (gx)  // dx (rows, in_f) += go (rows, out_f) · w (out_f, in_f)
      gemm(false, false, int(rows), int(in_f), int(out_f), 1, go.data, int(out_f), wv.data, int(in_f), 1, g.grad(xid).data, int(in_f));
    if (gw)  // dw (out_f, in_f) += go^T · x
      gemm(true, false, int(out_f), int(in_f), int(rows), 1, go.data, int(out_f), xv.data, int(in_f), 1, g.grad(wid).data, int(in_f));
    if (gb) {
      real* db = g.grad(bid).data;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out_f; ++o) db[o] += go.data[r * out_f + o];
    }
  }, op);
}

// ---------------------------------------------------------------------------------------
// Pooling

static Var pool1d(Var x, int kernel, int stride, bool ceil_mode, bool is_max) {
  const char* op = is_max ? "max_pool1d" : "avg_pool1d";
  Graph& g = graph_of(op, {x});
  expect_ndim(op, "input", x, 3);
  if (kernel < 1 || stride < 1) fail(op, "kernel and stride must be >= 1");
  const int64_t n = x.shape()[0], t_in = x.shape()[1], c = x.shape()[2];
  const k::pool1d_params p{kernel, stride, ceil_mode ? 1 : 0};
  const int32_t t_out = k::pool1d_out_len(int32_t(t_in), p);
  if (t_out <= 0) fail(op, "input length " + std::to_string(t_in) + " shorter than the kernel " + std::to_string(kernel));
  Tensor out = g.new_tensor({n, t_out, c});
  const Tensor xv = x.value();
  int32_t* argmax = is_max ? g.new_ints(size_t(n * t_out * c)) : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    if (is_max)
      k::maxpool1d_fwd_ref<real>(out.data + i * t_out * c, argmax + i * t_out * c, xv.data + i * t_in * c, int32_t(t_in), int32_t(c), p);
    else
      fast::avgpool1d_fwd(out.data + i * t_out * c, xv.data + i * t_in * c, int32_t(t_in), int32_t(c), p);
  }
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    Tensor dx = g.grad(xid);
    for (int64_t i = 0; i < n; ++i) {
      if (is_max)
        k::maxpool1d_bwd_ref<real>(dx.data + i * t_in * c, go.data + i * t_out * c, argmax + i * t_out * c, t_out, int32_t(c));
      else
        fast::avgpool1d_bwd(dx.data + i * t_in * c, go.data + i * t_out * c, int32_t(t_in), int32_t(c), p);
    }
  }, op);
}

Var avg_pool1d(Var x, int kernel, int stride, bool ceil_mode) { return pool1d(x, kernel, stride, ceil_mode, false); }
Var max_pool1d(Var x, int kernel, int stride, bool ceil_mode) { return pool1d(x, kernel, stride, ceil_mode, true); }

// ---------------------------------------------------------------------------------------
// Activations and normalisation

Var relu(Var x) {
  Graph& g = graph_of("relu", {x});
  Tensor out = g.new_tensor(x.shape());
  const size_t n = size_t(out.numel());
  k::relu_fwd_ref<real>(out.data, x.data(), n);
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    k::relu_bwd_ref<real>(g.grad(xid).data, go.data, out.data, n);
  }, "relu");
}

Var gelu(Var x) {
  Graph& g = graph_of("gelu", {x});
  Tensor out = g.new_tensor(x.shape());
  const size_t n = size_t(out.numel());
  const Tensor xv = x.value();
  k::gelu_fwd_ref<real>(out.data, xv.data, n);
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    k::gelu_bwd_ref<real>(g.grad(xid).data, go.data, xv.data, n);
  }, "gelu");
}

Var dropout(Var x, real p, bool training, Rng& rng) {
  if (p < 0 || p >= 1) fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
  if (!training || p == 0) return x;
  Graph& g = graph_of("dropout", {x});
  Tensor out = g.new_tensor(x.shape());
  Tensor mask = g.new_tensor(x.shape());  // 0 or 1/(1-p)
  const size_t n = size_t(out.numel());
  const real keep_scale = real(1) / (real(1) - p);
  // One 64-bit draw gives two 32-bit uniforms: the mask is the cost of dropout.
  const uint64_t threshold = uint64_t(double(p) * 4294967296.0);
  for (size_t i = 0; i < n; i += 2) {
    const uint64_t r = rng.next_u64();
    mask.data[i] = (r & 0xffffffffu) < threshold ? real(0) : keep_scale;
    if (i + 1 < n) mask.data[i + 1] = (r >> 32) < threshold ? real(0) : keep_scale;
  }
  k::dropout_fwd_ref<real>(out.data, x.data(), mask.data, n);
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    k::dropout_bwd_ref<real>(g.grad(xid).data, go.data, mask.data, n);
  }, "dropout");
}

Var layer_norm(Var x, Var gamma, Var beta, real eps) {
  const char* op = "layer_norm";
  Graph& g = graph_of(op, {x, gamma, beta});
  const Shape xs = x.shape();
  const int64_t d = xs[xs.ndim - 1], rows = xs.numel() / std::max<int64_t>(d, 1);
  for (Var v : {gamma, beta})
    if (v.defined() && (v.shape().ndim != 1 || v.shape()[0] != d))
      fail(op, "gamma/beta " + v.shape().str() + " must be [" + std::to_string(d) + "] for input " + xs.str());
  Tensor out = g.new_tensor(xs);
  Tensor mean = g.new_tensor({rows}), rstd = g.new_tensor({rows});
  const Tensor xv = x.value();
  const real* gm = gamma.defined() ? gamma.data() : nullptr;
  k::layernorm_fwd_ref<real>(out.data, mean.data, rstd.data, xv.data, gm, beta.defined() ? beta.data() : nullptr, size_t(rows), int32_t(d), eps);
  const int xid = x.id, gid = gamma.defined() ? gamma.id : -1, bid = beta.defined() ? beta.id : -1;
  const bool gx = x.requires_grad(), gg = gamma.defined() && gamma.requires_grad(), gb = beta.defined() && beta.requires_grad();
  return g.record(out, gx || gg || gb, [=, &g](const Tensor& go) {
    k::layernorm_bwd_ref<real>(gx ? g.grad(xid).data : nullptr, gg ? g.grad(gid).data : nullptr,
                               gb ? g.grad(bid).data : nullptr, go.data, xv.data, gm, mean.data, rstd.data,
                               size_t(rows), int32_t(d));
  }, op);
}

Var batch_norm(Var x, Var gamma, Var beta, Parameter& running_mean, Parameter& running_var,
               bool training, real momentum, real eps) {
  const char* op = "batch_norm";
  Graph& g = graph_of(op, {x, gamma, beta});
  const Shape xs = x.shape();
  const int64_t c = xs[xs.ndim - 1], n = xs.numel() / std::max<int64_t>(c, 1);
  if (running_mean.numel() != c || running_var.numel() != c)
    fail(op, "running statistics do not have " + std::to_string(c) + " channels");
  for (Var v : {gamma, beta})
    if (v.defined() && (v.shape().ndim != 1 || v.shape()[0] != c))
      fail(op, "gamma/beta " + v.shape().str() + " must be [" + std::to_string(c) + "]");
  if (training && n < 2) fail(op, "training mode needs more than one value per channel");
  Tensor out = g.new_tensor(xs);
  Tensor mean = g.new_tensor({c}), rstd = g.new_tensor({c});
  const Tensor xv = x.value();
  const real* gm = gamma.defined() ? gamma.data() : nullptr;
  // Running statistics only move when recording a training step, not in gradient checks that
  // re-run the forward: the caller passes training=false there.
  k::batchnorm_fwd_ref<real>(out.data, mean.data, rstd.data, running_mean.value.data(), running_var.value.data(),
                             xv.data, gm, beta.defined() ? beta.data() : nullptr, size_t(n), int32_t(c),
                             training ? 1 : 0, momentum, eps);
  const int xid = x.id, gid = gamma.defined() ? gamma.id : -1, bid = beta.defined() ? beta.id : -1;
  const bool gx = x.requires_grad(), gg = gamma.defined() && gamma.requires_grad(), gb = beta.defined() && beta.requires_grad();
  const int32_t tr = training ? 1 : 0;
  return g.record(out, gx || gg || gb, [=, &g](const Tensor& go) {
    k::batchnorm_bwd_ref<real>(gx ? g.grad(xid).data : nullptr, gg ? g.grad(gid).data : nullptr,
                               gb ? g.grad(bid).data : nullptr, go.data, xv.data, gm, mean.data, rstd.data,
                               size_t(n), int32_t(c), tr);
  }, op);
}

static Var softmax_impl(Var x, int axis, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  Graph& g = graph_of(op, {x});
  const int a = norm_axis(op, axis, x.shape().ndim);
  if (a != x.shape().ndim - 1) {
    // Move the axis last, normalise, move it back: two gradient-checked transposes.
    const int last = x.shape().ndim - 1;
    return transpose(softmax_impl(transpose(x, a, last), -1, log), a, last);
  }
  const int64_t d = x.shape()[a], rows = x.value().numel() / std::max<int64_t>(d, 1);
  Tensor out = g.new_tensor(x.shape());
  if (log) k::log_softmax_fwd_ref<real>(out.data, x.data(), size_t(rows), int32_t(d));
  else softmax_rows_forward(out.data, x.data(), rows, int32_t(d));
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    if (log) k::log_softmax_bwd_ref<real>(g.grad(xid).data, go.data, out.data, size_t(rows), int32_t(d));
    else softmax_rows_backward(g.grad(xid).data, go.data, out.data, rows, int32_t(d));
  }, op);
}

Var softmax(Var x, int axis) { return softmax_impl(x, axis, false); }
Var log_softmax(Var x, int axis) { return softmax_impl(x, axis, true); }

// ---------------------------------------------------------------------------------------
// Matrix products and attention

Var matmul(Var a, Var b, bool trans_b) {
  const char* op = "matmul";
  Graph& g = graph_of(op, {a, b});
  const Shape as = a.shape(), bs = b.shape();
  if (as.ndim < 2 || as.ndim != bs.ndim) fail(op, "operands " + as.str() + " and " + bs.str() + " must have the same rank >= 2");
  int64_t batch = 1;
  for (int i = 0; i < as.ndim - 2; ++i) {
    if (as[i] != bs[i]) fail(op, "leading dimensions differ: " + as.str() + " vs " + bs.str());
    batch *= as[i];
  }
  const int64_t m = as[as.ndim - 2], kk = as[as.ndim - 1];
  const int64_t n = trans_b ? bs[bs.ndim - 2] : bs[bs.ndim - 1];
  const int64_t kb = trans_b ? bs[bs.ndim - 1] : bs[bs.ndim - 2];
  if (kb != kk) fail(op, "inner dimensions differ: " + as.str() + (trans_b ? " × " : " × ") + bs.str() + (trans_b ? "^T" : ""));
  Shape os = as;
  os[os.ndim - 1] = n;
  Tensor out = g.new_tensor(os);
  const Tensor av = a.value(), bv = b.value();
  for (int64_t i = 0; i < batch; ++i)
    gemm(false, trans_b, int(m), int(n), int(kk), 1, av.data + i * m * kk, int(kk), bv.data + i * kk * n,
         trans_b ? int(kk) : int(n), 0, out.data + i * m * n, int(n));
  const int aid = a.id, bid = b.id;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return g.record(out, ga || gb, [=, &g](const Tensor& go) {
    for (int64_t i = 0; i < batch; ++i) {
      const real* goi = go.data + i * m * n;
      if (ga)  // da (m, k) += go (m, n) · op(b)^T
        gemm(false, !trans_b, int(m), int(kk), int(n), 1, goi, int(n), bv.data + i * kk * n, trans_b ? int(kk) : int(n),
             1, g.grad(aid).data + i * m * kk, int(kk));
      if (gb) {
        if (trans_b)  // b stored (n, k): db (n, k) += go^T (n, m) · a (m, k)
          gemm(true, false, int(n), int(kk), int(m), 1, goi, int(n), av.data + i * m * kk, int(kk), 1,
               g.grad(bid).data + i * kk * n, int(kk));
        else  // db (k, n) += a^T (k, m) · go (m, n)
          gemm(true, false, int(kk), int(n), int(m), 1, av.data + i * m * kk, int(kk), goi, int(n), 1,
               g.grad(bid).data + i * kk * n, int(n));
      }
    }
  }, op);
}

Var multi_head_attention(Var query, Var kv, Var in_w, Var in_b, Var out_w, Var out_b, int heads) {
  const char* op = "multi_head_attention";
  graph_of(op, {query, kv, in_w, in_b, out_w, out_b});
  expect_ndim(op, "query", query, 3);
  expect_ndim(op, "key/value", kv, 3);
  const int64_t bsz = query.shape()[0], lq = query.shape()[1], e = query.shape()[2];
  const int64_t lk = kv.shape()[1];
  if (kv.shape()[0] != bsz || kv.shape()[2] != e) fail(op, "key/value " + kv.shape().str() + " does not fit query " + query.shape().str());
  if (heads < 1 || e % heads) fail(op, "embed dim " + std::to_string(e) + " not divisible by " + std::to_string(heads) + " heads");
  if (in_w.shape() != Shape{3 * e, e}) fail(op, "in_proj_weight " + in_w.shape().str() + " must be [3E, E] = [" + std::to_string(3 * e) + ", " + std::to_string(e) + "]");
  const int64_t dh = e / heads;
  Var wq = slice(in_w, 0, 0, e), wk = slice(in_w, 0, e, 2 * e), wv = slice(in_w, 0, 2 * e, 3 * e);
  Var bq, bk, bvv;
  if (in_b.defined()) {
    bq = slice(in_b, 0, 0, e);
    bk = slice(in_b, 0, e, 2 * e);
    bvv = slice(in_b, 0, 2 * e, 3 * e);
  }
  // (B, L, E) → (B, L, H, Dh) → (B, H, L, Dh)
  Var q = transpose(reshape(linear(query, wq, bq), {bsz, lq, heads, dh}), 1, 2);
  Var kk = transpose(reshape(linear(kv, wk, bk), {bsz, lk, heads, dh}), 1, 2);
  Var v = transpose(reshape(linear(kv, wv, bvv), {bsz, lk, heads, dh}), 1, 2);
  Var scores = scale(matmul(q, kk, true), real(1) / std::sqrt(real(dh)));  // (B, H, Lq, Lk)
  Var ctx = matmul(softmax(scores, -1), v);                               // (B, H, Lq, Dh)
  Var merged = reshape(transpose(ctx, 1, 2), {bsz, lq, e});
  return linear(merged, out_w, out_b);
}

// ---------------------------------------------------------------------------------------
// Elementwise and reductions

Var add(Var a, Var b) {
  const char* op = "add";
  Graph& g = graph_of(op, {a, b});
  const Shape as = a.shape(), bs = b.shape();
  const bool bias_like = as != bs && bs.ndim == 1 && as[as.ndim - 1] == bs[0];
  if (as != bs && !bias_like) fail(op, "shapes " + as.str() + " and " + bs.str() + " differ");
  Tensor out = g.new_tensor(as);
  const size_t n = size_t(out.numel()), period = size_t(bs.numel());
  k::add_fwd_ref<real>(out.data, a.data(), b.data(), n, period);
  const int aid = a.id, bid = b.id;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return g.record(out, ga || gb, [=, &g](const Tensor& go) {
    k::add_bwd_ref<real>(ga ? g.grad(aid).data : nullptr, gb ? g.grad(bid).data : nullptr, go.data, n, period);
  }, op);
}

static Var binary_same(const char* op, Var a, Var b, int kind) {  // kind 0 sub, 1 mul
  Graph& g = graph_of(op, {a, b});
  if (a.shape() != b.shape()) fail(op, "shapes " + a.shape().str() + " and " + b.shape().str() + " differ");
  Tensor out = g.new_tensor(a.shape());
  const size_t n = size_t(out.numel());
  const Tensor av = a.value(), bv = b.value();
  if (kind == 0) k::sub_fwd_ref<real>(out.data, av.data, bv.data, n);
  else k::mul_fwd_ref<real>(out.data, av.data, bv.data, n);
  const int aid = a.id, bid = b.id;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return g.record(out, ga || gb, [=, &g](const Tensor& go) {
    real* da = ga ? g.grad(aid).data : nullptr;
    real* db = gb ? g.grad(bid).data : nullptr;
    if (kind == 0) k::sub_bwd_ref<real>(da, db, go.data, n);
    else k::mul_bwd_ref<real>(da, db, go.data, av.data, bv.data, n);
  }, op);
}

Var sub(Var a, Var b) { return binary_same("sub", a, b, 0); }
Var mul(Var a, Var b) { return binary_same("mul", a, b, 1); }

static Var affine(const char* op, Var x, real s, real c) {
  Graph& g = graph_of(op, {x});
  Tensor out = g.new_tensor(x.shape());
  const size_t n = size_t(out.numel());
  k::affine_fwd_ref<real>(out.data, x.data(), s, c, n);
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    k::affine_bwd_ref<real>(g.grad(xid).data, go.data, s, n);
  }, op);
}

Var scale(Var x, real s) { return affine("scale", x, s, real(0)); }
Var add_scalar(Var x, real s) { return affine("add_scalar", x, real(1), s); }

Var sum(Var x) {
  Graph& g = graph_of("sum", {x});
  Tensor out = g.new_tensor({1});
  const int64_t n = x.value().numel();
  double acc = 0;  // double accumulation: sums of a whole batch
  for (int64_t i = 0; i < n; ++i) acc += x.data()[i];
  out.data[0] = real(acc);
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    real* dx = g.grad(xid).data;
    for (int64_t i = 0; i < n; ++i) dx[i] += go.data[0];
  }, "sum");
}

Var mean(Var x) { return scale(sum(x), real(1) / real(std::max<int64_t>(x.value().numel(), 1))); }

Var sum_axis(Var x, int axis) {
  const char* op = "sum_axis";
  Graph& g = graph_of(op, {x});
  const int a = norm_axis(op, axis, x.shape().ndim);
  int64_t outer, len, inner;
  split_axis(x.shape(), a, outer, len, inner);
  Shape os;
  for (int i = 0; i < x.shape().ndim; ++i)
    if (i != a) os.d[os.ndim++] = x.shape()[i];
  if (os.ndim == 0) os = Shape{1};
  Tensor out = g.new_tensor(os);
  k::sum_axis_fwd_ref<real>(out.data, x.data(), size_t(outer), size_t(len), size_t(inner));
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    k::sum_axis_bwd_ref<real>(g.grad(xid).data, go.data, size_t(outer), size_t(len), size_t(inner));
  }, op);
}

Var mean_axis(Var x, int axis) {
  const int a = norm_axis("mean_axis", axis, x.shape().ndim);
  return scale(sum_axis(x, a), real(1) / real(std::max<int64_t>(x.shape()[a], 1)));
}

// ---------------------------------------------------------------------------------------
// Losses

namespace {
// The regression losses share one shape: kernels/loss.h gives the value and derivative of
// each element's loss of d = pred - target; the op averages over elements.
Var pointwise_loss(const char* op, Var pred, Var target, int kind, double delta) {
  Graph& g = graph_of(op, {pred, target});
  if (pred.shape().numel() != target.shape().numel())
    fail(op, "prediction " + pred.shape().str() + " and target " + target.shape().str() + " differ in size");
  const int64_t n = pred.value().numel();
  if (n == 0) fail(op, "empty input");
  Tensor out = g.new_tensor({1});
  const Tensor pv = pred.value(), tv = target.value();
  out.data[0] = real(k::loss_sum_ref<real>(kind, pv.data, tv.data, size_t(n), delta) / double(n));
  const int pid = pred.id, tid = target.id;
  const bool gp = pred.requires_grad(), gt = target.requires_grad();
  return g.record(out, gp || gt, [=, &g](const Tensor& go) {
    k::loss_bwd_ref<real>(gp ? g.grad(pid).data : nullptr, gt ? g.grad(tid).data : nullptr, kind, pv.data, tv.data,
                          size_t(n), delta, go.data[0] / real(n));
  }, op);
}
}  // namespace

Var l1_loss(Var pred, Var target) { return pointwise_loss("l1_loss", pred, target, k::LOSS_L1, 1); }
Var mse_loss(Var pred, Var target) { return pointwise_loss("mse_loss", pred, target, k::LOSS_MSE, 1); }
Var huber_loss(Var pred, Var target, real delta) {
  if (!(delta > 0)) fail("huber_loss", "delta must be > 0");
  return pointwise_loss("huber_loss", pred, target, k::LOSS_HUBER, double(delta));
}
Var log_cosh_loss(Var pred, Var target) { return pointwise_loss("log_cosh_loss", pred, target, k::LOSS_LOGCOSH, 1); }

Var soft_cross_entropy(Var logits, Var target_probs) {
  const char* op = "soft_cross_entropy";
  graph_of(op, {logits, target_probs});
  expect_ndim(op, "logits", logits, 2);
  if (logits.shape() != target_probs.shape())
    fail(op, "logits " + logits.shape().str() + " and target " + target_probs.shape().str() + " differ");
  const int64_t n = logits.shape()[0];
  // -sum(p * log_softmax(z)) / N
  return scale(sum(mul(target_probs, log_softmax(logits, -1))), real(-1) / real(n));
}

Var kl_div(Var log_q, Var p) {
  const char* op = "kl_div";
  Graph& g = graph_of(op, {log_q, p});
  expect_ndim(op, "log_q", log_q, 2);
  if (log_q.shape() != p.shape()) fail(op, "log_q " + log_q.shape().str() + " and p " + p.shape().str() + " differ");
  const int64_t n = log_q.shape()[0], m = log_q.value().numel();
  const Tensor lq = log_q.value(), pv = p.value();
  Tensor out = g.new_tensor({1});
  out.data[0] = real(k::kl_sum_ref<real>(lq.data, pv.data, size_t(m)) / double(n));
  const int qid = log_q.id, pid = p.id;
  const bool gq = log_q.requires_grad(), gp = p.requires_grad();
  return g.record(out, gq || gp, [=, &g](const Tensor& go) {
    k::kl_bwd_ref<real>(gq ? g.grad(qid).data : nullptr, gp ? g.grad(pid).data : nullptr, lq.data, pv.data, size_t(m),
                        go.data[0] / real(n));
  }, op);
}

}  // namespace pulsekd
