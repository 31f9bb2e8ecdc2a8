// Reference softmax / log-softmax over the last axis of a (rows, d) array.
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

template <class T>
void softmax_fwd_ref(T* out, const T* inp, size_t rows, int32_t d) {  // (rows, d) both
  for (size_t r = 0; r < rows; ++r) {
    const T* x = inp + r * d;
    T* y = out + r * d;
    T m = x[0];
    for (int32_t i = 1; i < d; ++i) m = k_max(m, x[i]);  // subtract the max: no overflow
    T s = T(0);
    for (int32_t i = 0; i < d; ++i) s += (y[i] = k_exp(x[i] - m));
    for (int32_t i = 0; i < d; ++i) y[i] /= s;
  }
}
// Forward computed y = softmax(x): dx = y * (dy - sum(dy * y)).
template <class T>
void softmax_bwd_ref(T* grad_in, const T* grad_out, const T* out, size_t rows, int32_t d) {
  for (size_t r = 0; r < rows; ++r) {
    const T* y = out + r * d;
    const T* dy = grad_out + r * d;
    T dot = T(0);
    for (int32_t i = 0; i < d; ++i) dot += dy[i] * y[i];
    for (int32_t i = 0; i < d; ++i) grad_in[r * d + i] += y[i] * (dy[i] - dot);
  }
}

template <class T>
void log_softmax_fwd_ref(T* out, const T* inp, size_t rows, int32_t d) {  // (rows, d) both
  for (size_t r = 0; r < rows; ++r) {
    const T* x = inp + r * d;
    T m = x[0];
    for (int32_t i = 1; i < d; ++i) m = k_max(m, x[i]);
    T s = T(0);
    for (int32_t i = 0; i < d; ++i) s += k_exp(x[i] - m);
    const T lse = m + k_log(s);
    for (int32_t i = 0; i < d; ++i) out[r * d + i] = x[i] - lse;
  }
}
// Forward computed y = x - logsumexp(x): dx = dy - softmax(x) * sum(dy).
template <class T>
void log_softmax_bwd_ref(T* grad_in, const T* grad_out, const T* out, size_t rows, int32_t d) {
  for (size_t r = 0; r < rows; ++r) {
    const T* y = out + r * d;
    const T* dy = grad_out + r * d;
    T s = T(0);
    for (int32_t i = 0; i < d; ++i) s += dy[i];
    for (int32_t i = 0; i < d; ++i) grad_in[r * d + i] += dy[i] - k_exp(y[i]) * s;
  }
}

}  // namespace pulsekd::kernels
