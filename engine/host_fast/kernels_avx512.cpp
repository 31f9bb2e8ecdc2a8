// Host fast path for AVX-512: the direct conv1d kernels (engine/host_fast/conv_direct_impl.h)
// and the row softmax (softmax_impl.h) instantiated for this ISA. Compiled with
// -mavx512f -mavx512cd -mavx512dq -mavx512bw -mfma (CMakeLists.txt, "SIMD kernel flags");
// called only when the CPU reports those extensions. No C++ standard library here.
#if defined(__AVX512F__) && defined(__FMA__)
#include <immintrin.h>

#include "engine/host_fast/conv_direct_impl.h"
#include "engine/host_fast/softmax_impl.h"

namespace pulsekd::simd {
namespace {

struct TrAvx512 {
  using B = xsimd::batch<float, xsimd::avx512f>;
  static constexpr int W = 16;
  static constexpr int NVMAX = 4;
  // 32 zmm registers: <= 24 accumulators, the weight vectors and one broadcast.
  template <int NV> static constexpr int TB = NV == 1 ? 14 : NV == 2 ? 12 : NV == 3 ? 8 : 6;
  template <int NV> static constexpr int CB = NV == 1 ? 16 : NV == 2 ? 12 : NV == 3 ? 8 : 6;
  // v > 0 ? v : 0 (NaN and -0 give +0, as relu_fwd_ref); not _mm512_max_ps, which trips a
  // GCC 12 -Wmaybe-uninitialized false positive in its own header.
  static B relu(const B& v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v); }
  using Mask = __mmask16;
  static Mask mask(int n) { return __mmask16((1u << n) - 1); }
  static B loadm(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static B loadn(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void storen(float* p, const B& v, int n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v); }
};

}  // namespace

void direct_fwd_avx512(const DirectFwd& a) { impl::direct_fwd<TrAvx512>(a); }
void direct_wgrad_avx512(const DirectWgrad& a) { impl::direct_wgrad<TrAvx512>(a); }
void depthwise_fwd_avx512(const DepthwiseFwd& a) { impl::depthwise_fwd<TrAvx512>(a); }
void depthwise_wgrad_avx512(const DepthwiseWgrad& a) { impl::depthwise_wgrad<TrAvx512>(a); }
void softmax_fwd_avx512(float* y, const float* x, int64_t rows, int32_t d) { impl::softmax_rows<TrAvx512>(y, x, rows, d); }
void softmax_bwd_avx512(float* gx, const float* gy, const float* y, int64_t rows, int32_t d) {
  impl::softmax_bwd_rows<TrAvx512>(gx, gy, y, rows, d);
}

}  // namespace pulsekd::simd
#else
#include "engine/host_fast/isa.h"
// Compiler without the flags (e.g. a non-x86 build): never selected, see conv_isa_detected().
namespace pulsekd::simd {
void direct_fwd_avx512(const DirectFwd&) {}
void direct_wgrad_avx512(const DirectWgrad&) {}
void depthwise_fwd_avx512(const DepthwiseFwd&) {}
void depthwise_wgrad_avx512(const DepthwiseWgrad&) {}
void softmax_fwd_avx512(float*, const float*, int64_t, int32_t) {}
void softmax_bwd_avx512(float*, const float*, const float*, int64_t, int32_t) {}
}  // namespace pulsekd::simd
#endif
