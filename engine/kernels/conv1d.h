// Reference 1-D convolution along time, channels-last. Used by float training (ArithFloat),
// gradient checks (double) and fixed-point MCU inference (integer policies).
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

struct conv1d_params {
  int32_t c_in;      // input channels
  int32_t c_out;     // output channels
  int32_t kernel;    // taps
  int32_t stride;
  int32_t pad;       // zeros on both ends
  int32_t dilation;
  int32_t groups;    // c_in and c_out divisible by groups; groups == c_in is depthwise
};

inline int32_t conv1d_out_len(int32_t t_in, const conv1d_params& p) {
  const int32_t span = p.dilation * (p.kernel - 1) + 1;
  const int32_t n = t_in + 2 * p.pad - span;
  return n < 0 ? 0 : n / p.stride + 1;
}

// out[t, co] = bias[co] + sum_{k, ci in group(co)} w[co, k, ci] * in[t*stride - pad + k*dil, g*cig + ci]
template <class A>
void conv1d_fwd_ref(typename A::out_t* out,          // (t_out, c_out)
                    const typename A::in_t* inp,     // (t_in, c_in)
                    const typename A::w_t* w,        // (c_out, kernel, c_in / groups)
                    const typename A::bias_t* bias,  // (c_out) or nullptr
                    int32_t t_in, const conv1d_params& p, const typename A::quant& q) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const int32_t cig = p.c_in / p.groups, cog = p.c_out / p.groups;
  for (int32_t t = 0; t < t_out; ++t) {
    for (int32_t co = 0; co < p.c_out; ++co) {
      const int32_t g = co / cog;
      typename A::acc_t acc = A::bias(bias, co);
      for (int32_t k = 0; k < p.kernel; ++k) {
        const int32_t ti = t * p.stride - p.pad + k * p.dilation;
        const typename A::w_t* wk = w + ((size_t)co * p.kernel + k) * cig;
        if (ti < 0 || ti >= t_in) {
          // Zero padding in real values; integer policies pad with the input zero point.
          const typename A::in_t z = A::zero_input(q);
          for (int32_t ci = 0; ci < cig; ++ci) acc = A::mac(acc, z, wk[ci]);
          continue;
        }
        const typename A::in_t* x = inp + (size_t)ti * p.c_in + (size_t)g * cig;
        for (int32_t ci = 0; ci < cig; ++ci) acc = A::mac(acc, x[ci], wk[ci]);
      }
      out[(size_t)t * p.c_out + co] = A::finish(acc, co, q);
    }
  }
}

// Forward computed out = conv(inp, w) + bias. Adds d(loss)/d(inp) into grad_in.
template <class T>
void conv1d_bwd_data_ref(T* grad_in,          // (t_in, c_in), accumulated
                         const T* grad_out,   // (t_out, c_out)
                         const T* w,          // (c_out, kernel, c_in / groups)
                         int32_t t_in, const conv1d_params& p) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const int32_t cig = p.c_in / p.groups, cog = p.c_out / p.groups;
  for (int32_t t = 0; t < t_out; ++t)
    for (int32_t co = 0; co < p.c_out; ++co) {
      const T go = grad_out[(size_t)t * p.c_out + co];
      const int32_t g = co / cog;
      for (int32_t k = 0; k < p.kernel; ++k) {
        const int32_t ti = t * p.stride - p.pad + k * p.dilation;
        if (ti < 0 || ti >= t_in) continue;
        const T* wk = w + ((size_t)co * p.kernel + k) * cig;
        T* gi = grad_in + (size_t)ti * p.c_in + (size_t)g * cig;
        for (int32_t ci = 0; ci < cig; ++ci) gi[ci] += go * wk[ci];
      }
    }
}

// Adds d(loss)/d(w) into grad_w and d(loss)/d(bias) into grad_b (if not null).
template <class T>
void conv1d_bwd_weight_ref(T* grad_w,          // (c_out, kernel, c_in / groups), accumulated
                           T* grad_b,          // (c_out) or nullptr, accumulated
                           const T* grad_out,  // (t_out, c_out)
                           const T* inp,       // (t_in, c_in)
                           int32_t t_in, const conv1d_params& p) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const int32_t cig = p.c_in / p.groups, cog = p.c_out / p.groups;
  for (int32_t t = 0; t < t_out; ++t)
    for (int32_t co = 0; co < p.c_out; ++co) {
      const T go = grad_out[(size_t)t * p.c_out + co];
      if (grad_b) grad_b[co] += go;
      const int32_t g = co / cog;
      for (int32_t k = 0; k < p.kernel; ++k) {
        const int32_t ti = t * p.stride - p.pad + k * p.dilation;
        if (ti < 0 || ti >= t_in) continue;
        const T* x = inp + (size_t)ti * p.c_in + (size_t)g * cig;
        T* gw = grad_w + ((size_t)co * p.kernel + k) * cig;
        for (int32_t ci = 0; ci < cig; ++ci) gw[ci] += go * x[ci];
      }
    }
}

}  // namespace pulsekd::kernels
