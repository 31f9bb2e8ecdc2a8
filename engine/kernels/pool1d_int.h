// Integer average pooling along time, channels-last, PyTorch semantics: pool1d.h's loop with
// the integer policy, whose mean (fixed_point.h, ArithInt::mean) keeps the input's scale and
// zero point and rounds the division to nearest, ties away from zero.
#pragma once
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/pool1d.h"

namespace pulsekd::kernels {

// out[t, c] = round(sum of in[t*stride + k, c] over the valid k < kernel / count): the float
// loop (pool1d.h) with the integer policy.
template <class T>  // int8_t or int16_t
void avgpool1d_fwd_int(T* out,        // (t_out, c)
                       const T* inp,  // (t_in, c)
                       int32_t t_in, int32_t c, const pool1d_params& p) {
  avgpool1d_fwd<ArithInt<T, T>>(out, inp, t_in, c, p);
}

}  // namespace pulsekd::kernels
