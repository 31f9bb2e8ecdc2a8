// Reference fully-connected layer and batched matrix product. The host engine uses OpenBLAS
// for speed; these loops are the definition it is tested against and what the MCU runs.
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

// out[n, o] = bias[o] + sum_i w[o, i] * in[n, i]   (PyTorch nn.Linear layout)
template <class A>
void linear_fwd_ref(typename A::out_t* out,          // (n, out_f)
                    const typename A::in_t* inp,     // (n, in_f)
                    const typename A::w_t* w,        // (out_f, in_f)
                    const typename A::bias_t* bias,  // (out_f) or nullptr
                    int32_t n, int32_t in_f, int32_t out_f, const typename A::quant& q) {
  for (int32_t r = 0; r < n; ++r)
    for (int32_t o = 0; o < out_f; ++o) {
      typename A::acc_t acc = A::bias(bias, o);
      const typename A::in_t* x = inp + (size_t)r * in_f;
      const typename A::w_t* wo = w + (size_t)o * in_f;
      for (int32_t i = 0; i < in_f; ++i) acc = A::mac(acc, x[i], wo[i]);
      out[(size_t)r * out_f + o] = A::finish(acc, o, q);
    }
}

// c[m, n] (+)= sum_k a[m, k] * b[k, n], with either operand optionally transposed in memory:
// a is (m, k) or, with trans_a, stored (k, m); b is (k, n) or, with trans_b, stored (n, k).
template <class T>
void matmul_ref(T* c, const T* a, const T* b, int32_t m, int32_t n, int32_t k,
                int32_t trans_a, int32_t trans_b, int32_t accumulate) {
  for (int32_t i = 0; i < m; ++i)
    for (int32_t j = 0; j < n; ++j) {
      T acc = T(0);
      for (int32_t p = 0; p < k; ++p) {
        const T av = trans_a ? a[(size_t)p * m + i] : a[(size_t)i * k + p];
        const T bv = trans_b ? b[(size_t)j * k + p] : b[(size_t)p * n + j];
        acc += av * bv;
      }
      c[(size_t)i * n + j] = accumulate ? c[(size_t)i * n + j] + acc : acc;
    }
}

}  // namespace pulsekd::kernels
