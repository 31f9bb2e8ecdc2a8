// Host integer simulation of a quantised model, bit-exact with the firmware.
#include "deploy/host_runtime.h"

#include <algorithm>

#include "deploy/calibrate.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d.h"
#include "engine/kernels/pool1d_int.h"

namespace pulsekd::deploy {

namespace k = pulsekd::kernels;

// ---------------------------------------------------------------------------------------
// Host integer simulation

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

}  // namespace pulsekd::deploy
