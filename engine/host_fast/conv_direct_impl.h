// Host fast path, per ISA: the register-blocked direct conv1d kernels declared in
// engine/host_fast/isa.h, templated on an ISA traits struct. Included ONLY by the per-ISA
// translation units (engine/host_fast/kernels_avx512.cpp, kernels_avx2.cpp), which are compiled
// with their ISA flags; they must not use the C++ standard library (its inline functions would
// be emitted with those flags and could be picked by the linker for the rest of the program).
//
// Traits (struct Tr):
//   using B = xsimd::batch<float, Arch>;  static constexpr int W = B::size;
//   static B loadn(const float* p, int n);         // lanes [0, n) from p, the rest 0
//   using Mask; static Mask mask(int n);           // the lane mask loadm takes: lanes [0, n)
//   static B loadm(const float* p, Mask m);        // masked load, the rest 0
//   static B relu(const B& v);                     // v > 0 ? v : 0 per lane
//   static void storen(float* p, const B& v, int n); // lanes [0, n) to p
//   static constexpr int NVMAX;                     // widest output-channel block (vectors)
//   template <int NV> static constexpr int TB;      // time steps per forward register tile
//   template <int NV> static constexpr int CB;      // input channels per weight-grad tile
#pragma once
#include <xsimd/xsimd.hpp>

#include "engine/host_fast/isa.h"

namespace pulsekd::simd::impl {

// Everything here is static or a template over the (TU-local) traits: no symbol may be shared
// between the two ISA translation units or with the rest of the program.
static inline int32_t imin(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t imax(int32_t a, int32_t b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------
// Forward: a tile of TB output steps x NV vectors of output channels, starting at step t0 and
// channel cob; `last` = valid lanes of vector NV-1. xt0 points at the input row of the first
// tap of step t0; every tap must be readable (edges run on a zero-padded copy, see below).
template <class Tr, int NV, int TB>
inline void fwd_tile(const DirectFwd& a, const float* xt0, float* out, int32_t t0, int32_t cob, int last) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  B acc[TB][NV];
  for (int tb = 0; tb < TB; ++tb)
    for (int v = 0; v < NV; ++v) {
      float* o = out + int64_t(t0 + tb) * a.c_out + cob + v * W;
      const int n = v == NV - 1 ? last : W;
      if (a.accumulate) acc[tb][v] = n == W ? B::load_unaligned(o) : Tr::loadn(o, n);
      else if (a.bias) acc[tb][v] = B::load_unaligned(a.bias + cob + v * W);
      else acc[tb][v] = B(0.f);
    }
  const int64_t cop = a.c_out_pad, ci_n = a.c_in;
  const int64_t xs = int64_t(a.stride) * ci_n, xd = int64_t(a.dilation) * ci_n;
  for (int32_t k = 0; k < a.kernel; ++k) {
    const float* xk = xt0 + k * xd;
    const float* wk = a.wt + int64_t(k) * ci_n * cop + cob;
    for (int64_t ci = 0; ci < ci_n; ++ci) {
      B wv[NV];
      for (int v = 0; v < NV; ++v) wv[v] = B::load_unaligned(wk + ci * cop + v * W);
      for (int tb = 0; tb < TB; ++tb) {
        const B xb(xk[tb * xs + ci]);
        for (int v = 0; v < NV; ++v) acc[tb][v] = xsimd::fma(xb, wv[v], acc[tb][v]);
      }
    }
  }
  if (a.relu)
    for (int tb = 0; tb < TB; ++tb)
      for (int v = 0; v < NV; ++v) acc[tb][v] = Tr::relu(acc[tb][v]);
  for (int tb = 0; tb < TB; ++tb)
    for (int v = 0; v < NV; ++v) {
      float* o = out + int64_t(t0 + tb) * a.c_out + cob + v * W;
      if (v == NV - 1 && last != W) Tr::storen(o, acc[tb][v], last);
      else acc[tb][v].store_unaligned(o);
    }
}

// Steps [t_begin, t_end) of one sequence; x0 = input row of the first tap of step t_begin.
template <class Tr, int NV>
void fwd_steps(const DirectFwd& a, const float* x0, float* out, int32_t t_begin, int32_t t_end, int32_t cob, int last) {
  constexpr int TB = Tr::template TB<NV>;
  const int64_t xs = int64_t(a.stride) * a.c_in;
  int32_t t = t_begin;
  for (; t + TB <= t_end; t += TB) fwd_tile<Tr, NV, TB>(a, x0 + (t - t_begin) * xs, out, t, cob, last);
  if constexpr (TB > 4)
    for (; t + 4 <= t_end; t += 4) fwd_tile<Tr, NV, 4>(a, x0 + (t - t_begin) * xs, out, t, cob, last);
  if constexpr (TB > 2)
    for (; t + 2 <= t_end; t += 2) fwd_tile<Tr, NV, 2>(a, x0 + (t - t_begin) * xs, out, t, cob, last);
  for (; t < t_end; ++t) fwd_tile<Tr, NV, 1>(a, x0 + (t - t_begin) * xs, out, t, cob, last);
}

template <class Tr, int NV>
void fwd_seq(const DirectFwd& a, const float* x, const float* left, const float* right, float* out, int32_t lo, int32_t hi,
             int32_t cob, int last) {
  fwd_steps<Tr, NV>(a, left, out, 0, lo, cob, last);
  fwd_steps<Tr, NV>(a, x + (int64_t(lo) * a.stride - a.pad) * a.c_in, out, lo, hi, cob, last);
  fwd_steps<Tr, NV>(a, right, out, hi, a.t_out, cob, last);
}

// Copies the input rows read by steps [t_begin, t_end) into dst, zeros outside [0, t_in).
static inline void pad_rows(const DirectFwd& a, const float* x, float* dst, int32_t t_begin, int32_t t_end) {
  if (t_begin >= t_end) return;
  const int32_t r0 = t_begin * a.stride - a.pad;
  const int32_t rows = fwd_edge_rows(t_begin, t_end, a.kernel, a.stride, a.dilation);
  for (int32_t r = 0; r < rows; ++r) {
    const int32_t ti = r0 + r;
    float* d = dst + int64_t(r) * a.c_in;
    if (ti < 0 || ti >= a.t_in)
      for (int32_t c = 0; c < a.c_in; ++c) d[c] = 0.f;
    else
      for (int32_t c = 0; c < a.c_in; ++c) d[c] = x[int64_t(ti) * a.c_in + c];
  }
}

// Splits the output channels into blocks of at most NVMAX vectors (as even as possible).
template <class Tr, class F>
void for_blocks(int32_t c_out, F&& f) {
  constexpr int W = Tr::W;
  const int nvec = (c_out + W - 1) / W;
  const int nblk = (nvec + Tr::NVMAX - 1) / Tr::NVMAX;
  int v0 = 0;
  for (int b = 0; b < nblk; ++b) {
    const int nv = (nvec - v0) / (nblk - b);
    const int32_t cob = v0 * W;
    const int last = imin(c_out - (cob + (nv - 1) * W), W);
    f(nv, cob, last);
    v0 += nv;
  }
}

template <class Tr>
void direct_fwd(const DirectFwd& a) {
  int32_t lo, hi;
  fwd_interior(a.t_in, a.t_out, a.kernel, a.stride, a.pad, a.dilation, lo, hi);
  float* left = a.scratch;
  float* right = a.scratch + int64_t(fwd_edge_rows(0, lo, a.kernel, a.stride, a.dilation)) * a.c_in;
  for (int64_t s = 0; s < a.n; ++s) {
    const float* x = a.x + s * int64_t(a.t_in) * a.c_in;
    float* out = a.out + s * int64_t(a.t_out) * a.c_out;
    pad_rows(a, x, left, 0, lo);
    pad_rows(a, x, right, hi, a.t_out);
    for_blocks<Tr>(a.c_out, [&](int nv, int32_t cob, int last) {
      switch (nv) {
        case 1: fwd_seq<Tr, 1>(a, x, left, right, out, lo, hi, cob, last); break;
        case 2: if constexpr (Tr::NVMAX >= 2) fwd_seq<Tr, 2>(a, x, left, right, out, lo, hi, cob, last); break;
        case 3: if constexpr (Tr::NVMAX >= 3) fwd_seq<Tr, 3>(a, x, left, right, out, lo, hi, cob, last); break;
        case 4: if constexpr (Tr::NVMAX >= 4) fwd_seq<Tr, 4>(a, x, left, right, out, lo, hi, cob, last); break;
      }
    });
  }
}

// ---------------------------------------------------------------------------------------
// Weight gradient: a tile of CB weight rows (CB input channels of one tap k, or - when KT -
// CB taps of input channel 0 with c_in == 1) x NV vectors of output channels, accumulated over
// every step of every sequence of the range, held in registers throughout.
// FULL: the last vector is whole (last == W), a template parameter so each instantiation has
// one inner loop. The edge steps (where some row of the tile reads padding) run afterwards in
// wgrad_tile_edges, on memory, so the register loop holds only interior steps. (Partial-vector
// AVX-512 tiles stay slow on Zen 4 either way: dispatch.cpp sends 16k + 8 channels to AVX2.)
template <int CB, bool KT>
static inline void wgrad_tile_range(const DirectWgrad& a, int32_t k0, int32_t& lo, int32_t& hi) {
  const int32_t kspan = KT ? (CB - 1) * a.dilation : 0;  // taps covered beyond k0
  const int32_t off = k0 * a.dilation - a.pad;           // t*stride + off in [0, t_in - kspan)
  lo = off >= 0 ? 0 : (-off + a.stride - 1) / a.stride;
  const int32_t lastt = a.t_in - 1 - kspan - off;
  hi = lastt < 0 ? 0 : lastt / a.stride + 1;
  lo = imin(lo, a.t_out);
  hi = imax(imin(hi, a.t_out), lo);
}

template <class Tr, int NV, int CB, bool KT, bool FULL>
__attribute__((noinline)) void wgrad_tile_edges(const DirectWgrad& a, int32_t k0, int32_t ci0, int32_t cob, int last) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  const int64_t cop = a.c_out_pad;
  float* gw = a.gw + (int64_t(k0) * a.c_in + ci0) * cop + cob;  // row c at gw + c * cop
  int32_t lo, hi;
  wgrad_tile_range<CB, KT>(a, k0, lo, hi);
  if (lo == 0 && hi == a.t_out) return;
  for (int64_t s = 0; s < a.n; ++s) {
    const float* go = a.go + s * int64_t(a.t_out) * a.c_out + cob;
    const float* xbase = a.x + s * int64_t(a.t_in) * a.c_in + ci0;
    for (int32_t t = 0; t < a.t_out; ++t) {
      if (t == lo) t = hi;
      if (t >= a.t_out) break;
      for (int v = 0; v < NV; ++v) {
        const int n = (!FULL && v == NV - 1) ? last : W;
        const B g = Tr::loadn(go + int64_t(t) * a.c_out + v * W, n);
        for (int c = 0; c < CB; ++c) {
          const int32_t ti = t * a.stride - a.pad + (k0 + (KT ? c : 0)) * a.dilation;
          if (ti < 0 || ti >= a.t_in) continue;
          const B xb(xbase[int64_t(ti) * a.c_in + (KT ? 0 : c)]);
          float* row = gw + c * cop + v * W;
          xsimd::fma(xb, g, B::load_unaligned(row)).store_unaligned(row);
        }
      }
    }
  }
}

template <class Tr, int NV, int CB, bool KT, bool FULL>
inline void wgrad_tile(const DirectWgrad& a, int32_t k0, int32_t ci0, int32_t cob, int last) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  const int64_t cop = a.c_out_pad;
  float* gw = a.gw + (int64_t(k0) * a.c_in + ci0) * cop + cob;  // row c at gw + c * cop
  int32_t lo, hi;  // steps where every row of the tile is inside [0, t_in)
  wgrad_tile_range<CB, KT>(a, k0, lo, hi);
  if (lo < hi) {
    B acc[CB][NV];
    for (int c = 0; c < CB; ++c)
      for (int v = 0; v < NV; ++v) acc[c][v] = B::load_unaligned(gw + c * cop + v * W);
    // x element of row c at step t: x[(t*stride - pad + k0*dil) * c_in + ci0 + c * cstep]
    const int64_t cstep = KT ? int64_t(a.dilation) * a.c_in : 1;
    const int64_t xs = int64_t(a.stride) * a.c_in;
    const typename Tr::Mask m = Tr::mask(last);
    for (int64_t s = 0; s < a.n; ++s) {
      const float* xr = a.x + s * int64_t(a.t_in) * a.c_in + ci0 +
                        (int64_t(lo) * a.stride - a.pad + int64_t(k0) * a.dilation) * a.c_in;
      const float* gr = a.go + s * int64_t(a.t_out) * a.c_out + cob + int64_t(lo) * a.c_out;
      for (int32_t t = lo; t < hi; ++t, xr += xs, gr += a.c_out) {
        B g[NV];
        for (int v = 0; v < NV - 1; ++v) g[v] = B::load_unaligned(gr + v * W);
        if constexpr (FULL) g[NV - 1] = B::load_unaligned(gr + (NV - 1) * W);
        else g[NV - 1] = Tr::loadm(gr + (NV - 1) * W, m);
        for (int c = 0; c < CB; ++c) {
          const B xb(xr[c * cstep]);
          for (int v = 0; v < NV; ++v) acc[c][v] = xsimd::fma(xb, g[v], acc[c][v]);
        }
      }
    }
    for (int c = 0; c < CB; ++c)
      for (int v = 0; v < NV; ++v) acc[c][v].store_unaligned(gw + c * cop + v * W);
  }
  wgrad_tile_edges<Tr, NV, CB, KT, FULL>(a, k0, ci0, cob, last);
}

template <class Tr, int NV, bool FULL>
void wgrad_block_lanes(const DirectWgrad& a, int32_t cob, int last) {
  // Partial-vector tiles take at most 8 input channels: with the full CB GCC ran out of
  // registers and stored every accumulator on each step (a third of the speed).
  constexpr int CB = FULL || Tr::template CB<NV> <= 8 ? Tr::template CB<NV> : 8;
  if (a.c_in == 1) {  // tile over taps instead
    int32_t k = 0;
    for (; k + 4 <= a.kernel; k += 4) wgrad_tile<Tr, NV, 4, true, FULL>(a, k, 0, cob, last);
    for (; k < a.kernel; ++k) wgrad_tile<Tr, NV, 1, true, FULL>(a, k, 0, cob, last);
    return;
  }
  for (int32_t k = 0; k < a.kernel; ++k) {
    int32_t ci = 0;
    for (; ci + CB <= a.c_in; ci += CB) wgrad_tile<Tr, NV, CB, false, FULL>(a, k, ci, cob, last);
    if constexpr (CB > 8)
      for (; ci + 8 <= a.c_in; ci += 8) wgrad_tile<Tr, NV, 8, false, FULL>(a, k, ci, cob, last);
    if constexpr (CB > 4)
      for (; ci + 4 <= a.c_in; ci += 4) wgrad_tile<Tr, NV, 4, false, FULL>(a, k, ci, cob, last);
    for (; ci < a.c_in; ++ci) wgrad_tile<Tr, NV, 1, false, FULL>(a, k, ci, cob, last);
  }
}

template <class Tr, int NV>
void wgrad_block(const DirectWgrad& a, int32_t cob, int last) {
  if (last == Tr::W) wgrad_block_lanes<Tr, NV, true>(a, cob, last);
  else wgrad_block_lanes<Tr, NV, false>(a, cob, last);
}

template <class Tr>
void direct_wgrad(const DirectWgrad& a) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  // Cache blocking: every tile sweeps a chunk of sequences whose grad_out and input (~256 KB)
  // stay in L2 while all the tiles of the chunk pass over it.
  const int64_t seq_bytes = (int64_t(a.t_out) * a.c_out + int64_t(a.t_in) * a.c_in) * 4;
  int64_t chunk = (int64_t(256) << 10) / (seq_bytes > 0 ? seq_bytes : 1);
  if (chunk < 1) chunk = 1;
  for (int64_t s0 = 0; s0 < a.n; s0 += chunk) {
    DirectWgrad c = a;
    c.n = a.n - s0 < chunk ? a.n - s0 : chunk;
    c.go = a.go + s0 * int64_t(a.t_out) * a.c_out;
    c.x = a.x + s0 * int64_t(a.t_in) * a.c_in;
    for_blocks<Tr>(a.c_out, [&](int nv, int32_t cob, int last) {
      switch (nv) {
        case 1: wgrad_block<Tr, 1>(c, cob, last); break;
        case 2: if constexpr (Tr::NVMAX >= 2) wgrad_block<Tr, 2>(c, cob, last); break;
        case 3: if constexpr (Tr::NVMAX >= 3) wgrad_block<Tr, 3>(c, cob, last); break;
        case 4: if constexpr (Tr::NVMAX >= 4) wgrad_block<Tr, 4>(c, cob, last); break;
      }
    });
  }
  if (!a.gb) return;
  // bias: sum over every step, one vector of channels at a time, 4 partial sums in fixed order
  for (int32_t co = 0; co < a.c_out; co += W) {
    const int n = imin(W, a.c_out - co);
    B s0(0.f), s1(0.f), s2(0.f), s3(0.f);
    const int64_t rows = a.n * a.t_out;
    const float* g = a.go + co;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
      s0 += Tr::loadn(g + r * a.c_out, n);
      s1 += Tr::loadn(g + (r + 1) * a.c_out, n);
      s2 += Tr::loadn(g + (r + 2) * a.c_out, n);
      s3 += Tr::loadn(g + (r + 3) * a.c_out, n);
    }
    for (; r < rows; ++r) s0 += Tr::loadn(g + r * a.c_out, n);
    const B s = (s0 + s1) + (s2 + s3);
    const B old = Tr::loadn(a.gb + co, n);
    Tr::storen(a.gb + co, old + s, n);
  }
}

// ---------------------------------------------------------------------------------------
// Depthwise: vectors over channels, taps in the inner loop; 4 time steps per tile.
template <class Tr>
void depthwise_fwd(const DepthwiseFwd& a) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  const int64_t c = a.c;
  for (int64_t s = 0; s < a.n; ++s) {
    const float* x = a.x + s * int64_t(a.t_in) * c;
    float* out = a.out + s * int64_t(a.t_out) * c;
    for (int32_t c0 = 0; c0 < a.c; c0 += W) {
      const int n = imin(W, a.c - c0);
      for (int32_t t = 0; t < a.t_out; ++t) {
        float* o = out + int64_t(t) * c + c0;
        B acc = a.accumulate ? Tr::loadn(o, n) : a.bias ? B::load_unaligned(a.bias + c0) : B(0.f);
        for (int32_t k = 0; k < a.kernel; ++k) {
          const int32_t ti = t * a.stride - a.pad + k * a.dilation;
          if (ti < 0 || ti >= a.t_in) continue;
          acc = xsimd::fma(Tr::loadn(x + int64_t(ti) * c + c0, n), B::load_unaligned(a.wt + int64_t(k) * a.c_pad + c0), acc);
        }
        Tr::storen(o, acc, n);
      }
    }
  }
}

template <class Tr>
void depthwise_wgrad(const DepthwiseWgrad& a) {
  using B = typename Tr::B;
  constexpr int W = Tr::W;
  const int64_t c = a.c;
  for (int32_t c0 = 0; c0 < a.c; c0 += W) {
    const int n = imin(W, a.c - c0);
    for (int32_t k = 0; k < a.kernel; ++k) {
      B acc = B::load_unaligned(a.gw + int64_t(k) * a.c_pad + c0);
      for (int64_t s = 0; s < a.n; ++s) {
        const float* x = a.x + s * int64_t(a.t_in) * c + c0;
        const float* go = a.go + s * int64_t(a.t_out) * c + c0;
        for (int32_t t = 0; t < a.t_out; ++t) {
          const int32_t ti = t * a.stride - a.pad + k * a.dilation;
          if (ti < 0 || ti >= a.t_in) continue;
          acc = xsimd::fma(Tr::loadn(go + int64_t(t) * c, n), Tr::loadn(x + int64_t(ti) * c, n), acc);
        }
      }
      acc.store_unaligned(a.gw + int64_t(k) * a.c_pad + c0);
    }
    if (a.gb) {
      B acc(0.f);
      for (int64_t r = 0; r < a.n * a.t_out; ++r) acc += Tr::loadn(a.go + r * c + c0, n);
      Tr::storen(a.gb + c0, Tr::loadn(a.gb + c0, n) + acc, n);
    }
  }
}

}  // namespace pulsekd::simd::impl
