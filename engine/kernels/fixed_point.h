// Integer arithmetic policies for the reference loops (conv1d.h, modality_conv.h, linear.h)
// and the fixed-point helpers they need. Freestanding: <stdint.h>/<stddef.h> only (through
// kmath.h), shared by the host runtime (deploy/host_runtime.cpp) and the Cortex-M firmware
// (mcu/), so both compute the SAME integers.
//
// Scheme (TFLite / CMSIS-NN style, see docs/MCU.md):
//   real = scale * (q - zero_point)
//   weights: int8, per output channel, symmetric (zero point 0), range [-127, 127]
//   bias:    int32, scale s_in * s_w[co], zero point 0
//   activations: int8 asymmetric (zero point in [-128, 127]) or int16 symmetric (zp 0)
//   accumulator: int32
//   output: q_out = clamp(zp_out + requantize(acc, M[co], shift[co]), act_min, act_max)
//           with s_in * s_w[co] / s_out = M[co] * 2^(shift[co] - 31), M in [2^30, 2^31).
//           A fused ReLU is the clamp's lower bound act_min = max(zp_out, type min).
//
// Input zero point. The loops call mac(acc, x, w) without the quant struct, so the input zero
// point is folded into the bias at quantisation time (exact integer identity):
//   sum_i (x_i - zp) w_i + b  =  sum_i x_i w_i + (b - zp * sum_i w_i)
// The "bias" array handed to the loops is that folded bias; zero_input() pads with zp, so a
// padded tap contributes zp * w and cancels its share of the fold: padding is a real zero.
//
// ONE rounding rule for requantisation (bit-exact with gemmlowp / TFLite's
// MultiplyByQuantizedMultiplier, the rule CMSIS-NN also implements):
//   left  = max(shift, 0), right = max(-shift, 0)
//   a     = saturate_int32(acc * 2^left)
//   h     = SRDHM(a, M) = round(a*M / 2^31): nudge +2^30 for a non-negative product,
//           1 - 2^30 for a negative one, then C division (truncation), i.e. ties round toward
//           +infinity (-0.5 -> 0, 0.5 -> 1); saturated for a = M = INT32_MIN
//   q     = RDBPOT(h, right): h / 2^right rounded to nearest, ties away from zero
// This is TFLite's "double rounding" (two roundings: 23 * 2^-4 = 1.4375 gives 2, tested in
// tests/test_quant.cpp); it is kept because it is what TFLite Micro and CMSIS-NN compute.
// Average pooling divides a sum of k integers by k rounding to nearest, ties away from zero.
//
// Overflow bounds (checked per output channel when a model is quantised, see
// deploy/gptq.cpp, and asserted again by tests):
//   int8 input:  |x| <= 128, |w| <= 127, |x w| <= 16,256; partial sums of n taps are bounded
//                by n * 16,256 + |folded bias|; n <= 256 in the PULSE student (dense), so
//                |acc| <= 4.2e6 + |b| << 2^31.
//   int16 input: symmetric, |x| <= 32,768: |acc| <= 32,768 * sum_i |w_i| + |b|, required
//                < 2^31 per channel (holds for n <= 515 taps at |w| = 127).
//   pooling:     k * 32,768 <= 2^31 for any k <= 65,536.
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

// ---------------------------------------------------------------------------------------
// Fixed-point helpers (gemmlowp semantics).

inline int32_t fp_sat_i32(int64_t v) {
  return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}

// SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties toward +infinity (gemmlowp).
inline int32_t fp_srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (int64_t(1) << 30) : (1 - (int64_t(1) << 30));
  // C division truncates toward zero, as gemmlowp's does.
  return (int32_t)((ab + nudge) / (int64_t(1) << 31));
}

// RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero. 0 <= e <= 31.
inline int32_t fp_rdbpot(int32_t x, int32_t e) {
  if (e <= 0) return x;
  const int32_t mask = (int32_t)((int64_t(1) << e) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (remainder > threshold ? 1 : 0);
}

// acc * M * 2^(shift - 31) with the documented rounding rule. M in [2^30, 2^31) (or 0),
// shift in [-31, 30].
inline int32_t fp_requantize(int32_t acc, int32_t mult, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t a = left ? fp_sat_i32((int64_t)acc * (int64_t(1) << left)) : acc;
  return fp_rdbpot(fp_srdhm(a, mult), right);
}

// Integer division rounding to nearest, ties away from zero. d > 0.
inline int32_t fp_div_round(int32_t n, int32_t d) {
  return n >= 0 ? (n + d / 2) / d : -((-n + d / 2) / d);
}

// ---------------------------------------------------------------------------------------
// Requantisation parameters of one layer's output, shared by every integer policy.
struct requant_params {
  int32_t in_zp;        // input zero point (padding value); 0 for int16 inputs
  int32_t out_zp;       // output zero point; 0 for int16 outputs
  const int32_t* mult;  // (c_out) Q31 multipliers; nullptr: output the raw accumulator
  const int32_t* shift; // (c_out) exponents (see fp_requantize)
  int32_t act_min;      // output clamp, in output integers (fused ReLU: max(out_zp, type min))
  int32_t act_max;
};

// Output of finish(): requantise, add the zero point, clamp.
inline int32_t requant_output(int32_t acc, int32_t co, const requant_params& q) {
  int64_t v = q.mult ? (int64_t)fp_requantize(acc, q.mult[co], q.shift[co]) + q.out_zp : (int64_t)acc;
  if (v < q.act_min) v = q.act_min;
  if (v > q.act_max) v = q.act_max;
  return (int32_t)v;
}

// In: int8_t or int16_t activations; Out: int8_t, int16_t, or int32_t (the raw accumulator of
// a last layer, q.mult == nullptr). Weights int8, bias (zero point folded in) int32.
template <class In, class Out>
struct ArithInt {
  using in_t = In;
  using w_t = int8_t;
  using bias_t = int32_t;
  using acc_t = int32_t;
  using out_t = Out;
  using quant = requant_params;
  static acc_t bias(const bias_t* b, int32_t co) { return b ? b[co] : 0; }
  // Products of int8/int16 by int8 fit in int32; the sum bound is in the header comment.
  static acc_t mac(acc_t acc, in_t x, w_t w) { return acc + (int32_t)x * (int32_t)w; }
  static in_t zero_input(const quant& q) { return (in_t)q.in_zp; }
  static out_t finish(acc_t acc, int32_t co, const quant& q) { return (out_t)requant_output(acc, co, q); }
  // Average pooling (In == Out): the mean of quantised values q = zp + x/s is zp + mean(x)/s, so
  // the output keeps the input's scale and zero point; the division rounds to nearest, ties
  // away from zero. Sums: n * 32,768 < 2^31 for any n < 65,536.
  static out_t mean(acc_t sum, int32_t n) { return (out_t)fp_div_round(sum, n); }
};

using ArithS8 = ArithInt<int8_t, int8_t>;      // int8 activations in and out
using ArithS16 = ArithInt<int16_t, int16_t>;   // int16 activations in and out
using ArithS8S16 = ArithInt<int8_t, int16_t>;  // int8 in, int16 out
using ArithS16S8 = ArithInt<int16_t, int8_t>;  // int16 in, int8 out
using ArithS8Acc = ArithInt<int8_t, int32_t>;  // int8 in, raw int32 accumulator out
using ArithS16Acc = ArithInt<int16_t, int32_t>;

}  // namespace pulsekd::kernels
