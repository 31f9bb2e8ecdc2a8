// Host fast path, per ISA: softmax over the rows of a (rows, d) float array and its backward,
// vectorised along d, templated on the ISA traits of engine/host_fast/conv_direct_impl.h.
// Included ONLY by the per-ISA translation units (engine/host_fast/kernels_avx512.cpp,
// kernels_avx2.cpp); the same rules hold: no C++ standard library, everything static or a
// template over the TU-local traits. Reference: engine/kernels/softmax.h (same steps: subtract
// the row max, exp, sum, divide; the sums are vector partial sums, so results differ from it by
// float rounding only).
#pragma once
#include <xsimd/xsimd.hpp>

#include "engine/host_fast/isa.h"

namespace pulsekd::simd::impl {

template <class Tr>
static inline float hmax(const typename Tr::B& v) {
  alignas(64) float lanes[Tr::W];
  v.store_aligned(lanes);
  float m = lanes[0];
  for (int i = 1; i < Tr::W; ++i) m = lanes[i] > m ? lanes[i] : m;
  return m;
}

// y (rows, d) = softmax(x (rows, d)) along d.
template <class Tr>
void softmax_rows(float* y, const float* x, int64_t rows, int32_t d) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    int32_t i = 0;
    float m = xr[0];
    if (d >= W) {
      B mv = B::load_unaligned(xr);
      for (i = W; i + W <= d; i += W) {
        const B v = B::load_unaligned(xr + i);
        mv = xsimd::select(v > mv, v, mv);
      }
      m = hmax<Tr>(mv);
    }
    for (; i < d; ++i) m = xr[i] > m ? xr[i] : m;  // subtract the max: no overflow
    const B mb(m);
    B sv(0.f);
    for (i = 0; i + W <= d; i += W) {
      const B e = xsimd::exp(B::load_unaligned(xr + i) - mb);
      e.store_unaligned(yr + i);
      sv += e;
    }
    const int32_t tail = d - i;
    if (tail > 0) {
      const B e = xsimd::exp(Tr::loadn(xr + i, tail) - mb);
      Tr::storen(yr + i, e, tail);
      sv += Tr::loadn(yr + i, tail);  // the lanes past the row are not part of the sum
    }
    const B inv(1.f / xsimd::hadd(sv));
    for (i = 0; i + W <= d; i += W) (B::load_unaligned(yr + i) * inv).store_unaligned(yr + i);
    if (tail > 0) Tr::storen(yr + i, Tr::loadn(yr + i, tail) * inv, tail);
  }
}

// grad_x (rows, d) += y * (grad_y - sum(grad_y * y)) for y = softmax(x).
template <class Tr>
void softmax_bwd_rows(float* gx, const float* gy, const float* y, int64_t rows, int32_t d) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * d;
    const float* gr = gy + r * d;
    float* xr = gx + r * d;
    B dv(0.f);
    int32_t i = 0;
    for (; i + W <= d; i += W) dv += B::load_unaligned(gr + i) * B::load_unaligned(yr + i);
    const int32_t tail = d - i;
    if (tail > 0) dv += Tr::loadn(gr + i, tail) * Tr::loadn(yr + i, tail);
    const B dot(xsimd::hadd(dv));
    for (i = 0; i + W <= d; i += W) {
      const B g = B::load_unaligned(xr + i) + B::load_unaligned(yr + i) * (B::load_unaligned(gr + i) - dot);
      g.store_unaligned(xr + i);
    }
    if (tail > 0) Tr::storen(xr + i, Tr::loadn(xr + i, tail) + Tr::loadn(yr + i, tail) * (Tr::loadn(gr + i, tail) - dot), tail);
  }
}

}  // namespace pulsekd::simd::impl
