// The PULSE teacher's cross-attention and LayerNorm as reference loops, float and integer.
// Freestanding (<stdint.h>/<stddef.h>/<math.h> only, through kmath.h): the host simulation
// (deploy/host_runtime.cpp) and the Cortex-M firmware (mcu/runtime/pk_kernels.h) include these
// SAME definitions, so their integers agree by construction. Scheme: docs/MCU.md.
//
// Layouts (channels-last, as the row-shared convolutions produce them):
//   rows:  (R, T, C)   R modality rows (row 0 = PPG), T time steps, C channels
//   token: channel c of row r is token r*C + c; its E = T vector is rows[r][0..T)[c]
//   q:     (C, E)      the C PPG tokens projected by W[0 .. E)
//   kv:    ((R-1)*C, 2E)  the ACC tokens: columns [0, E) = k (W[E .. 2E)), [E, 2E) = v (W[2E .. 3E))
//   ctx:   (C, E)      head h owns columns [h*dh, (h+1)*dh), dh = E / heads (PyTorch's merge order)
#pragma once
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/softmax.h"

namespace pulsekd::kernels {

// out[tok, o] = bias[co0 + o] + sum_t w[co0 + o, t] * rows[r, t, c] for the tokens
// tok = r*C + c of rows [0, n_rows): a linear layer over time applied to every channel-token,
// read straight from the channels-last rows (no transposed copy), output channels
// [co0, co0 + out_f) of the weights (and of the requantisation). Any arithmetic policy.
template <class A>
void token_proj_fwd_ref(typename A::out_t* out,          // (n_rows * C, out_f)
                        const typename A::in_t* rows,    // (n_rows, T, C)
                        const typename A::w_t* w,        // (co0 + out_f, T)
                        const typename A::bias_t* bias,  // (co0 + out_f) or nullptr
                        int32_t n_rows, int32_t t, int32_t c, int32_t co0, int32_t out_f, const typename A::quant& q) {
  for (int32_t r = 0; r < n_rows; ++r)
    for (int32_t ch = 0; ch < c; ++ch) {
      const typename A::in_t* x = rows + (size_t)r * t * c + ch;  // stride c along time
      typename A::out_t* y = out + ((size_t)r * c + ch) * out_f;
      for (int32_t o = 0; o < out_f; ++o) {
        const int32_t co = co0 + o;
        typename A::acc_t acc = A::bias(bias, co);
        const typename A::w_t* wo = w + (size_t)co * t;
        for (int32_t i = 0; i < t; ++i) acc = A::mac(acc, x[(size_t)i * c], wo[i]);
        y[o] = A::finish(acc, co, q);
      }
    }
}

// The packed q/k/v in-projection (PyTorch in_proj_weight (3E, E), E = T): q of the row-0
// tokens (weights [0, E)), k and v of the other rows' tokens (weights [E, 3E)).
template <class A>
void attn_in_proj_fwd_ref(typename A::out_t* out,          // q (C, E) then kv ((n_rows - 1) C, 2E)
                          const typename A::in_t* rows,    // (n_rows, T, C)
                          const typename A::w_t* w,        // (3T, T)
                          const typename A::bias_t* bias,  // (3T)
                          int32_t n_rows, int32_t t, int32_t c, const typename A::quant& q) {
  token_proj_fwd_ref<A>(out, rows, w, bias, 1, t, c, 0, t, q);
  token_proj_fwd_ref<A>(out + (size_t)c * t, rows + (size_t)t * c, w, bias, n_rows - 1, t, c, t, 2 * t, q);
}

// Float multi-head attention core (PyTorch nn.MultiheadAttention after the in-projection):
// ctx[i, h*dh + j] = sum_k softmax_k(q_i,h . k_k,h / sqrt(dh)) v_k,h,j.
template <class T>
void attention_fwd_ref(T* ctx,          // (lq, e)
                       const T* q,      // (lq, e)
                       const T* kv,     // (lk, 2e): k then v per key token
                       T* scratch,      // (lk)
                       int32_t lq, int32_t lk, int32_t e, int32_t heads) {
  const int32_t dh = e / heads;
  const T inv = T(1) / k_sqrt(T(dh));
  for (int32_t i = 0; i < lq; ++i)
    for (int32_t h = 0; h < heads; ++h) {
      const T* qi = q + (size_t)i * e + h * dh;
      for (int32_t k = 0; k < lk; ++k) {
        const T* kk = kv + (size_t)k * 2 * e + h * dh;
        T s = T(0);
        for (int32_t j = 0; j < dh; ++j) s += qi[j] * kk[j];
        scratch[k] = s * inv;
      }
      softmax_fwd_ref<T>(scratch, scratch, 1, lk);
      for (int32_t j = 0; j < dh; ++j) {
        T acc = T(0);
        for (int32_t k = 0; k < lk; ++k) acc += scratch[k] * kv[(size_t)k * 2 * e + e + h * dh + j];
        ctx[(size_t)i * e + h * dh + j] = acc;
      }
    }
}

// ---------------------------------------------------------------------------------------
// Integer softmax.
//
// Scores s_k are int32 in units S (real = S * s_k). With m = max s_k and d_k = m - s_k >= 0,
// softmax_k = 2^(-x_k) / sum 2^(-x), x_k = d_k * S * log2(e). The caller's multiplier turns
// d_k into x_k in Q16 (fp_requantize, saturating: a huge difference gives weight 0).
// 2^(-x) = 2^(-n) * 2^(-f), n = floor(x), f in [0, 1): 2^(-f) from a 65-entry Q30 table of
// 2^(-i/64) with linear interpolation on the next 10 bits (relative error <= 1.5e-5), then a
// rounding right shift by n. The largest score gives exactly 2^30, so sum >= 2^30.
// Probabilities: p_k = e_k / sum in Q15 (scale 2^-15, clamped to 32767) through ONE integer
// reciprocal per row, recip = floor(2^62 / sum): p_k = (e_k * recip + 2^46) >> 47.

constexpr int32_t kExp2Frac = 16;      // x in Q16
constexpr int32_t kProbBits = 15;      // probabilities in Q15
constexpr int32_t kSoftmaxMaxKeys = 256;

// round(2^30 * 2^(-i/64)), i = 0..64 (tests/test_quant.cpp checks every entry against exp2).
inline int32_t exp2_neg_table(int32_t i) {
  static const int32_t t[65] = {
      1073741824, 1062175491, 1050733751, 1039415261, 1028218693, 1017142735, 1006186087, 995347464, 984625594,
      974019220,  963527098,  953147997,  942880699,  932724001,  922676710,  912737649,  902905651, 893179563,
      883558244,  874040567,  864625413,  855311680,  846098274,  836984114,  827968132,  819049271, 810226483,
      801498734,  792865000,  784324269,  775875538,  767517817,  759250125,  751071493,  742980960, 734977579,
      727060411,  719228525,  711481005,  703816941,  696235434,  688735596,  681316545,  673977412, 666717336,
      659535466,  652430958,  645402981,  638450708,  631573326,  624770026,  618040012,  611382493, 604796689,
      598281827,  591837143,  585461881,  579155293,  572916640,  566745190,  560640218,  554601009, 548626854,
      542717053,  536870912};
  return t[i];
}

// 2^(-x / 2^16) in Q30 for x >= 0 (x = INT32_MAX: 0).
inline int32_t exp2_neg_q16(int32_t x) {
  const int32_t n = x >> kExp2Frac;
  if (n > 30) return 0;
  const int32_t f = x & ((1 << kExp2Frac) - 1);
  const int32_t idx = f >> 10, rem = f & 1023;
  const int32_t t0 = exp2_neg_table(idx), t1 = exp2_neg_table(idx + 1);
  const int32_t v = t0 - (int32_t)(((int64_t)(t0 - t1) * rem + 512) >> 10);
  return fp_rdbpot(v, n);
}

// p (n) in Q15 from scores (n) in int32 (max - min <= INT32_MAX); e: scratch (n).
// exp_mult/exp_shift: d (score units) -> x in Q16 (real multiplier S * log2(e) * 2^16). n >= 1.
inline void softmax_int(int16_t* p, const int32_t* scores, int32_t* e, int32_t n, int32_t exp_mult, int32_t exp_shift) {
  int32_t m = scores[0];
  for (int32_t k = 1; k < n; ++k) m = scores[k] > m ? scores[k] : m;
  int64_t sum = 0;
  for (int32_t k = 0; k < n; ++k) {
    // d >= 0; callers keep the score range within int32
    const int32_t x = fp_requantize(m - scores[k], exp_mult, exp_shift);
    e[k] = exp2_neg_q16(x < 0 ? 0 : x);
    sum += e[k];
  }
  const int64_t recip = (int64_t(1) << 62) / sum;  // sum in [2^30, n * 2^30]
  for (int32_t k = 0; k < n; ++k) {
    const int64_t v = ((int64_t)e[k] * recip + (int64_t(1) << 46)) >> 47;
    p[k] = (int16_t)(v > 32767 ? 32767 : v);
  }
}

// Rounding right shift of an int64 by e >= 1 bits, ties away from zero.
inline int64_t rshift_round64(int64_t x, int32_t e) {
  const int64_t half = int64_t(1) << (e - 1);
  return x >= 0 ? (x + half) >> e : -((-x + half) >> e);
}

// Integer attention core on the projected q and kv. q, k, v are int32 values with
// |v| <= A (the in-projection's clamp, validate_quant_model: 2 dh A^2 < 2^(31 + kScoreShift) and
// A (2^15 + lk) < 2^(31 + kPvShift); A = 2^23 - 1 for dh = 4): 24-bit q and k, because the
// teacher's softmax is sharp and a 15-bit q/k grid alone moves its heart rate by 0.18 BPM per
// window (docs/MCU.md). Per query token and head:
//   scores s_k = q . k_k in int64, d_k = max - s_k, rounded down by kScoreShift bits to int32;
//   integer softmax (softmax_int; exp_mult/exp_shift: d units -> Q16 exponent, the 1/sqrt(dh)
//   and the 2^kScoreShift folded in);
//   P (Q15) . V accumulated in int64, rounded down by kPvShift bits, requantised by
//   pv_mult/pv_shift (2^kPvShift folded in) to ctx, clamped to act_min..act_max.
constexpr int32_t kScoreShift = 18;
constexpr int32_t kPvShift = 8;

template <class Out>
void attention_fwd_int(Out* ctx,            // (lq, e)
                       const int32_t* q,    // (lq, e)
                       const int32_t* kv,   // (lk, 2e)
                       int64_t* scores,     // (lk) scratch
                       int32_t* scratch,    // (2 * lk) scratch
                       int16_t* p,          // (lk) probabilities, Q15
                       int32_t lq, int32_t lk, int32_t e, int32_t heads, int32_t exp_mult, int32_t exp_shift,
                       int32_t pv_mult, int32_t pv_shift, int32_t act_min, int32_t act_max) {
  const int32_t dh = e / heads;
  int32_t* neg_d = scratch;    // (lk) -(max - s) >> kScoreShift: the softmax's int32 scores
  int32_t* ex = scratch + lk;  // (lk)
  for (int32_t i = 0; i < lq; ++i)
    for (int32_t h = 0; h < heads; ++h) {
      const int32_t* qi = q + (size_t)i * e + h * dh;
      int64_t m = 0;
      for (int32_t k = 0; k < lk; ++k) {
        const int32_t* kk = kv + (size_t)k * 2 * e + h * dh;
        int64_t s = 0;
        for (int32_t j = 0; j < dh; ++j) s += (int64_t)qi[j] * kk[j];
        scores[k] = s;
        m = (k == 0 || s > m) ? s : m;
      }
      for (int32_t k = 0; k < lk; ++k) {
        const int64_t d = rshift_round64(m - scores[k], kScoreShift);
        neg_d[k] = d > INT32_MAX ? -INT32_MAX : -(int32_t)d;
      }
      softmax_int(p, neg_d, ex, lk, exp_mult, exp_shift);
      for (int32_t j = 0; j < dh; ++j) {
        int64_t acc = 0;
        const int32_t* vj = kv + e + h * dh + j;
        for (int32_t k = 0; k < lk; ++k) acc += (int64_t)p[k] * vj[(size_t)k * 2 * e];
        int32_t y = fp_requantize((int32_t)rshift_round64(acc, kPvShift), pv_mult, pv_shift);
        y = y < act_min ? act_min : (y > act_max ? act_max : y);
        ctx[(size_t)i * e + h * dh + j] = (Out)y;
      }
    }
}

// ---------------------------------------------------------------------------------------
// Integer LayerNorm over the last axis (d <= kLayerNormMaxDim), pure integer arithmetic.
//
// Input a (real = s_a * (a - zp)). With dev_i = d * a_i - sum_j a_j (exact, int32; independent
// of the zero point, so any input zero point works) and
// V = sum_i dev_i^2 (int64), the normalised value is
//   (x_i - mean) / sqrt(var + eps) = sqrt(d) * dev_i / sqrt(V + E),  E = d^3 * eps / s_a^2,
// E an integer constant of the layer (eps_q >= 1). R = floor(sqrt(V + E)) (exact integer square
// root), z_i = round(dev_i * 2^15 / R) (|z_i| < 2^15 because |dev_i| < sqrt(V)), and the affine
// gamma/beta is a per-channel int8 "weight" and int32 bias on z (input scale sqrt(d) * 2^-15):
// out_i = requant_output(bias_i + z_i * w_i, i, q) -- the same requantisation as every layer.

constexpr int32_t kLayerNormZBits = 15;
constexpr int32_t kLayerNormMaxDim = 256;

// floor(sqrt(v)) for v >= 0, bit by bit (exact, deterministic).
inline int64_t isqrt_u64(uint64_t v) {
  uint64_t r = 0, bit = uint64_t(1) << 62;
  while (bit > v) bit >>= 2;
  while (bit) {
    if (v >= r + bit) {
      v -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
    bit >>= 2;
  }
  return (int64_t)r;
}

// The integer policy of norm.h's layernorm_fwd loop (the comment above).
template <class In, class Out>
struct IntLayerNorm {
  using in_t = In;
  using out_t = Out;
  struct Params {
    const int8_t* w;      // (d) gamma
    const int32_t* bias;  // (d) beta at scale sqrt(d) * 2^-15 * s_w
    int64_t eps_q;
    requant_params q;
  };
  struct Stats {
    int32_t sum;   // sum_j a_j
    int64_t root;  // floor(sqrt(V + E)) >= 1 since eps_q >= 1
  };
  static Stats layernorm_stats(const In* x, int32_t d, const Params& p) {
    int32_t sum = 0;
    for (int32_t i = 0; i < d; ++i) sum += x[i];
    int64_t v = p.eps_q;
    for (int32_t i = 0; i < d; ++i) {
      const int64_t dev = (int64_t)d * x[i] - sum;
      v += dev * dev;
    }
    return {sum, isqrt_u64((uint64_t)v)};
  }
  static Out layernorm_out(In x, int32_t i, int32_t d, const Stats& st, const Params& p) {
    const int64_t num = ((int64_t)d * x - st.sum) * (int64_t(1) << kLayerNormZBits);
    const int64_t z = num >= 0 ? (num + st.root / 2) / st.root : -((-num + st.root / 2) / st.root);
    const int32_t acc = p.bias[i] + (int32_t)z * (int32_t)p.w[i];
    return (Out)requant_output(acc, i, p.q);
  }
};

template <class In, class Out>
void layernorm_fwd_int(Out* out,            // (n, d)
                       const In* inp,       // (n, d)
                       const int8_t* w,     // (d) gamma
                       const int32_t* bias, // (d) beta at scale sqrt(d) * 2^-15 * s_w
                       int32_t n, int32_t d, int64_t eps_q, const requant_params& q) {
  using A = IntLayerNorm<In, Out>;
  layernorm_fwd<A>(out, inp, (size_t)n, d, typename A::Params{w, bias, eps_q, q}, [](size_t, const typename A::Stats&) {});
}

}  // namespace pulsekd::kernels
