// Host fast path for AVX2 + FMA: the direct conv1d kernels (engine/host_fast/conv_direct_impl.h)
// and the row softmax (softmax_impl.h) instantiated for this ISA. Compiled with -mavx2 -mfma
// (CMakeLists.txt, "SIMD kernel flags"); called only when the CPU reports AVX2 and FMA. No C++
// standard library here.
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "engine/host_fast/conv_direct_impl.h"
#include "engine/host_fast/softmax_impl.h"

namespace pulsekd::simd {
namespace {

struct TrAvx2 {
  using B = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
  static constexpr int W = 8;
  static constexpr int NVMAX = 2;
  // 16 ymm registers: <= 12 accumulators, the weight vectors and one broadcast.
  template <int NV> static constexpr int TB = NV == 1 ? 12 : 6;
  template <int NV> static constexpr int CB = NV == 1 ? 12 : 6;
  static B relu(const B& v) { return _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ)); }  // v > 0 ? v : 0
  using Mask = __m256i;
  static B loadm(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static B loadn(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void storen(float* p, const B& v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
};

}  // namespace

void direct_fwd_avx2(const DirectFwd& a) { impl::direct_fwd<TrAvx2>(a); }
void direct_wgrad_avx2(const DirectWgrad& a) { impl::direct_wgrad<TrAvx2>(a); }
void depthwise_fwd_avx2(const DepthwiseFwd& a) { impl::depthwise_fwd<TrAvx2>(a); }
void depthwise_wgrad_avx2(const DepthwiseWgrad& a) { impl::depthwise_wgrad<TrAvx2>(a); }
void softmax_fwd_avx2(float* y, const float* x, int64_t rows, int32_t d) { impl::softmax_rows<TrAvx2>(y, x, rows, d); }
void softmax_bwd_avx2(float* gx, const float* gy, const float* y, int64_t rows, int32_t d) {
  impl::softmax_bwd_rows<TrAvx2>(gx, gy, y, rows, d);
}

}  // namespace pulsekd::simd
#else
#include "engine/host_fast/isa.h"
namespace pulsekd::simd {
void direct_fwd_avx2(const DirectFwd&) {}
void direct_wgrad_avx2(const DirectWgrad&) {}
void depthwise_fwd_avx2(const DepthwiseFwd&) {}
void depthwise_wgrad_avx2(const DepthwiseWgrad&) {}
void softmax_fwd_avx2(float*, const float*, int64_t, int32_t) {}
void softmax_bwd_avx2(float*, const float*, const float*, int64_t, int32_t) {}
}  // namespace pulsekd::simd
#endif
