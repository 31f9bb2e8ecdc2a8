// Per-channel int8 weight quantisation with error-compensating rounding (GPTQ, Frantar et al.
// 2023) and the Q31 requantisation multipliers.
#include "deploy/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace pulsekd::deploy {

// real multiplier m > 0 -> (M in [2^30, 2^31), shift) with m = M * 2^(shift - 31)
void quantize_multiplier(double m, int32_t& mult, int32_t& shift) {
  if (!(m > 0)) {
    mult = 0;
    shift = 0;
    return;
  }
  int e = 0;
  const double f = std::frexp(m, &e);  // m = f * 2^e, f in [0.5, 1)
  int64_t q = std::llround(f * double(int64_t(1) << 31));
  if (q == (int64_t(1) << 31)) {
    q /= 2;
    ++e;
  }
  if (e < -31) {  // underflow: the output is always the zero point
    mult = 0;
    shift = 0;
    return;
  }
  if (e > 30) throw std::runtime_error("quantize: requantisation multiplier too large (" + std::to_string(m) + ")");
  mult = int32_t(q);
  shift = e;
}

void Hess::add(const double* v) {
  if (h.empty()) h.assign(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i) {
    if (v[i] == 0) continue;
    const double vi = v[i];
    double* hi = h.data() + size_t(i) * d;
    for (int j = i; j < d; ++j) hi[j] += vi * v[j];
  }
  ++n;
}

// Upper Cholesky factor U of H^-1 (H damped by 1 % of its mean diagonal): H^-1 = U^T U.
static bool hinv_upper(const Hess& H, std::vector<double>& U) {
  const int d = H.d;
  std::vector<double> A(size_t(d) * d);
  double mean_diag = 0;
  for (int i = 0; i < d; ++i) mean_diag += H.h[size_t(i) * d + i];
  mean_diag /= d;
  const double damp = 0.01 * (mean_diag > 0 ? mean_diag : 1.0);
  for (int i = 0; i < d; ++i)
    for (int j = i; j < d; ++j) A[size_t(i) * d + j] = A[size_t(j) * d + i] = H.h[size_t(i) * d + j] + (i == j ? damp : 0.0);
  auto chol = [d](std::vector<double>& M) {  // in place, lower L with M = L L^T
    for (int j = 0; j < d; ++j) {
      double s = M[size_t(j) * d + j];
      for (int kk = 0; kk < j; ++kk) s -= M[size_t(j) * d + kk] * M[size_t(j) * d + kk];
      if (!(s > 0)) return false;
      const double l = std::sqrt(s);
      M[size_t(j) * d + j] = l;
      for (int i = j + 1; i < d; ++i) {
        double t = M[size_t(i) * d + j];
        for (int kk = 0; kk < j; ++kk) t -= M[size_t(i) * d + kk] * M[size_t(j) * d + kk];
        M[size_t(i) * d + j] = t / l;
      }
      for (int i = 0; i < j; ++i) M[size_t(i) * d + j] = 0;
    }
    return true;
  };
  if (!chol(A)) return false;
  // Inverse of L (lower), then H^-1 = L^-T L^-1.
  std::vector<double> Li(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i) {
    Li[size_t(i) * d + i] = 1.0 / A[size_t(i) * d + i];
    for (int j = 0; j < i; ++j) {
      double t = 0;
      for (int kk = j; kk < i; ++kk) t += A[size_t(i) * d + kk] * Li[size_t(kk) * d + j];
      Li[size_t(i) * d + j] = -t / A[size_t(i) * d + i];
    }
  }
  std::vector<double> Hi(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double t = 0;
      for (int kk = std::max(i, j); kk < d; ++kk) t += Li[size_t(kk) * d + i] * Li[size_t(kk) * d + j];
      Hi[size_t(i) * d + j] = t;
    }
  if (!chol(Hi)) return false;
  U.assign(size_t(d) * d, 0.0);  // U = L'^T where Hi = L' L'^T
  for (int i = 0; i < d; ++i)
    for (int j = i; j < d; ++j) U[size_t(i) * d + j] = Hi[size_t(j) * d + i];
  return true;
}

// Per-channel symmetric int8 weights, int32 bias with the input zero point folded in,
// requantisation to `out` (or raw accumulator when out.bits == 32). With H, the weights of
// each channel are rounded one by one and the rounding error of each is compensated on the
// ones not yet rounded, minimising the channel's output error on the calibration inputs
// (GPTQ, Frantar et al. 2023); the per-channel scale stays max|w| / 127.
// out_scales (c_out), if given, replaces L.out.scale per channel (the attention's in-projection
// writes q, k and v at three scales).
void quantize_weights(QLayer& L, const std::vector<float>& w_in /*(c_out, per_co)*/, const std::vector<float>& b /*(c_out)*/,
                      const Hess* H, const std::vector<double>* out_scales) {
  const int co_n = L.c_out;
  const size_t per = w_in.size() / size_t(co_n);
  std::vector<float> w(w_in);
  std::vector<double> U;
  const bool gptq = H && H->n > 0 && H->d == int(per) && hinv_upper(*H, U);
  if (gptq) {
    for (int co = 0; co < co_n; ++co) {
      float mx = 0;
      for (size_t i = 0; i < per; ++i) mx = std::max(mx, std::fabs(w[co * per + i]));
      if (!(mx > 0)) continue;
      const double sw = double(mx) / 127.0;
      std::vector<double> r(w.begin() + long(co * per), w.begin() + long((co + 1) * per));
      for (size_t i = 0; i < per; ++i) {
        const double qv = std::clamp(std::round(r[i] / sw), -127.0, 127.0) * sw;
        const double err = (r[i] - qv) / U[i * per + i];
        for (size_t j = i + 1; j < per; ++j) r[j] -= err * U[i * per + j];
        r[i] = qv;
      }
      for (size_t i = 0; i < per; ++i) w[co * per + i] = float(r[i]);
    }
  }
  L.w.assign(w.size(), 0);
  L.bias.assign(size_t(co_n), 0);
  L.w_scale.assign(size_t(co_n), 1.f);
  L.mult.clear();
  L.shift.clear();
  for (int co = 0; co < co_n; ++co) {
    float mx = 0;
    for (size_t i = 0; i < per; ++i) mx = std::max(mx, std::fabs(w_in[co * per + i]));
    const float sw = mx > 0 ? mx / 127.f : 1.f;
    L.w_scale[co] = sw;
    int64_t wsum = 0, wabs = 0;
    for (size_t i = 0; i < per; ++i) {
      const long q = std::lround(double(w[co * per + i]) / double(sw));
      L.w[co * per + i] = int8_t(std::clamp<long>(q, -127, 127));
      wsum += L.w[co * per + i];
      wabs += std::abs(int(L.w[co * per + i]));
    }
    const double sb = double(L.in.scale) * double(sw);
    const double bq = std::round(double(b[size_t(co)]) / sb);
    double folded = bq - double(L.in.zp) * double(wsum);
    // Overflow bound (fixed_point.h): every partial sum is bounded by
    // |folded bias| + sum_i |x_i||w_i| with |x_i| <= 2^(bits-1). A bias beyond what keeps the
    // bound (a channel whose bias dwarfs any input contribution, by 2^7 at least) is saturated
    // there; its output is then pinned to the same clamp in practice. Counted in bias_saturated.
    const double room = 2147483647.0 - double(wabs) * double(int64_t(1) << (L.in.bits - 1)) - 1.0;
    if (room < double(int64_t(1) << 24))
      throw std::runtime_error("quantize: layer " + L.name + " channel " + std::to_string(co) +
                               " could overflow its int32 accumulator (sum |w| = " + std::to_string(wabs) +
                               "); quantise its input tensor to int8 (--bits NAME=8)");
    if (std::fabs(folded) > room) {
      folded = folded > 0 ? room : -room;
      ++L.bias_saturated;
    }
    L.bias[co] = int32_t(folded);
    if (!L.raw_output()) {
      int32_t M, s;
      quantize_multiplier(sb / (out_scales ? (*out_scales)[size_t(co)] : double(L.out.scale)), M, s);
      L.mult.push_back(M);
      L.shift.push_back(s);
    }
  }
  if (L.raw_output()) {
    L.act_min = INT32_MIN;
    L.act_max = INT32_MAX;
  } else {
    L.act_min = L.relu ? std::max(L.out.zp, L.out.qmin()) : L.out.qmin();
    L.act_max = L.out.qmax();
  }
}

}  // namespace pulsekd::deploy
