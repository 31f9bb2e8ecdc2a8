// Reference LayerNorm (over the last axis) and BatchNorm1d (per channel, channels-last).
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

// LayerNorm over each row of d values, in the arithmetic of the policy A: per row,
// typename A::Stats st = A::layernorm_stats(x, d, params), then y_i = A::layernorm_out(x_i, i, d,
// st, params); stats(r, st) receives each row's statistics (backward keeps them). Policies:
// FloatLayerNorm<T> below (training and the float reference) and attention.h's IntLayerNorm
// (the integer model; layernorm_fwd_int there).
template <class A, class StatsSink>
void layernorm_fwd(typename A::out_t* out,       // (rows, d)
                   const typename A::in_t* inp,  // (rows, d)
                   size_t rows, int32_t d, const typename A::Params& params, StatsSink stats) {
  for (size_t r = 0; r < rows; ++r) {
    const typename A::in_t* x = inp + r * d;
    const typename A::Stats st = A::layernorm_stats(x, d, params);
    typename A::out_t* y = out + r * d;
    for (int32_t i = 0; i < d; ++i) y[i] = A::layernorm_out(x[i], i, d, st, params);
    stats(r, st);
  }
}

// y = (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
template <class T>
struct FloatLayerNorm {
  using in_t = T;
  using out_t = T;
  struct Params {
    const T* gamma;  // (d) or nullptr
    const T* beta;   // (d) or nullptr
    T eps;
  };
  struct Stats {
    T mean, rstd;
  };
  static Stats layernorm_stats(const T* x, int32_t d, const Params& p) {
    T mean = T(0);
    for (int32_t i = 0; i < d; ++i) mean += x[i];
    mean /= T(d);
    T var = T(0);
    for (int32_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= T(d);
    return {mean, T(1) / k_sqrt(var + p.eps)};
  }
  static T layernorm_out(T x, int32_t i, int32_t /*d*/, const Stats& st, const Params& p) {
    const T xhat = (x - st.mean) * st.rstd;
    return xhat * (p.gamma ? p.gamma[i] : T(1)) + (p.beta ? p.beta[i] : T(0));
  }
};

// mean_out / rstd_out save per-row statistics for backward.
template <class T>
void layernorm_fwd_ref(T* out,             // (rows, d)
                       T* mean_out,        // (rows) or nullptr
                       T* rstd_out,        // (rows) or nullptr
                       const T* inp,       // (rows, d)
                       const T* gamma,     // (d) or nullptr
                       const T* beta,      // (d) or nullptr
                       size_t rows, int32_t d, T eps) {
  using A = FloatLayerNorm<T>;
  layernorm_fwd<A>(out, inp, rows, d, typename A::Params{gamma, beta, eps}, [&](size_t r, const typename A::Stats& st) {
    if (mean_out) mean_out[r] = st.mean;
    if (rstd_out) rstd_out[r] = st.rstd;
  });
}

// Standard LayerNorm backward: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
template <class T>
void layernorm_bwd_ref(T* grad_in,          // (rows, d), accumulated
                       T* grad_gamma,       // (d) or nullptr, accumulated
                       T* grad_beta,        // (d) or nullptr, accumulated
                       const T* grad_out,   // (rows, d)
                       const T* inp,        // (rows, d)
                       const T* gamma,      // (d) or nullptr
                       const T* mean,       // (rows)
                       const T* rstd,       // (rows)
                       size_t rows, int32_t d) {
  for (size_t r = 0; r < rows; ++r) {
    const T* x = inp + r * d;
    const T* dy = grad_out + r * d;
    T mean_g = T(0), mean_gx = T(0);
    for (int32_t i = 0; i < d; ++i) {
      const T xhat = (x[i] - mean[r]) * rstd[r];
      const T g = dy[i] * (gamma ? gamma[i] : T(1));
      mean_g += g;
      mean_gx += g * xhat;
      if (grad_gamma) grad_gamma[i] += dy[i] * xhat;
      if (grad_beta) grad_beta[i] += dy[i];
    }
    mean_g /= T(d);
    mean_gx /= T(d);
    if (!grad_in) continue;
    T* dx = grad_in + r * d;
    for (int32_t i = 0; i < d; ++i) {
      const T xhat = (x[i] - mean[r]) * rstd[r];
      const T g = dy[i] * (gamma ? gamma[i] : T(1));
      dx[i] += rstd[r] * (g - mean_g - xhat * mean_gx);
    }
  }
}

// BatchNorm over n positions of c channels. Training mode: batch statistics (biased variance
// for normalising; running stats updated with the unbiased one, momentum as in PyTorch).
// Eval mode: running statistics. mean_out / rstd_out save what backward needs.
template <class T>
void batchnorm_fwd_ref(T* out,              // (n, c)
                       T* mean_out,         // (c)
                       T* rstd_out,         // (c)
                       T* running_mean,     // (c) updated in training mode, or nullptr
                       T* running_var,      // (c) updated in training mode, or nullptr
                       const T* inp,        // (n, c)
                       const T* gamma,      // (c) or nullptr
                       const T* beta,       // (c) or nullptr
                       size_t n, int32_t c, int32_t training, T momentum, T eps) {
  for (int32_t ch = 0; ch < c; ++ch) {
    T mean, var;
    if (training) {
      mean = T(0);
      for (size_t i = 0; i < n; ++i) mean += inp[i * c + ch];
      mean /= T(n);
      var = T(0);
      for (size_t i = 0; i < n; ++i) var += (inp[i * c + ch] - mean) * (inp[i * c + ch] - mean);
      var /= T(n);
      if (running_mean) running_mean[ch] = (T(1) - momentum) * running_mean[ch] + momentum * mean;
      if (running_var && n > 1)
        running_var[ch] = (T(1) - momentum) * running_var[ch] + momentum * var * T(n) / T(n - 1);
    } else {
      mean = running_mean[ch];
      var = running_var[ch];
    }
    const T rstd = T(1) / k_sqrt(var + eps);
    mean_out[ch] = mean;
    rstd_out[ch] = rstd;
    const T g = gamma ? gamma[ch] : T(1), b = beta ? beta[ch] : T(0);
    for (size_t i = 0; i < n; ++i) out[i * c + ch] = (inp[i * c + ch] - mean) * rstd * g + b;
  }
}

// Backward of batchnorm_fwd_ref. In training mode the statistics depend on the input; in
// eval mode they are constants and the op is affine.
template <class T>
void batchnorm_bwd_ref(T* grad_in,          // (n, c), accumulated
                       T* grad_gamma,       // (c) or nullptr, accumulated
                       T* grad_beta,        // (c) or nullptr, accumulated
                       const T* grad_out,   // (n, c)
                       const T* inp,        // (n, c)
                       const T* gamma,      // (c) or nullptr
                       const T* mean,       // (c)
                       const T* rstd,       // (c)
                       size_t n, int32_t c, int32_t training) {
  for (int32_t ch = 0; ch < c; ++ch) {
    const T g = gamma ? gamma[ch] : T(1);
    T sum_dy = T(0), sum_dy_xhat = T(0);
    for (size_t i = 0; i < n; ++i) {
      const T xhat = (inp[i * c + ch] - mean[ch]) * rstd[ch];
      sum_dy += grad_out[i * c + ch];
      sum_dy_xhat += grad_out[i * c + ch] * xhat;
    }
    if (grad_gamma) grad_gamma[ch] += sum_dy_xhat;
    if (grad_beta) grad_beta[ch] += sum_dy;
    if (!grad_in) continue;
    for (size_t i = 0; i < n; ++i) {
      const T xhat = (inp[i * c + ch] - mean[ch]) * rstd[ch];
      T dx = grad_out[i * c + ch];
      if (training) dx -= (sum_dy + xhat * sum_dy_xhat) / T(n);
      grad_in[i * c + ch] += g * rstd[ch] * dx;
    }
  }
}

}  // namespace pulsekd::kernels
