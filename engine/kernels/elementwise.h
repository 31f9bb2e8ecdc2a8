// Reference elementwise kernels and reductions (n values, contiguous).
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

// out = a + b, with b repeated every period values (period = n: same shape; = D: bias broadcast)
template <class T>
void add_fwd_ref(T* out, const T* a, const T* b, size_t n, size_t period) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i % period];
}
// Forward computed out = a + b (b broadcast with period): both gradients are grad_out.
template <class T>
void add_bwd_ref(T* grad_a, T* grad_b, const T* grad_out, size_t n, size_t period) {
  for (size_t i = 0; i < n; ++i) {
    if (grad_a) grad_a[i] += grad_out[i];
    if (grad_b) grad_b[i % period] += grad_out[i];
  }
}

template <class T>
void sub_fwd_ref(T* out, const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}
template <class T>
void sub_bwd_ref(T* grad_a, T* grad_b, const T* grad_out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (grad_a) grad_a[i] += grad_out[i];
    if (grad_b) grad_b[i] -= grad_out[i];
  }
}

template <class T>
void mul_fwd_ref(T* out, const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
// Forward computed out = a * b: d/da = grad_out * b, d/db = grad_out * a.
template <class T>
void mul_bwd_ref(T* grad_a, T* grad_b, const T* grad_out, const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (grad_a) grad_a[i] += grad_out[i] * b[i];
    if (grad_b) grad_b[i] += grad_out[i] * a[i];
  }
}

// out = x * s + c (scale and add_scalar)
template <class T>
void affine_fwd_ref(T* out, const T* x, T s, T c, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * s + c;
}
template <class T>
void affine_bwd_ref(T* grad_x, const T* grad_out, T s, size_t n) {
  for (size_t i = 0; i < n; ++i) grad_x[i] += grad_out[i] * s;
}

// Sum over the middle axis of an (outer, len, inner) array: out (outer, inner).
template <class T>
void sum_axis_fwd_ref(T* out, const T* x, size_t outer, size_t len, size_t inner) {
  for (size_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < inner; ++i) {
      T acc = T(0);
      for (size_t l = 0; l < len; ++l) acc += x[(o * len + l) * inner + i];
      out[o * inner + i] = acc;
    }
}
template <class T>
void sum_axis_bwd_ref(T* grad_x, const T* grad_out, size_t outer, size_t len, size_t inner) {
  for (size_t o = 0; o < outer; ++o)
    for (size_t l = 0; l < len; ++l)
      for (size_t i = 0; i < inner; ++i) grad_x[(o * len + l) * inner + i] += grad_out[o * inner + i];
}

// Inverted dropout with a precomputed mask (0 or 1/(1-p) per element).
template <class T>
void dropout_fwd_ref(T* out, const T* x, const T* mask, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * mask[i];
}
template <class T>
void dropout_bwd_ref(T* grad_x, const T* grad_out, const T* mask, size_t n) {
  for (size_t i = 0; i < n; ++i) grad_x[i] += grad_out[i] * mask[i];
}

}  // namespace pulsekd::kernels
