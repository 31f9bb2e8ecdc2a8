#include "engine/conv_fast.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/blas.h"
#include "engine/parallel.h"

namespace pulsekd {

namespace k = kernels;

namespace {

// Sequences per im2col chunk: keep the column buffer near 4 MB so it stays in L2/L3.
int64_t chunk_sequences(int32_t t_out, const k::conv1d_params& p) {
  const int64_t per_seq = int64_t(t_out) * p.kernel * p.c_in;
  return std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(per_seq, 1));
}

// col (m = seqs * t_out, K * c_in): col[s*t_out + t, k*c_in + ci] = x[s, t*stride - pad + k*dil, ci]
void im2col(real* col, const real* x, int64_t seqs, int32_t t_in, int32_t t_out, const k::conv1d_params& p) {
  const int64_t row = int64_t(p.kernel) * p.c_in;
  for (int64_t s = 0; s < seqs; ++s)
    for (int32_t t = 0; t < t_out; ++t) {
      real* dst = col + (s * t_out + t) * row;
      for (int32_t kk = 0; kk < p.kernel; ++kk) {
        const int32_t ti = t * p.stride - p.pad + kk * p.dilation;
        real* d = dst + int64_t(kk) * p.c_in;
        if (ti < 0 || ti >= t_in) std::memset(d, 0, sizeof(real) * p.c_in);
        else std::memcpy(d, x + (s * t_in + ti) * p.c_in, sizeof(real) * p.c_in);
      }
    }
}

// Scatter-adds columns back: the adjoint of im2col.
void col2im_add(real* grad_x, const real* col, int64_t seqs, int32_t t_in, int32_t t_out, const k::conv1d_params& p) {
  const int64_t row = int64_t(p.kernel) * p.c_in;
  for (int64_t s = 0; s < seqs; ++s)
    for (int32_t t = 0; t < t_out; ++t) {
      const real* src = col + (s * t_out + t) * row;
      for (int32_t kk = 0; kk < p.kernel; ++kk) {
        const int32_t ti = t * p.stride - p.pad + kk * p.dilation;
        if (ti < 0 || ti >= t_in) continue;
        real* d = grad_x + (s * t_in + ti) * p.c_in;
        const real* c = src + int64_t(kk) * p.c_in;
        for (int32_t ci = 0; ci < p.c_in; ++ci) d[ci] += c[ci];
      }
    }
}

thread_local std::vector<real> t_col;  // (chunk * t_out, K * c_in) scratch

}  // namespace

void conv1d_forward(real* out, const real* x, const real* w, const real* bias, int64_t n,
                    int32_t t_in, const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  // Sequences are independent: each thread takes a contiguous range.
  parallel_for(n, [&](int64_t b0, int64_t b1) {
    if (p.groups != 1) {
      const k::ArithFloat<real>::quant q{};
      for (int64_t s = b0; s < b1; ++s)
        k::conv1d_fwd_ref<k::ArithFloat<real>>(out + s * t_out * p.c_out, x + s * t_in * p.c_in, w, bias, t_in, p, q);
      return;
    }
    const int64_t chunk = chunk_sequences(t_out, p), row = int64_t(p.kernel) * p.c_in;
    t_col.resize(size_t(chunk * t_out * row));
    for (int64_t s0 = b0; s0 < b1; s0 += chunk) {
      const int64_t seqs = std::min(chunk, b1 - s0);
      const int64_t m = seqs * t_out;
      real* o = out + s0 * t_out * p.c_out;
      if (bias)
        for (int64_t r = 0; r < m; ++r) std::memcpy(o + r * p.c_out, bias, sizeof(real) * p.c_out);
      im2col(t_col.data(), x + s0 * t_in * p.c_in, seqs, t_in, t_out, p);
      gemm(false, true, int(m), p.c_out, int(row), 1, t_col.data(), int(row), w, int(row), bias ? 1 : 0, o, p.c_out);
    }
  });
}

void conv1d_backward_data(real* grad_x, const real* grad_out, const real* w, int64_t n,
                          int32_t t_in, const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  parallel_for(n, [&](int64_t b0, int64_t b1) {
    if (p.groups != 1) {
      for (int64_t s = b0; s < b1; ++s)
        k::conv1d_bwd_data_ref<real>(grad_x + s * t_in * p.c_in, grad_out + s * t_out * p.c_out, w, t_in, p);
      return;
    }
    const int64_t chunk = chunk_sequences(t_out, p), row = int64_t(p.kernel) * p.c_in;
    t_col.resize(size_t(chunk * t_out * row));
    for (int64_t s0 = b0; s0 < b1; s0 += chunk) {
      const int64_t seqs = std::min(chunk, b1 - s0);
      const int64_t m = seqs * t_out;
      // dcol (m, K*c_in) = grad_out (m, c_out) · w (c_out, K*c_in)
      gemm(false, false, int(m), int(row), p.c_out, 1, grad_out + s0 * t_out * p.c_out, p.c_out, w, int(row), 0, t_col.data(), int(row));
      col2im_add(grad_x + s0 * t_in * p.c_in, t_col.data(), seqs, t_in, t_out, p);
    }
  });
}

void conv1d_backward_weight(real* grad_w, real* grad_b, const real* grad_out, const real* x,
                            int64_t n, int32_t t_in, const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  const int64_t wsize = int64_t(p.c_out) * p.kernel * (p.c_in / p.groups);
  // Each part accumulates into its own buffer; the parts are then added in a fixed order, so
  // the result depends on the thread count only, not on scheduling.
  const int parts = int(std::min<int64_t>(num_threads(), std::max<int64_t>(n, 1)));
  std::vector<std::vector<real>> partial(static_cast<size_t>(parts));  // (parts) × (wsize + c_out)
  auto part_fn = [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      std::vector<real>& acc = partial[size_t(q)];
      acc.assign(size_t(wsize + p.c_out), real(0));
      real* gw = acc.data();
      real* gb = acc.data() + wsize;
      const int64_t b0 = n * q / parts, b1 = n * (q + 1) / parts;
      if (p.groups != 1) {
        for (int64_t s = b0; s < b1; ++s)
          k::conv1d_bwd_weight_ref<real>(gw, gb, grad_out + s * t_out * p.c_out, x + s * t_in * p.c_in, t_in, p);
        continue;
      }
      const int64_t chunk = chunk_sequences(t_out, p), row = int64_t(p.kernel) * p.c_in;
      t_col.resize(size_t(chunk * t_out * row));
      for (int64_t s0 = b0; s0 < b1; s0 += chunk) {
        const int64_t seqs = std::min(chunk, b1 - s0);
        const int64_t m = seqs * t_out;
        const real* go = grad_out + s0 * t_out * p.c_out;
        im2col(t_col.data(), x + s0 * t_in * p.c_in, seqs, t_in, t_out, p);
        // gw (c_out, K*c_in) += go^T (c_out, m) · col (m, K*c_in)
        gemm(true, false, p.c_out, int(row), int(m), 1, go, p.c_out, t_col.data(), int(row), 1, gw, int(row));
        for (int64_t r = 0; r < m; ++r)
          for (int32_t co = 0; co < p.c_out; ++co) gb[co] += go[r * p.c_out + co];
      }
    }
  };
  parallel_for(parts, part_fn);
  for (int q = 0; q < parts; ++q) {
    const real* acc = partial[size_t(q)].data();
    for (int64_t i = 0; i < wsize; ++i) grad_w[i] += acc[i];
    if (grad_b)
      for (int32_t co = 0; co < p.c_out; ++co) grad_b[co] += acc[wsize + co];
  }
}

}  // namespace pulsekd
