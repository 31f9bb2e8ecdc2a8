// Host fast paths: the entry points for conv1d and the row softmax. Per shape and per ISA
// (engine/host_fast/isa.h) they run the direct SIMD kernels, im2col + OpenBLAS GEMM, or the
// reference loops (grouped convs, the double build). Held equal to engine/kernels/conv1d.h and
// softmax.h by tests/test_kernels.cpp.
#pragma once
#include "engine/kernels/conv1d.h"
#include "engine/tensor.h"

namespace pulsekd {

// out (n, t_out, c_out) = conv(x (n, t_in, c_in), w (c_out, K, c_in/groups)) + bias (c_out),
// then max(out, 0) when relu (fused into the store of the direct kernels).
void conv1d_forward(real* out, const real* x, const real* w, const real* bias, int64_t n,
                    int32_t t_in, const kernels::conv1d_params& p, bool relu = false);
// Adds d/dx into grad_x (n, t_in, c_in).
void conv1d_backward_data(real* grad_x, const real* grad_out, const real* w, int64_t n,
                          int32_t t_in, const kernels::conv1d_params& p);
// Adds d/dw into grad_w (c_out, K, c_in/groups) and d/dbias into grad_b (c_out) if not null.
void conv1d_backward_weight(real* grad_w, real* grad_b, const real* grad_out, const real* x,
                            int64_t n, int32_t t_in, const kernels::conv1d_params& p);

// Softmax along the last axis of (rows, d): the AVX-512 / AVX2 kernels when the CPU has them
// (conv_isa(), float builds), else kernels::softmax_fwd_ref / softmax_bwd_ref.
void softmax_rows_forward(real* y, const real* x, int64_t rows, int32_t d);
// grad_x += y * (grad_y - sum(grad_y * y)) for y = softmax(x).
void softmax_rows_backward(real* grad_x, const real* grad_y, const real* y, int64_t rows, int32_t d);

}  // namespace pulsekd
