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

}  // namespace pulsekd::kernels
