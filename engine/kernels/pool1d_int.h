// Integer average pooling along time, channels-last, PyTorch semantics (pool1d.h): the
// output shares the input's scale and zero point, since the mean of quantised values
// q = zp + x/s is zp + mean(x)/s. The only approximation is the division, which rounds to
// nearest with ties away from zero (fp_div_round). Sums: k * 32,768 < 2^31 for any k < 65,536.
#pragma once
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/pool1d.h"

namespace pulsekd::kernels {

// out[t, c] = round(sum of in[t*stride + k, c] over the valid k < kernel / count)
template <class T>  // int8_t or int16_t
void avgpool1d_fwd_int(T* out,        // (t_out, c)
                       const T* inp,  // (t_in, c)
                       int32_t t_in, int32_t c, const pool1d_params& p) {
  const int32_t t_out = pool1d_out_len(t_in, p);
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t s = t * p.stride, e = k_min(s + p.kernel, t_in);
    for (int32_t ch = 0; ch < c; ++ch) {
      int32_t acc = 0;
      for (int32_t i = s; i < e; ++i) acc += inp[(size_t)i * c + ch];
      out[(size_t)t * c + ch] = (T)fp_div_round(acc, e - s);
    }
  }
}

}  // namespace pulsekd::kernels
