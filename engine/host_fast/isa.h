// Host fast paths per ISA: which ISA runs, and the per-ISA kernels (direct, no im2col,
// register-blocked SIMD conv1d and the row softmax; float only, channels-last). One
// implementation (engine/host_fast/conv_direct_impl.h, softmax_impl.h) compiled twice with
// per-file ISA flags: engine/host_fast/kernels_avx512.cpp (-mavx512f/bw/dq/cd -mfma) and
// kernels_avx2.cpp (-mavx2 -mfma). The ISA is chosen at run time from xsimd's CPU detection
// (xsimd::available_architectures()); PULSEKD_ISA=scalar|avx2|avx512 caps it for the process (as
// if the CPU lacked the rest); set_conv_isa() pins a lower one (tests force every path).
// engine/host_fast/dispatch.cpp decides per shape between these kernels, OpenBLAS GEMM and the
// reference.
#pragma once
#include <cstdint>

namespace pulsekd {

enum class ConvIsa : int { scalar = 0, avx2 = 1, avx512 = 2 };

ConvIsa conv_isa_detected();          // best ISA this CPU (and OS) supports, capped by PULSEKD_ISA
ConvIsa conv_isa();                   // the one in use: min(detected, PULSEKD_ISA, set_conv_isa)
void set_conv_isa(ConvIsa isa);       // clamped to the detected ISA; scalar = GEMM/reference only
const char* conv_isa_name(ConvIsa isa);

// Which implementation conv1d_forward / _backward_data / _backward_weight use. automatic = the
// per-shape rule in engine/host_fast/dispatch.cpp (docs/PERFORMANCE.md); the others force one
// path where it applies (simd falls back to gemm for shapes it does not cover, e.g. backward data with
// stride > 1, or when conv_isa() is scalar). For tests and bench/.
enum class ConvPath : int { automatic = 0, reference = 1, gemm = 2, simd = 3 };
void set_conv_path(ConvPath path);
ConvPath conv_path();

namespace simd {

// out (n, t_out, c_out) = [out +] [bias] + sum_{k, ci} wt[k, ci, co] * x[t*stride - pad + k*dil, ci]
// x (n, t_in, c_in); wt (kernel, c_in, c_out_pad) with c_out_pad = c_out rounded up to the
// vector width and zero filled; bias (c_out_pad) or null. pad may be negative (backward data
// runs as a forward conv of grad_out with the flipped kernel). Sequences are independent.
struct DirectFwd {
  float* out;
  const float* x;
  const float* wt;
  const float* bias;
  int64_t n;
  int32_t t_in, t_out, c_in, c_out, c_out_pad, kernel, stride, pad, dilation;
  bool accumulate;
  bool relu;       // store max(result, 0)
  float* scratch;  // direct_fwd_scratch_floats(*this) floats, private to the caller's thread
};

// Output steps whose taps all fall inside [0, t_in): [lo, hi). (static: no inline function may
// be shared with the ISA-flagged translation units.)
static inline void fwd_interior(int32_t t_in, int32_t t_out, int32_t kernel, int32_t stride, int32_t pad, int32_t dil,
                                int32_t& lo, int32_t& hi) {
  lo = pad <= 0 ? 0 : (pad + stride - 1) / stride;
  const int32_t last = t_in - 1 + pad - (kernel - 1) * dil;  // t*stride <= last
  hi = last < 0 ? 0 : last / stride + 1;
  lo = lo < t_out ? lo : t_out;
  hi = hi < t_out ? hi : t_out;
  if (hi < lo) hi = lo;
}
// Input rows read by steps [t_begin, t_end).
static inline int32_t fwd_edge_rows(int32_t t_begin, int32_t t_end, int32_t kernel, int32_t stride, int32_t dil) {
  return t_end <= t_begin ? 0 : (t_end - 1 - t_begin) * stride + (kernel - 1) * dil + 1;
}
// The edge steps run on zero-padded copies of their input rows (left and right).
static inline int64_t direct_fwd_scratch_floats(const DirectFwd& a) {
  int32_t lo, hi;
  fwd_interior(a.t_in, a.t_out, a.kernel, a.stride, a.pad, a.dilation, lo, hi);
  return (int64_t(fwd_edge_rows(0, lo, a.kernel, a.stride, a.dilation)) +
          fwd_edge_rows(hi, a.t_out, a.kernel, a.stride, a.dilation)) * a.c_in;
}

// gw (kernel, c_in, c_out_pad) += sum_{s, t} go[s, t, co] * x[s, t*stride - pad + k*dil, ci]
// (lanes co >= c_out are left unchanged); gb (c_out) += sum_{s, t} go[s, t, co] if not null.
struct DirectWgrad {
  float* gw;
  float* gb;
  const float* go;
  const float* x;
  int64_t n;
  int32_t t_in, t_out, c_in, c_out, c_out_pad, kernel, stride, pad, dilation;
};

// Depthwise (groups == c_in == c_out = c). wt (kernel, c_pad) (transposed, zero filled).
// forward: out[t, c] = [out +] [bias c] + sum_k wt[k, c] x[t*stride - pad + k*dil, c]
struct DepthwiseFwd {
  float* out;
  const float* x;
  const float* wt;
  const float* bias;
  int64_t n;
  int32_t t_in, t_out, c, c_pad, kernel, stride, pad, dilation;
  bool accumulate;
};
// gw (kernel, c_pad) += sum go[t, c] x[t*stride - pad + k*dil, c]; gb (c) += sum go (if not null)
struct DepthwiseWgrad {
  float* gw;
  float* gb;
  const float* go;
  const float* x;
  int64_t n;
  int32_t t_in, t_out, c, c_pad, kernel, stride, pad, dilation;
};

int vector_width(ConvIsa isa);  // floats per register: 16 (avx512), 8 (avx2)

void direct_fwd_avx512(const DirectFwd& a);
void direct_wgrad_avx512(const DirectWgrad& a);
void depthwise_fwd_avx512(const DepthwiseFwd& a);
void depthwise_wgrad_avx512(const DepthwiseWgrad& a);
void direct_fwd_avx2(const DirectFwd& a);
void direct_wgrad_avx2(const DirectWgrad& a);
void depthwise_fwd_avx2(const DepthwiseFwd& a);
void depthwise_wgrad_avx2(const DepthwiseWgrad& a);

// Softmax along the last axis of (rows, d) (engine/host_fast/softmax_impl.h): y = softmax(x), and
// grad_x += y * (grad_y - sum(grad_y * y)). Callers check the ISA (conv_isa()) first.
void softmax_fwd_avx512(float* y, const float* x, int64_t rows, int32_t d);
void softmax_bwd_avx512(float* grad_x, const float* grad_y, const float* y, int64_t rows, int32_t d);
void softmax_fwd_avx2(float* y, const float* x, int64_t rows, int32_t d);
void softmax_bwd_avx2(float* grad_x, const float* grad_y, const float* y, int64_t rows, int32_t d);

}  // namespace simd
}  // namespace pulsekd
