// One GEMM entry point for float and double builds of the engine (OpenBLAS cblas).
#pragma once
#include "engine/tensor.h"

namespace pulsekd {

// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C, row-major; op = transpose if t*.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, real alpha, const real* a, int lda,
          const real* b, int ldb, real beta, real* c, int ldc);

// Threads used by OpenBLAS inside one GEMM (the engine parallelises over the batch itself
// and keeps this at 1 by default).
void set_blas_threads(int n);

}  // namespace pulsekd
