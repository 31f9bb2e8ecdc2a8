// The PULSE student's "modality-wise" convolution: a kernel spanning all R modality rows and
// all channels at one time step (PyTorch Conv2d with kernel (R, 1) on [B, C, R, T]).
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

struct modality_conv_params {
  int32_t rows;   // R, modality rows mixed together
  int32_t t;      // time steps (unchanged)
  int32_t c_in;
  int32_t c_out;
};

// out[t, co] = bias[co] + sum_{r, ci} w[co, r, ci] * in[r, t, ci]
template <class A>
void modality_conv_fwd_ref(typename A::out_t* out,          // (t, c_out)
                           const typename A::in_t* inp,     // (rows, t, c_in)
                           const typename A::w_t* w,        // (c_out, rows, c_in)
                           const typename A::bias_t* bias,  // (c_out) or nullptr
                           const modality_conv_params& p, const typename A::quant& q) {
  for (int32_t t = 0; t < p.t; ++t)
    for (int32_t co = 0; co < p.c_out; ++co) {
      typename A::acc_t acc = A::bias(bias, co);
      for (int32_t r = 0; r < p.rows; ++r) {
        const typename A::in_t* x = inp + ((size_t)r * p.t + t) * p.c_in;
        const typename A::w_t* wr = w + ((size_t)co * p.rows + r) * p.c_in;
        for (int32_t ci = 0; ci < p.c_in; ++ci) acc = A::mac(acc, x[ci], wr[ci]);
      }
      out[(size_t)t * p.c_out + co] = A::finish(acc, co, q);
    }
}

template <class T>
void modality_conv_bwd_data_ref(T* grad_in,         // (rows, t, c_in), accumulated
                                const T* grad_out,  // (t, c_out)
                                const T* w,         // (c_out, rows, c_in)
                                const modality_conv_params& p) {
  for (int32_t t = 0; t < p.t; ++t)
    for (int32_t co = 0; co < p.c_out; ++co) {
      const T go = grad_out[(size_t)t * p.c_out + co];
      for (int32_t r = 0; r < p.rows; ++r) {
        T* gi = grad_in + ((size_t)r * p.t + t) * p.c_in;
        const T* wr = w + ((size_t)co * p.rows + r) * p.c_in;
        for (int32_t ci = 0; ci < p.c_in; ++ci) gi[ci] += go * wr[ci];
      }
    }
}

template <class T>
void modality_conv_bwd_weight_ref(T* grad_w,         // (c_out, rows, c_in), accumulated
                                  T* grad_b,         // (c_out) or nullptr, accumulated
                                  const T* grad_out, // (t, c_out)
                                  const T* inp,      // (rows, t, c_in)
                                  const modality_conv_params& p) {
  for (int32_t t = 0; t < p.t; ++t)
    for (int32_t co = 0; co < p.c_out; ++co) {
      const T go = grad_out[(size_t)t * p.c_out + co];
      if (grad_b) grad_b[co] += go;
      for (int32_t r = 0; r < p.rows; ++r) {
        const T* x = inp + ((size_t)r * p.t + t) * p.c_in;
        T* gw = grad_w + ((size_t)co * p.rows + r) * p.c_in;
        for (int32_t ci = 0; ci < p.c_in; ++ci) gw[ci] += go * x[ci];
      }
    }
}

}  // namespace pulsekd::kernels
