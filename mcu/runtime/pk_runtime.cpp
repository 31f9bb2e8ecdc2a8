// Interpreter of the static layer schedule: every layer is one of the shared reference loops
// (engine/kernels) instantiated with the integer policies, or its DSP variant (int_dsp.h)
// when PK_USE_DSP is set and the shapes allow it. No heap, no exceptions, no STL.
#include "pk_model.h"

#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/int_dsp.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d_int.h"

namespace k = pulsekd::kernels;

extern "C" __attribute__((noinline)) void pk_mark(int32_t i) { __asm__ volatile("" ::"r"(i) : "memory"); }

namespace {

template <class In, class Out>
void run_t(const pk_layer& L, const uint8_t* x, uint8_t* y) {
  const k::requant_params q{L.in_zp, L.out_zp, L.mult, L.shift, L.act_min, L.act_max};
  const In* xi = reinterpret_cast<const In*>(x);
  Out* yo = reinterpret_cast<Out*>(y);
  switch (L.op) {
    case PK_CONV: {
      const k::conv1d_params p{L.c_in, L.c_out, L.kernel, 1, L.pad, L.dilation, 1};
#if PK_USE_DSP
      if constexpr (sizeof(In) == 1)
        if (L.c_in % 4 == 0) {
          k::conv1d_s8_dsp<Out>(yo, xi, L.w, L.bias, L.t_in, p, q);
          return;
        }
#endif
      k::conv1d_fwd_ref<k::ArithInt<In, Out>>(yo, xi, L.w, L.bias, L.t_in, p, q);
      return;
    }
    case PK_MODALITY: {
      const k::modality_conv_params p{L.rows, L.t_in, L.c_in, L.c_out};
#if PK_USE_DSP
      if constexpr (sizeof(In) == 1)
        if (L.c_in % 4 == 0) {
          k::modality_conv_s8_dsp<Out>(yo, xi, L.w, L.bias, p, q);
          return;
        }
#endif
      k::modality_conv_fwd_ref<k::ArithInt<In, Out>>(yo, xi, L.w, L.bias, p, q);
      return;
    }
    case PK_LINEAR: {
#if PK_USE_DSP
      if constexpr (sizeof(In) == 1)
        if (L.c_in % 4 == 0) {
          k::linear_s8_dsp<Out>(yo, xi, L.w, L.bias, 1, L.c_in, L.c_out, q);
          return;
        }
#endif
      k::linear_fwd_ref<k::ArithInt<In, Out>>(yo, xi, L.w, L.bias, 1, L.c_in, L.c_out, q);
      return;
    }
    default:
      return;
  }
}

template <class In>
void run_in(const pk_layer& L, const uint8_t* x, uint8_t* y) {
  if (L.op == PK_AVGPOOL) {
    k::avgpool1d_fwd_int<In>(reinterpret_cast<In*>(y), reinterpret_cast<const In*>(x), L.t_in, L.c_in,
                             k::pool1d_params{L.pool, L.pool, 1});
    return;
  }
  if (L.out_bits == 8) run_t<In, int8_t>(L, x, y);
  else if (L.out_bits == 16) run_t<In, int16_t>(L, x, y);
  else run_t<In, int32_t>(L, x, y);
}

void run_layer(const pk_layer& L, uint32_t out_extra) {
  const uint8_t* x = pk_arena + L.in_off;
  uint8_t* y = pk_arena + L.out_off + out_extra;
  if (L.in_bits == 8) run_in<int8_t>(L, x, y);
  else run_in<int16_t>(L, x, y);
}

}  // namespace

extern "C" int32_t pk_infer(const int16_t* window) {
  const pk_model& m = pk_the_model;
  const pk_layer& first = m.layers[0];
  for (int32_t r = 0; r < m.rows; ++r) {
    const int16_t* xr = window + r * first.t_in;
    if (m.input_bits == 8) {
      int8_t* d = reinterpret_cast<int8_t*>(pk_arena + first.in_off);
      for (int32_t t = 0; t < first.t_in; ++t) d[t] = (int8_t)xr[t];
    } else {
      int16_t* d = reinterpret_cast<int16_t*>(pk_arena + first.in_off);
      for (int32_t t = 0; t < first.t_in; ++t) d[t] = xr[t];
    }
    for (int32_t l = 0; l < m.row_layers; ++l) {
      pk_mark(l);
      run_layer(m.layers[l], l == m.row_layers - 1 ? (uint32_t)r * m.row_out_bytes : 0u);
    }
  }
  for (int32_t l = m.row_layers; l < m.n_layers; ++l) {
    pk_mark(l);
    run_layer(m.layers[l], 0);
  }
  pk_mark(m.n_layers);
  int32_t v;
  __builtin_memcpy(&v, pk_arena + m.layers[m.n_layers - 1].out_off, 4);
  return v;
}
