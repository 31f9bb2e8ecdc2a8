// DSP variants of the integer conv1d / modality_conv / linear loops for Cortex-M4/M7
// (ARMv7E-M SIMD: SXTB16 unpacks bytes 0 and 2 of a word into two int16 lanes, SXTB16 with
// ROR #8 bytes 1 and 3, SMLAD adds both lane products to the accumulator). Integer sums are
// exact and order-independent, so these are bit-exact with conv1d_fwd_ref / modality_conv_fwd_ref
// / linear_fwd_ref under ArithInt<int8_t, Out> (tests/test_quant.cpp on the host with the
// portable fallbacks below, tests/test_mcu.cpp under QEMU with the real instructions).
// Preconditions: int8 input, c_in (per tap) a multiple of 4, groups = 1, stride 1.
// Two output channels per pass share one unpacked input word: 13 instructions per 8 MACs in
// the inner loop (LDR x, 2 SXTB16, then per channel LDR w, 2 SXTB16, 2 SMLAD).
// Overflow: the same bounds as the reference loops (fixed_point.h); SMLAD's Q flag is unused.
#pragma once
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/modality_conv.h"

namespace pulsekd::kernels {

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
inline uint32_t dsp_sxtb16(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
  return r;
}
inline uint32_t dsp_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
inline int32_t dsp_smlad(uint32_t a, uint32_t b, int32_t acc) {
  int32_t r;
  __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
#else
// Portable definitions with the instructions' semantics (host tests).
inline uint32_t dsp_sxtb16(uint32_t x) {
  const uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFF);
  const uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)((x >> 16) & 0xFF);
  return lo | (hi << 16);
}
inline uint32_t dsp_sxtb16_ror8(uint32_t x) { return dsp_sxtb16((x >> 8) | (x << 24)); }
inline int32_t dsp_smlad(uint32_t a, uint32_t b, int32_t acc) {
  const int32_t p0 = (int32_t)(int16_t)(a & 0xFFFF) * (int32_t)(int16_t)(b & 0xFFFF);
  const int32_t p1 = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
  return (int32_t)((uint32_t)acc + (uint32_t)p0 + (uint32_t)p1);  // wraps like the instruction
}
#endif

inline uint32_t dsp_load4(const int8_t* p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

// acc0 += sum x[i] w0[i], acc1 += sum x[i] w1[i], i < n (n a multiple of 4)
inline void dsp_dot2_s8(const int8_t* x, const int8_t* w0, const int8_t* w1, int32_t n, int32_t& acc0, int32_t& acc1) {
  int32_t a0 = acc0, a1 = acc1;
  for (int32_t i = 0; i < n; i += 4) {
    const uint32_t xv = dsp_load4(x + i);
    const uint32_t x02 = dsp_sxtb16(xv), x13 = dsp_sxtb16_ror8(xv);
    const uint32_t wa = dsp_load4(w0 + i), wb = dsp_load4(w1 + i);
    a0 = dsp_smlad(x02, dsp_sxtb16(wa), a0);
    a0 = dsp_smlad(x13, dsp_sxtb16_ror8(wa), a0);
    a1 = dsp_smlad(x02, dsp_sxtb16(wb), a1);
    a1 = dsp_smlad(x13, dsp_sxtb16_ror8(wb), a1);
  }
  acc0 = a0;
  acc1 = a1;
}

inline int32_t dsp_dot_s8(const int8_t* x, const int8_t* w, int32_t n, int32_t acc) {
  for (int32_t i = 0; i < n; i += 4) {
    const uint32_t xv = dsp_load4(x + i), wv = dsp_load4(w + i);
    acc = dsp_smlad(dsp_sxtb16(xv), dsp_sxtb16(wv), acc);
    acc = dsp_smlad(dsp_sxtb16_ror8(xv), dsp_sxtb16_ror8(wv), acc);
  }
  return acc;
}

inline int32_t dsp_wsum(const int8_t* w, int32_t n) {
  int32_t s = 0;
  for (int32_t i = 0; i < n; ++i) s += w[i];
  return s;
}

// Same contract as conv1d_fwd_ref<ArithInt<int8_t, Out>> with groups 1, stride 1, c_in % 4 == 0.
template <class Out>
void conv1d_s8_dsp(Out* out,                // (t_out, c_out)
                   const int8_t* inp,       // (t_in, c_in)
                   const int8_t* w,         // (c_out, kernel, c_in)
                   const int32_t* bias,     // (c_out), zero point folded
                   int32_t t_in, const conv1d_params& p, const requant_params& q) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const int32_t cin = p.c_in, rowlen = p.kernel * cin;
  for (int32_t t = 0; t < t_out; ++t) {
    const int32_t t0 = t - p.pad;
    const bool inside = t0 >= 0 && t0 + (p.kernel - 1) * p.dilation < t_in;
    int32_t co = 0;
    for (; co + 1 < p.c_out; co += 2) {
      int32_t a0 = bias ? bias[co] : 0, a1 = bias ? bias[co + 1] : 0;
      const int8_t* w0 = w + (size_t)co * rowlen;
      const int8_t* w1 = w0 + rowlen;
      for (int32_t k = 0; k < p.kernel; ++k) {
        const int32_t ti = t0 + k * p.dilation;
        if (!inside && (ti < 0 || ti >= t_in)) {  // padding: the input zero point
          a0 += q.in_zp * dsp_wsum(w0 + k * cin, cin);
          a1 += q.in_zp * dsp_wsum(w1 + k * cin, cin);
          continue;
        }
        dsp_dot2_s8(inp + (size_t)ti * cin, w0 + k * cin, w1 + k * cin, cin, a0, a1);
      }
      out[(size_t)t * p.c_out + co] = (Out)requant_output(a0, co, q);
      out[(size_t)t * p.c_out + co + 1] = (Out)requant_output(a1, co + 1, q);
    }
    for (; co < p.c_out; ++co) {
      int32_t a0 = bias ? bias[co] : 0;
      const int8_t* w0 = w + (size_t)co * rowlen;
      for (int32_t k = 0; k < p.kernel; ++k) {
        const int32_t ti = t0 + k * p.dilation;
        if (ti < 0 || ti >= t_in) {
          a0 += q.in_zp * dsp_wsum(w0 + k * cin, cin);
          continue;
        }
        a0 = dsp_dot_s8(inp + (size_t)ti * cin, w0 + k * cin, cin, a0);
      }
      out[(size_t)t * p.c_out + co] = (Out)requant_output(a0, co, q);
    }
  }
}

// Same contract as linear_fwd_ref<ArithInt<int8_t, Out>> with in_f % 4 == 0.
template <class Out>
void linear_s8_dsp(Out* out, const int8_t* inp, const int8_t* w, const int32_t* bias, int32_t n, int32_t in_f,
                   int32_t out_f, const requant_params& q) {
  for (int32_t r = 0; r < n; ++r) {
    const int8_t* x = inp + (size_t)r * in_f;
    int32_t o = 0;
    for (; o + 1 < out_f; o += 2) {
      int32_t a0 = bias ? bias[o] : 0, a1 = bias ? bias[o + 1] : 0;
      dsp_dot2_s8(x, w + (size_t)o * in_f, w + (size_t)(o + 1) * in_f, in_f, a0, a1);
      out[(size_t)r * out_f + o] = (Out)requant_output(a0, o, q);
      out[(size_t)r * out_f + o + 1] = (Out)requant_output(a1, o + 1, q);
    }
    for (; o < out_f; ++o)
      out[(size_t)r * out_f + o] = (Out)requant_output(dsp_dot_s8(x, w + (size_t)o * in_f, in_f, bias ? bias[o] : 0), o, q);
  }
}

// Same contract as modality_conv_fwd_ref<ArithInt<int8_t, Out>> with c_in % 4 == 0.
template <class Out>
void modality_conv_s8_dsp(Out* out, const int8_t* inp, const int8_t* w, const int32_t* bias,
                          const modality_conv_params& p, const requant_params& q) {
  const int32_t rowlen = p.rows * p.c_in;
  for (int32_t t = 0; t < p.t; ++t) {
    int32_t co = 0;
    for (; co + 1 < p.c_out; co += 2) {
      int32_t a0 = bias ? bias[co] : 0, a1 = bias ? bias[co + 1] : 0;
      for (int32_t r = 0; r < p.rows; ++r)
        dsp_dot2_s8(inp + ((size_t)r * p.t + t) * p.c_in, w + (size_t)co * rowlen + r * p.c_in,
                    w + (size_t)(co + 1) * rowlen + r * p.c_in, p.c_in, a0, a1);
      out[(size_t)t * p.c_out + co] = (Out)requant_output(a0, co, q);
      out[(size_t)t * p.c_out + co + 1] = (Out)requant_output(a1, co + 1, q);
    }
    for (; co < p.c_out; ++co) {
      int32_t a0 = bias ? bias[co] : 0;
      for (int32_t r = 0; r < p.rows; ++r)
        a0 = dsp_dot_s8(inp + ((size_t)r * p.t + t) * p.c_in, w + (size_t)co * rowlen + r * p.c_in, p.c_in, a0);
      out[(size_t)t * p.c_out + co] = (Out)requant_output(a0, co, q);
    }
  }
}

// ---------------------------------------------------------------------------------------
// int16 activations x int8 weights (the student's default int16 conv tensors).
// Two int16 activations are one word (x0 | x1 << 16) and feed SMLAD directly. The weights are
// stored INTERLEAVED in groups of four, bytes [w0 w2 w1 w3] (dsp_interleave_s8x4, done once by
// export-mcu), so SXTB16 gives (w0, w1) and SXTB16 ROR #8 gives (w2, w3): no PKHBT/PKHTB.
// Four output channels per pass share the two input words: per 16 MACs 2 LDR x + 4 x (LDR w,
// 2 SXTB16, 2 SMLAD) = 22 instructions plus the loop. Preconditions: int16 input, c_in (per tap / row) a
// multiple of 4, groups 1, stride 1. Bit-exact with the reference loops under ArithInt<int16_t,
// Out> on the ORIGINAL weights (integer sums are order-independent; same overflow bound).

// Swaps bytes 1 and 2 of every group of four: [w0 w1 w2 w3] -> [w0 w2 w1 w3] (an involution).
inline void dsp_interleave_s8x4(int8_t* w, size_t n) {
  for (size_t i = 0; i + 3 < n; i += 4) {
    const int8_t b = w[i + 1];
    w[i + 1] = w[i + 2];
    w[i + 2] = b;
  }
}

inline uint32_t dsp_load2x16(const int16_t* p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

// requant_output with fewer instructions, used by the int16 DSP kernels; bit-exact with it
// (tests/test_quant.cpp) for multipliers in [0, 2^31), act_min <= act_max, and |act|, |zp| < 2^30
// (what validate_quant_model guarantees). For shift <= 0 gemmlowp's SRDHM
//   trunc((a*M + (a*M >= 0 ? 2^30 : 1 - 2^30)) / 2^31)  equals  floor((a*M + 2^30) / 2^31)
// (for a*M < 0: trunc(v / 2^31) = floor((v + 2^31 - 1) / 2^31) with v = a*M + 1 - 2^30), which is
// SMULL + a 64-bit add + a shift; its saturation case needs M = INT32_MIN, excluded. The clamp
// runs in int32 on [act_min - zp, act_max - zp] before adding zp (same result as clamping
// the int64 sum). Left shifts (shift > 0) and raw outputs take requant_output itself.
inline int32_t requant_output_fast(int32_t acc, int32_t co, const requant_params& q) {
  if (!q.mult || q.shift[co] > 0) return requant_output(acc, co, q);
  int32_t h = (int32_t)(((int64_t)acc * q.mult[co] + (int64_t(1) << 30)) >> 31);
  h = fp_rdbpot(h, -q.shift[co]);
  const int32_t lo = q.act_min - q.out_zp, hi = q.act_max - q.out_zp;
  h = h < lo ? lo : (h > hi ? hi : h);
  return h + q.out_zp;
}

// Packed weight layout of the int16 DSP kernels (dsp_pack_weights_s16, done once by export-mcu):
// output channels in blocks of four; inside a block, for every tap k and every group of four
// inputs, four words (one per channel), each word's bytes interleaved [w0 w2 w1 w3]; each tap's
// inputs zero-padded from cin to cpad (a multiple of 4). The c_out % 4 remaining channels
// follow one at a time (tap, group), same interleaved words. The kernels walk the weights with
// ONE advancing pointer, which leaves registers for the four accumulators.
inline size_t dsp_packed_size_s16(int32_t c_out, int32_t ntaps, int32_t cpad) { return (size_t)c_out * ntaps * cpad; }
// w: (c_out, ntaps, cin) -> out: dsp_packed_size_s16(c_out, ntaps, cpad) bytes.
inline void dsp_pack_weights_s16(int8_t* out, const int8_t* w, int32_t c_out, int32_t ntaps, int32_t cin, int32_t cpad) {
  size_t o = 0;
  int32_t co = 0;
  for (; co + 3 < c_out; co += 4)
    for (int32_t k = 0; k < ntaps; ++k)
      for (int32_t g = 0; g < cpad; g += 4)
        for (int32_t j = 0; j < 4; ++j)
          for (int32_t b = 0; b < 4; ++b) out[o++] = g + b < cin ? w[((size_t)(co + j) * ntaps + k) * cin + g + b] : 0;
  for (; co < c_out; ++co)
    for (int32_t k = 0; k < ntaps; ++k)
      for (int32_t i = 0; i < cpad; ++i) out[o++] = i < cin ? w[((size_t)co * ntaps + k) * cin + i] : 0;
  dsp_interleave_s8x4(out, o);
}

// The same blocked layout WITHOUT interleaving, for int8 inputs (SXTB16 pairs (x0, x2) with
// (w0, w2) and (x1, x3) with (w1, w3) in natural byte order).
inline void dsp_pack_weights_s8(int8_t* out, const int8_t* w, int32_t c_out, int32_t ntaps, int32_t cin, int32_t cpad) {
  dsp_pack_weights_s16(out, w, c_out, ntaps, cin, cpad);
  dsp_interleave_s8x4(out, dsp_packed_size_s16(c_out, ntaps, cpad));  // an involution: undoes it
}

// Accumulators of channels co .. co+3 at one position into out[0..3], from packed weights at wp
// (advanced past the block).
// Two SMLAD operand words holding inputs g..g+3 in the order the packed weights expect:
// int16: (x0, x1), (x2, x3) against interleaved weights; int8: SXTB16 gives (x0, x2), (x1, x3)
// against weights in natural order (dsp_pack_weights_s8).
inline void dsp_xpair(const int16_t* x, uint32_t& xa, uint32_t& xb) {
  xa = dsp_load2x16(x);
  xb = dsp_load2x16(x + 2);
}
inline void dsp_xpair(const int8_t* x, uint32_t& xa, uint32_t& xb) {
  const uint32_t v = dsp_load4(x);
  xa = dsp_sxtb16(v);
  xb = dsp_sxtb16_ror8(v);
}

template <class In = int16_t>
inline void dsp_block4_s16(int32_t* out, const In* const* xs, int32_t ntaps, const int8_t*& wp, int32_t cpad,
                           const int32_t* bias, int32_t co, const requant_params& q) {
  int32_t a0 = bias ? bias[co] : 0, a1 = bias ? bias[co + 1] : 0, a2 = bias ? bias[co + 2] : 0, a3 = bias ? bias[co + 3] : 0;
  const int8_t* w = wp;
  for (int32_t k = 0; k < ntaps; ++k) {
    const In* x = xs[k];
    if (!x) {  // padding: the input zero point (0 for symmetric int16); interleaving keeps sums
      for (int32_t g = 0; g < cpad; g += 4, w += 16)
        if (q.in_zp) {
          a0 += q.in_zp * dsp_wsum(w, 4), a1 += q.in_zp * dsp_wsum(w + 4, 4);
          a2 += q.in_zp * dsp_wsum(w + 8, 4), a3 += q.in_zp * dsp_wsum(w + 12, 4);
        }
      continue;
    }
    for (int32_t g = 0; g < cpad; g += 4, w += 16) {
      uint32_t x01, x23;
      dsp_xpair(x + g, x01, x23);
      uint32_t wv = dsp_load4(w);
      a0 = dsp_smlad(x01, dsp_sxtb16(wv), a0);
      a0 = dsp_smlad(x23, dsp_sxtb16_ror8(wv), a0);
      wv = dsp_load4(w + 4);
      a1 = dsp_smlad(x01, dsp_sxtb16(wv), a1);
      a1 = dsp_smlad(x23, dsp_sxtb16_ror8(wv), a1);
      wv = dsp_load4(w + 8);
      a2 = dsp_smlad(x01, dsp_sxtb16(wv), a2);
      a2 = dsp_smlad(x23, dsp_sxtb16_ror8(wv), a2);
      wv = dsp_load4(w + 12);
      a3 = dsp_smlad(x01, dsp_sxtb16(wv), a3);
      a3 = dsp_smlad(x23, dsp_sxtb16_ror8(wv), a3);
    }
  }
  wp = w;
  out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;  // raw accumulators of co .. co+3
}
template <class In = int16_t>
inline void dsp_block1_s16(int32_t* out, const In* const* xs, int32_t ntaps, const int8_t*& wp, int32_t cpad,
                           const int32_t* bias, int32_t co, const requant_params& q) {
  int32_t a = bias ? bias[co] : 0;
  const int8_t* w = wp;
  for (int32_t k = 0; k < ntaps; ++k) {
    const In* x = xs[k];
    for (int32_t g = 0; g < cpad; g += 4, w += 4) {
      if (!x) {
        a += q.in_zp * dsp_wsum(w, 4);
        continue;
      }
      const uint32_t wv = dsp_load4(w);
      uint32_t xa, xb;
      dsp_xpair(x + g, xa, xb);
      a = dsp_smlad(xa, dsp_sxtb16(wv), a);
      a = dsp_smlad(xb, dsp_sxtb16_ror8(wv), a);
    }
  }
  wp = w;
  out[0] = a;  // raw accumulator of co
}

// out[co] = requant_output(acc[co - c0], co, q) for co in [c0, c1) (requant_output_fast inline).
template <class Out>
inline void dsp_requant_row(Out* out, const int32_t* acc, int32_t c0, int32_t c1, const requant_params& q) {
  if (!q.mult) {
    for (int32_t co = c0; co < c1; ++co) out[co] = (Out)requant_output(acc[co - c0], co, q);
    return;
  }
  const int32_t lo = q.act_min - q.out_zp, hi = q.act_max - q.out_zp, zp = q.out_zp;
  for (int32_t co = c0; co < c1; ++co) {
    const int32_t sh = q.shift[co];
    if (sh > 0) {
      out[co] = (Out)requant_output(acc[co - c0], co, q);
      continue;
    }
    int32_t h = (int32_t)(((int64_t)acc[co - c0] * q.mult[co] + (int64_t(1) << 30)) >> 31);
    if (sh < 0) {  // fp_rdbpot(h, -sh), written out so it stays inline
      const int32_t e = -sh;
      const int32_t mask = (int32_t)((1u << e) - 1u);
      const int32_t threshold = (mask >> 1) + (h < 0 ? 1 : 0);
      h = (h >> e) + ((h & mask) > threshold ? 1 : 0);
    }
    h = h < lo ? lo : (h > hi ? hi : h);
    out[co] = (Out)(h + zp);
  }
}

// All c_out outputs at one position; w: packed weights (ntaps x cpad inputs per channel).
template <class Out, class In = int16_t>
inline void dsp_outputs_s16(Out* out, const In* const* xs, int32_t ntaps, const int8_t* w, int32_t cpad, int32_t c_out,
                            const int32_t* bias, const requant_params& q) {
  // Accumulate up to 16 channels, then requantise them in one tight loop (the requantisation
  // parameters stay in registers; no call per output).
  int32_t acc[16];
  for (int32_t c0 = 0; c0 < c_out; c0 += 16) {
    const int32_t c1 = c_out - c0 < 16 ? c_out : c0 + 16;
    int32_t co = c0;
    for (; co + 3 < c1; co += 4) dsp_block4_s16<In>(acc + (co - c0), xs, ntaps, w, cpad, bias, co, q);
    for (; co < c1; ++co) dsp_block1_s16<In>(acc + (co - c0), xs, ntaps, w, cpad, bias, co, q);
    dsp_requant_row(out, acc, c0, c1, q);
  }
}

constexpr int32_t kDspMaxTaps = 64;  // kernel (conv) or rows (modality conv)
constexpr int32_t kDspMaxRow = 64;  // c_out of the in-place (row-buffered) conv: its row buffer is on the stack

// Same contract as conv1d_fwd_ref<ArithInt<int16_t, Out>> with groups 1, stride 1,
// c_in % 4 == 0, kernel <= 64, and w packed: dsp_pack_weights_s16(w, c_out, kernel, c_in, c_in).
// (In = int8_t: the packed int8 kernel, conv1d_s8p_dsp.)
template <class Out, class In = int16_t>
void conv1d_s16_dsp(Out* out, const In* inp, const int8_t* w_il, const int32_t* bias, int32_t t_in,
                    const conv1d_params& p, const requant_params& q) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const In* xs[kDspMaxTaps];
  for (int32_t t = 0; t < t_out; ++t) {
    for (int32_t k = 0; k < p.kernel; ++k) {
      const int32_t ti = t - p.pad + k * p.dilation;
      xs[k] = (ti < 0 || ti >= t_in) ? nullptr : inp + (size_t)ti * p.c_in;
    }
    dsp_outputs_s16<Out, In>(out + (size_t)t * p.c_out, xs, p.kernel, w_il, p.c_in, p.c_out, bias, q);
  }
}

// In place: the same computation with out == inp - pad * c_in (c_out == c_in <= kDspMaxRow): each
// output row is computed into a row buffer and then stored over input row t - pad, the last
// input row it reads, which no later output reads (they start at t + 1 - pad). The caller
// provides pad * c_in values of room below inp.
template <class Out>
void conv1d_s16_dsp_inplace(Out* out, const int16_t* inp, const int8_t* w_il, const int32_t* bias, int32_t t_in,
                            const conv1d_params& p, const requant_params& q) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const int16_t* xs[kDspMaxTaps];
  Out row[kDspMaxRow];
  for (int32_t t = 0; t < t_out; ++t) {
    for (int32_t k = 0; k < p.kernel; ++k) {
      const int32_t ti = t - p.pad + k * p.dilation;
      xs[k] = (ti < 0 || ti >= t_in) ? nullptr : inp + (size_t)ti * p.c_in;
    }
    dsp_outputs_s16(row, xs, p.kernel, w_il, p.c_in, p.c_out, bias, q);
    Out* o = out + (size_t)t * p.c_out;
    for (int32_t c = 0; c < p.c_out; ++c) o[c] = row[c];
  }
}

// Same contract as modality_conv_fwd_ref<ArithInt<int16_t, Out>> with c_in % 4 == 0, rows <= 64,
// w packed: dsp_pack_weights_s16(w, c_out, rows, c_in, c_in).
template <class Out, class In = int16_t>
void modality_conv_s16_dsp(Out* out, const In* inp, const int8_t* w_il, const int32_t* bias,
                           const modality_conv_params& p, const requant_params& q) {
  const In* xs[kDspMaxTaps];
  for (int32_t t = 0; t < p.t; ++t) {
    for (int32_t r = 0; r < p.rows; ++r) xs[r] = inp + ((size_t)r * p.t + t) * p.c_in;
    dsp_outputs_s16<Out, In>(out + (size_t)t * p.c_out, xs, p.rows, w_il, p.c_in, p.c_out, bias, q);
  }
}

// Same contract as linear_fwd_ref<ArithInt<int16_t, Out>> with in_f % 4 == 0,
// w packed: dsp_pack_weights_s16(w, out_f, 1, in_f, in_f).
template <class Out, class In = int16_t>
void linear_s16_dsp(Out* out, const In* inp, const int8_t* w_il, const int32_t* bias, int32_t n, int32_t in_f,
                    int32_t out_f, const requant_params& q) {
  for (int32_t r = 0; r < n; ++r) {
    const In* xs[1] = {inp + (size_t)r * in_f};
    dsp_outputs_s16<Out, In>(out + (size_t)r * out_f, xs, 1, w_il, in_f, out_f, bias, q);
  }
}

// Small-c_in conv (the student's first layer: c_in 1, kernel 3): per output position the K*c_in
// input values are gathered into a column padded with zeros to Kp = round_up(K*c_in, 4), and the
// layer runs as a matrix-vector product over it with weights packed as one tap of Kp inputs:
// dsp_pack_weights_s16(w, c_out, 1, kernel * c_in, Kp).
// Padding taps gather the input zero point; alignment slots are 0 x 0. Kp <= kDspMaxCol.
constexpr int32_t kDspMaxCol = 64;
inline int32_t dsp_col_len(int32_t kernel, int32_t c_in) { return (kernel * c_in + 3) / 4 * 4; }
// Same contract as conv1d_fwd_ref<ArithInt<int16_t, Out>> with groups 1, stride 1 and
// dsp_col_len(kernel, c_in) <= kDspMaxCol, weights packed as above.
template <class Out>
void conv1d_s16_col_dsp(Out* out, const int16_t* inp, const int8_t* w_pad, const int32_t* bias, int32_t t_in,
                        const conv1d_params& p, const requant_params& q) {
  const int32_t t_out = conv1d_out_len(t_in, p);
  const int32_t kp = dsp_col_len(p.kernel, p.c_in);
  __attribute__((aligned(4))) int16_t col[kDspMaxCol];
  for (int32_t i = 0; i < kp; ++i) col[i] = 0;
  const int16_t* xs[1] = {col};
  for (int32_t t = 0; t < t_out; ++t) {
    int16_t* c = col;
    for (int32_t k = 0; k < p.kernel; ++k) {
      const int32_t ti = t - p.pad + k * p.dilation;
      if (ti < 0 || ti >= t_in) {
        for (int32_t ci = 0; ci < p.c_in; ++ci) *c++ = (int16_t)q.in_zp;
      } else {
        const int16_t* x = inp + (size_t)ti * p.c_in;
        for (int32_t ci = 0; ci < p.c_in; ++ci) *c++ = x[ci];
      }
    }
    dsp_outputs_s16(out + (size_t)t * p.c_out, xs, 1, w_pad, kp, p.c_out, bias, q);
  }
}

// ---------------------------------------------------------------------------------------
// int8 inputs with the packed layout (dsp_pack_weights_s8): four output channels per pass,
// one weight pointer; per 16 MACs LDR x, 2 SXTB16, then 4 x (LDR w, 2 SXTB16, 2 SMLAD) = 23
// instructions plus the loop. Same contracts as the *_s8_dsp functions (c_in % 4 == 0) with
// packed weights.
template <class Out>
void conv1d_s8p_dsp(Out* out, const int8_t* inp, const int8_t* w_p, const int32_t* bias, int32_t t_in,
                    const conv1d_params& p, const requant_params& q) {
  conv1d_s16_dsp<Out, int8_t>(out, inp, w_p, bias, t_in, p, q);
}
template <class Out>
void modality_conv_s8p_dsp(Out* out, const int8_t* inp, const int8_t* w_p, const int32_t* bias,
                           const modality_conv_params& p, const requant_params& q) {
  modality_conv_s16_dsp<Out, int8_t>(out, inp, w_p, bias, p, q);
}
template <class Out>
void linear_s8p_dsp(Out* out, const int8_t* inp, const int8_t* w_p, const int32_t* bias, int32_t n, int32_t in_f,
                    int32_t out_f, const requant_params& q) {
  linear_s16_dsp<Out, int8_t>(out, inp, w_p, bias, n, in_f, out_f, q);
}

}  // namespace pulsekd::kernels
