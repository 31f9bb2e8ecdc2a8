// Reference 1-D average and max pooling along time, channels-last, PyTorch semantics
// (no padding; ceil mode lets a last, partial window in, averaged over its valid samples).
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

struct pool1d_params {
  int32_t kernel;
  int32_t stride;
  int32_t ceil_mode;  // 0 floor, 1 ceil (a window must still start inside the input)
};

inline int32_t pool1d_out_len(int32_t t_in, const pool1d_params& p) {
  if (t_in < p.kernel && !p.ceil_mode) return 0;
  const int32_t span = t_in - p.kernel;
  int32_t n;
  if (p.ceil_mode) {
    n = (span > 0 ? (span + p.stride - 1) / p.stride : 0) + 1;
    if ((n - 1) * p.stride >= t_in) --n;  // PyTorch: the last window must start inside
  } else {
    n = span / p.stride + 1;
  }
  return n;
}

// out[t, c] = mean of in[t*stride + k, c] over the valid k < kernel, in the arithmetic of the
// policy A: ArithFloat<T> (kmath.h) for training and the float reference, ArithInt<T, T>
// (fixed_point.h) for the integer model (pool1d_int.h).
template <class A>
void avgpool1d_fwd(typename A::out_t* out,       // (t_out, c)
                   const typename A::in_t* inp,  // (t_in, c)
                   int32_t t_in, int32_t c, const pool1d_params& p) {
  const int32_t t_out = pool1d_out_len(t_in, p);
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t s = t * p.stride, e = k_min(s + p.kernel, t_in);
    for (int32_t ch = 0; ch < c; ++ch) {
      typename A::acc_t acc = 0;
      for (int32_t i = s; i < e; ++i) acc += inp[(size_t)i * c + ch];
      out[(size_t)t * c + ch] = A::mean(acc, e - s);
    }
  }
}

template <class T>
void avgpool1d_fwd_ref(T* out,        // (t_out, c)
                       const T* inp,  // (t_in, c)
                       int32_t t_in, int32_t c, const pool1d_params& p) {
  avgpool1d_fwd<ArithFloat<T>>(out, inp, t_in, c, p);
}

template <class T>
void avgpool1d_bwd_ref(T* grad_in,         // (t_in, c), accumulated
                       const T* grad_out,  // (t_out, c)
                       int32_t t_in, int32_t c, const pool1d_params& p) {
  const int32_t t_out = pool1d_out_len(t_in, p);
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t s = t * p.stride, e = k_min(s + p.kernel, t_in);
    for (int32_t ch = 0; ch < c; ++ch) {
      const T g = grad_out[(size_t)t * c + ch] / T(e - s);
      for (int32_t i = s; i < e; ++i) grad_in[(size_t)i * c + ch] += g;
    }
  }
}

// out[t, c] = max over the window; argmax[t, c] records the winning input index for backward.
template <class T>
void maxpool1d_fwd_ref(T* out,            // (t_out, c)
                       int32_t* argmax,   // (t_out, c) or nullptr
                       const T* inp,      // (t_in, c)
                       int32_t t_in, int32_t c, const pool1d_params& p) {
  const int32_t t_out = pool1d_out_len(t_in, p);
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t s = t * p.stride, e = k_min(s + p.kernel, t_in);
    for (int32_t ch = 0; ch < c; ++ch) {
      int32_t best = s;
      for (int32_t i = s + 1; i < e; ++i)
        if (inp[(size_t)i * c + ch] > inp[(size_t)best * c + ch]) best = i;
      out[(size_t)t * c + ch] = inp[(size_t)best * c + ch];
      if (argmax) argmax[(size_t)t * c + ch] = best;
    }
  }
}

template <class T>
void maxpool1d_bwd_ref(T* grad_in,             // (t_in, c), accumulated
                       const T* grad_out,      // (t_out, c)
                       const int32_t* argmax,  // (t_out, c) from the forward
                       int32_t t_out, int32_t c) {
  for (int32_t t = 0; t < t_out; ++t)
    for (int32_t ch = 0; ch < c; ++ch)
      grad_in[(size_t)argmax[(size_t)t * c + ch] * c + ch] += grad_out[(size_t)t * c + ch];
}

}  // namespace pulsekd::kernels
