// Reference pointwise activations.
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

template <class T>
void relu_fwd_ref(T* out, const T* inp, size_t n) {  // out, inp: (n)
  for (size_t i = 0; i < n; ++i) out[i] = inp[i] > T(0) ? inp[i] : T(0);
}
// Forward computed out = max(inp, 0); the gradient passes where the output is positive.
template <class T>
void relu_bwd_ref(T* grad_in, const T* grad_out, const T* out, size_t n) {
  // Branch-free select: a data-dependent branch mispredicts on half of all activations.
  for (size_t i = 0; i < n; ++i) grad_in[i] += out[i] > T(0) ? grad_out[i] : T(0);
}

// Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), PyTorch's default.
template <class T>
void gelu_fwd_ref(T* out, const T* inp, size_t n) {
  for (size_t i = 0; i < n; ++i)
    out[i] = T(0.5) * inp[i] * (T(1) + k_erf(inp[i] * T(0.70710678118654752440)));
}
template <class T>
void gelu_bwd_ref(T* grad_in, const T* grad_out, const T* inp, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const T x = inp[i];
    const T cdf = T(0.5) * (T(1) + k_erf(x * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * k_exp(T(-0.5) * x * x);
    grad_in[i] += grad_out[i] * (cdf + x * pdf);
  }
}

}  // namespace pulsekd::kernels
