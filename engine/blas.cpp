#include "engine/blas.h"

#include <cblas.h>

namespace pulsekd {

void gemm(bool trans_a, bool trans_b, int m, int n, int k, real alpha, const real* a, int lda,
          const real* b, int ldb, real beta, real* c, int ldc) {
  if (m == 0 || n == 0) return;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef PULSEKD_REAL_DOUBLE
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

void set_blas_threads(int n) { openblas_set_num_threads(n); }

}  // namespace pulsekd
