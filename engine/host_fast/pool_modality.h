// Host fast paths (any ISA: plain C++ the compiler vectorises) of the pooling and modality-conv
// reference loops (engine/kernels/pool1d.h,
// modality_conv.h) for float training. Each does the same arithmetic on every element in the
// same order as its reference, so the results are bit-identical (tests/test_kernels.cpp checks
// it); only the loop order changes, channels innermost and contiguous, so the compiler can
// vectorise what the references, written one output element at a time, keep scalar.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d.h"

namespace pulsekd::fast {

// = kernels::avgpool1d_fwd_ref: the window's rows summed in order from 0, then divided.
template <class T>
void avgpool1d_fwd(T* out,        // (t_out, c)
                   const T* inp,  // (t_in, c)
                   int32_t t_in, int32_t c, const kernels::pool1d_params& p) {
  const int32_t t_out = kernels::pool1d_out_len(t_in, p);
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t s = t * p.stride, e = s + p.kernel < t_in ? s + p.kernel : t_in;
    T* o = out + size_t(t) * c;
    for (int32_t ch = 0; ch < c; ++ch) o[ch] = T(0);
    for (int32_t i = s; i < e; ++i) {
      const T* x = inp + size_t(i) * c;
      for (int32_t ch = 0; ch < c; ++ch) o[ch] += x[ch];
    }
    const T len = T(e - s);
    for (int32_t ch = 0; ch < c; ++ch) o[ch] /= len;
  }
}

// = kernels::avgpool1d_bwd_ref: grad_in[i] += grad_out[t] / len for every row i of window t.
template <class T>
void avgpool1d_bwd(T* grad_in,         // (t_in, c), accumulated
                   const T* grad_out,  // (t_out, c)
                   int32_t t_in, int32_t c, const kernels::pool1d_params& p) {
  const int32_t t_out = kernels::pool1d_out_len(t_in, p);
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t s = t * p.stride, e = s + p.kernel < t_in ? s + p.kernel : t_in;
    const T len = T(e - s);
    const T* go = grad_out + size_t(t) * c;
    for (int32_t i = s; i < e; ++i) {
      T* gi = grad_in + size_t(i) * c;
      for (int32_t ch = 0; ch < c; ++ch) gi[ch] += go[ch] / len;
    }
  }
}

// Weights (c_out, rows, c_in) -> (rows * c_in, c_out): what modality_conv_fwd reads.
template <class T>
std::vector<T> modality_weights_transposed(const T* w, const kernels::modality_conv_params& p) {
  const int32_t k = p.rows * p.c_in;
  std::vector<T> wt(size_t(k) * p.c_out);
  for (int32_t co = 0; co < p.c_out; ++co)
    for (int32_t j = 0; j < k; ++j) wt[size_t(j) * p.c_out + co] = w[size_t(co) * k + j];
  return wt;
}

// = kernels::modality_conv_fwd_ref with float arithmetic: every output starts at its bias and
// adds w * x over (r, ci) in the reference's order, all output channels of a step at once.
template <class T>
void modality_conv_fwd(T* out,          // (t, c_out)
                       const T* inp,    // (rows, t, c_in)
                       const T* wt,     // (rows * c_in, c_out): modality_weights_transposed
                       const T* bias,   // (c_out) or nullptr
                       const kernels::modality_conv_params& p) {
  for (int32_t t = 0; t < p.t; ++t) {
    T* o = out + size_t(t) * p.c_out;
    for (int32_t co = 0; co < p.c_out; ++co) o[co] = bias ? bias[co] : T(0);
    for (int32_t r = 0; r < p.rows; ++r) {
      const T* x = inp + (size_t(r) * p.t + t) * p.c_in;
      for (int32_t ci = 0; ci < p.c_in; ++ci) {
        const T xv = x[ci];
        const T* wr = wt + (size_t(r) * p.c_in + ci) * p.c_out;
        for (int32_t co = 0; co < p.c_out; ++co) o[co] += wr[co] * xv;
      }
    }
  }
}

}  // namespace pulsekd::fast
