#include "engine/host_fast/dispatch.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <cstring>
#include <vector>

#include "engine/blas.h"
#include "engine/host_fast/isa.h"
#include "engine/kernels/activation.h"
#include "engine/kernels/softmax.h"
#include "engine/parallel.h"

#if !defined(PULSEKD_REAL_DOUBLE) && (defined(__x86_64__) || defined(_M_X64))
#define PULSEKD_SIMD_CONV 1
#include <xsimd/xsimd.hpp>
#endif

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
ConvPath g_path = ConvPath::automatic;  // set_conv_path

// Sequences per thread below which a conv runs on the calling thread alone: waking a worker
// costs tens of microseconds, more than a thread's share of a small layer (with 2 threads,
// batch-1 student inference was 4x slower than with 1 before this). Depends on the shape only,
// so results stay deterministic for a thread count.
int64_t min_seqs_per_thread(int32_t t_out, const k::conv1d_params& p) {
  constexpr int64_t kMinMacsPerThread = int64_t(1) << 22;
  const int64_t macs = std::max<int64_t>(1, int64_t(t_out) * p.c_out * p.kernel * (p.c_in / p.groups));
  return (kMinMacsPerThread + macs - 1) / macs;
}
// Weight-gradient parts (one buffer each, reduced in order): one per thread, fewer when small.
int wgrad_parts(int64_t n, int32_t t_out, const k::conv1d_params& p) {
  return int(std::clamp<int64_t>(n / min_seqs_per_thread(t_out, p), 1, num_threads()));
}

void gemm_forward(real* out, const real* x, const real* w, const real* bias, int64_t n,
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
  }, min_seqs_per_thread(t_out, p));
}

void gemm_backward_data(real* grad_x, const real* grad_out, const real* w, int64_t n,
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
  }, min_seqs_per_thread(t_out, p));
}

void gemm_backward_weight(real* grad_w, real* grad_b, const real* grad_out, const real* x,
                          int64_t n, int32_t t_in, const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  const int64_t wsize = int64_t(p.c_out) * p.kernel * (p.c_in / p.groups);
  // Each part accumulates into its own buffer; the parts are then added in a fixed order, so
  // the result depends on the thread count only, not on scheduling.
  const int parts = wgrad_parts(n, t_out, p);
  std::vector<std::vector<real>> partial(static_cast<size_t>(parts));  // (parts) × (wsize + c_out)
  auto part_fn = [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      std::vector<real>& acc = partial[size_t(q)];
      acc.assign(size_t(wsize + p.c_out), real(0));
      real* gw = acc.data();
      real* gb = acc.data() + wsize;
      const int64_t b0 = n * q / parts, b1 = n * (q + 1) / parts;
      if (p.groups != 1 || g_path == ConvPath::reference) {
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


// Reference loops over the batch (the groups != 1 fallback and ConvPath::reference).
void ref_forward(real* out, const real* x, const real* w, const real* bias, int64_t n, int32_t t_in,
                 const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  parallel_for(n, [&](int64_t b0, int64_t b1) {
    const k::ArithFloat<real>::quant q{};
    for (int64_t s = b0; s < b1; ++s)
      k::conv1d_fwd_ref<k::ArithFloat<real>>(out + s * t_out * p.c_out, x + s * t_in * p.c_in, w, bias, t_in, p, q);
  }, min_seqs_per_thread(t_out, p));
}

void ref_backward_data(real* grad_x, const real* grad_out, const real* w, int64_t n, int32_t t_in,
                       const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  parallel_for(n, [&](int64_t b0, int64_t b1) {
    for (int64_t s = b0; s < b1; ++s)
      k::conv1d_bwd_data_ref<real>(grad_x + s * t_in * p.c_in, grad_out + s * t_out * p.c_out, w, t_in, p);
  }, min_seqs_per_thread(t_out, p));
}

// ---------------------------------------------------------------------------------------
// ISA selection and per-shape dispatch

int g_isa_pin = -1;  // set_conv_isa

ConvIsa detect_isa() {
#ifdef PULSEKD_SIMD_CONV
  const auto av = xsimd::available_architectures();
  // __builtin_cpu_supports also checks that the OS saves the zmm/ymm state (XCR0).
  if (av.avx512f && av.avx512cd && av.avx512dq && av.avx512bw && av.fma3_avx2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw"))
    return ConvIsa::avx512;
  if (av.fma3_avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ConvIsa::avx2;
#endif
  return ConvIsa::scalar;
}

ConvIsa env_isa(ConvIsa detected) {
  const char* e = std::getenv("PULSEKD_ISA");
  if (!e || !*e) return detected;
  const std::string v(e);
  ConvIsa want = detected;
  if (v == "scalar" || v == "none" || v == "generic") want = ConvIsa::scalar;
  else if (v == "avx2") want = ConvIsa::avx2;
  else if (v == "avx512") want = ConvIsa::avx512;
  return std::min(want, detected);
}

}  // namespace

// PULSEKD_ISA caps what counts as detected, so a whole test suite can run as on a CPU without
// AVX-512 (PULSEKD_ISA=avx2) or without either (PULSEKD_ISA=scalar).
ConvIsa conv_isa_detected() {
  static const ConvIsa d = env_isa(detect_isa());
  return d;
}

ConvIsa conv_isa() { return g_isa_pin < 0 ? conv_isa_detected() : std::min(ConvIsa(g_isa_pin), conv_isa_detected()); }

void set_conv_isa(ConvIsa isa) { g_isa_pin = int(isa); }

const char* conv_isa_name(ConvIsa isa) {
  switch (isa) {
    case ConvIsa::avx512: return "avx512";
    case ConvIsa::avx2: return "avx2";
    default: return "scalar";
  }
}

void set_conv_path(ConvPath path) { g_path = path; }
ConvPath conv_path() { return g_path; }

int simd::vector_width(ConvIsa isa) { return isa == ConvIsa::avx512 ? 16 : isa == ConvIsa::avx2 ? 8 : 1; }

namespace {

#ifdef PULSEKD_SIMD_CONV
// The SIMD kernels are float-only; in the double build this block is compiled out and every
// shape takes the GEMM / reference path.
bool is_depthwise(const k::conv1d_params& p) { return p.groups > 1 && p.groups == p.c_in && p.groups == p.c_out; }

// Per-shape rule (docs/PERFORMANCE.md): the direct kernels for every dense (groups == 1) and
// depthwise conv when the CPU has AVX2+FMA or AVX-512; backward data needs stride 1 (it runs as a
// forward conv of grad_out with the flipped kernel). Other grouped convs: reference loops.
bool use_simd(const k::conv1d_params& p, bool backward_data) {
  if (conv_isa() == ConvIsa::scalar) return false;
  if (g_path == ConvPath::gemm || g_path == ConvPath::reference) return false;
  if (p.groups != 1 && !is_depthwise(p)) return false;
  if (backward_data && p.stride != 1) return false;
  return true;
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

thread_local std::vector<float> t_wt, t_bias;  // transposed weights / padded bias of the caller
thread_local std::vector<float> t_edge;         // zero-padded edge rows, per worker

// The ISA of the dense direct kernels for `lanes` vector channels (forward and backward weight:
// c_out; backward data: c_in). Channel counts of 16k + 8 (the student's 24) run the AVX2
// kernels on an AVX-512 machine: whole ymm vectors instead of a half-masked zmm. Measured on
// Zen 4 (conv_bench --shape, docs/PERFORMANCE.md): 24 channels, backward weight 32 -> 78
// GFLOP/s, forward 64 -> 77; full-zmm counts (16, 32, 48, 64) stay faster with AVX-512.
ConvIsa dense_kernel_isa(int32_t lanes) {
  const ConvIsa isa = conv_isa();
  return isa == ConvIsa::avx512 && lanes % 16 == 8 ? ConvIsa::avx2 : isa;
}

void run_fwd(simd::DirectFwd a, ConvIsa isa) {
  t_edge.resize(size_t(std::max<int64_t>(simd::direct_fwd_scratch_floats(a), 1)));
  a.scratch = t_edge.data();
  if (isa == ConvIsa::avx512) simd::direct_fwd_avx512(a);
  else simd::direct_fwd_avx2(a);
}

void run_wgrad(const simd::DirectWgrad& a, ConvIsa isa) {
  if (isa == ConvIsa::avx512) simd::direct_wgrad_avx512(a);
  else simd::direct_wgrad_avx2(a);
}
void run_dw_fwd(const simd::DepthwiseFwd& a) {
  if (conv_isa() == ConvIsa::avx512) simd::depthwise_fwd_avx512(a);
  else simd::depthwise_fwd_avx2(a);
}
void run_dw_wgrad(const simd::DepthwiseWgrad& a) {
  if (conv_isa() == ConvIsa::avx512) simd::depthwise_wgrad_avx512(a);
  else simd::depthwise_wgrad_avx2(a);
}

// bias (c) zero-padded to cp lanes (the kernels load whole vectors), or null.
const float* padded_bias(const float* bias, int32_t c, int64_t cp) {
  if (!bias) return nullptr;
  t_bias.assign(size_t(cp), 0.f);
  std::copy(bias, bias + c, t_bias.begin());
  return t_bias.data();
}

// The direct kernels: parallel_for gives every thread a contiguous range of sequences.
void simd_forward(float* out, const float* x, const float* w, const float* bias, int64_t n, int32_t t_in,
                  const k::conv1d_params& p, bool relu) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  const int vw = simd::vector_width(conv_isa());
  if (p.groups == 1) {
    const ConvIsa isa = dense_kernel_isa(p.c_out);
    const int64_t cop = round_up(p.c_out, simd::vector_width(isa));
    t_wt.assign(size_t(p.kernel * p.c_in * cop), 0.f);  // (K, c_in, cop) = w (c_out, K, c_in) transposed
    for (int32_t co = 0; co < p.c_out; ++co)
      for (int32_t kk = 0; kk < p.kernel; ++kk)
        for (int32_t ci = 0; ci < p.c_in; ++ci)
          t_wt[size_t((int64_t(kk) * p.c_in + ci) * cop + co)] = w[(int64_t(co) * p.kernel + kk) * p.c_in + ci];
    const float* wt = t_wt.data();
    const float* bp = padded_bias(bias, p.c_out, cop);
    parallel_for(n, [&](int64_t b0, int64_t b1) {
      const simd::DirectFwd a{out + b0 * t_out * p.c_out, x + b0 * t_in * p.c_in, wt, bp, b1 - b0, t_in, t_out,
                              p.c_in, p.c_out, int32_t(cop), p.kernel, p.stride, p.pad, p.dilation, false, relu, nullptr};
      run_fwd(a, isa);
    }, min_seqs_per_thread(t_out, p));
    return;
  }
  const int64_t cp = round_up(p.c_in, vw);  // depthwise: wt (K, cp)
  t_wt.assign(size_t(p.kernel * cp), 0.f);
  for (int32_t c = 0; c < p.c_in; ++c)
    for (int32_t kk = 0; kk < p.kernel; ++kk) t_wt[size_t(int64_t(kk) * cp + c)] = w[int64_t(c) * p.kernel + kk];
  const float* wt = t_wt.data();
  const float* bp = padded_bias(bias, p.c_in, cp);
  parallel_for(n, [&](int64_t b0, int64_t b1) {
    const simd::DepthwiseFwd a{out + b0 * t_out * p.c_in, x + b0 * t_in * p.c_in, wt, bp, b1 - b0, t_in, t_out,
                               p.c_in, int32_t(cp), p.kernel, p.stride, p.pad, p.dilation, false};
    run_dw_fwd(a);
  }, min_seqs_per_thread(t_out, p));
  if (relu) k::relu_fwd_ref<float>(out, out, size_t(n * t_out * p.c_in));
}

// Stride 1: grad_x[ti] += sum_k' w'[k'] grad_out[ti - pad' + k'*dil] with w'[k'] = w[K-1-k']
// (channels swapped) and pad' = (K-1)*dil - pad: a forward conv with output length t_in.
void simd_backward_data(float* grad_x, const float* grad_out, const float* w, int64_t n, int32_t t_in,
                        const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  const int vw = simd::vector_width(conv_isa());
  const int32_t pad2 = (p.kernel - 1) * p.dilation - p.pad;
  if (p.groups == 1) {
    const ConvIsa isa = dense_kernel_isa(p.c_in);
    const int64_t cip = round_up(p.c_in, simd::vector_width(isa));
    t_wt.assign(size_t(p.kernel * p.c_out * cip), 0.f);  // (K, c_out, cip)
    for (int32_t co = 0; co < p.c_out; ++co)
      for (int32_t kk = 0; kk < p.kernel; ++kk)
        for (int32_t ci = 0; ci < p.c_in; ++ci)
          t_wt[size_t((int64_t(p.kernel - 1 - kk) * p.c_out + co) * cip + ci)] = w[(int64_t(co) * p.kernel + kk) * p.c_in + ci];
    const float* wt = t_wt.data();
    parallel_for(n, [&](int64_t b0, int64_t b1) {
      const simd::DirectFwd a{grad_x + b0 * t_in * p.c_in, grad_out + b0 * t_out * p.c_out, wt, nullptr, b1 - b0, t_out, t_in,
                              p.c_out, p.c_in, int32_t(cip), p.kernel, 1, pad2, p.dilation, true, false, nullptr};
      run_fwd(a, isa);
    }, min_seqs_per_thread(t_out, p));
    return;
  }
  const int64_t cp = round_up(p.c_in, vw);
  t_wt.assign(size_t(p.kernel * cp), 0.f);
  for (int32_t c = 0; c < p.c_in; ++c)
    for (int32_t kk = 0; kk < p.kernel; ++kk) t_wt[size_t(int64_t(p.kernel - 1 - kk) * cp + c)] = w[int64_t(c) * p.kernel + kk];
  const float* wt = t_wt.data();
  parallel_for(n, [&](int64_t b0, int64_t b1) {
    const simd::DepthwiseFwd a{grad_x + b0 * t_in * p.c_in, grad_out + b0 * t_out * p.c_in, wt, nullptr, b1 - b0, t_out, t_in,
                               p.c_in, int32_t(cp), p.kernel, 1, pad2, p.dilation, true};
    run_dw_fwd(a);
  }, min_seqs_per_thread(t_out, p));
}

// Each part accumulates into its own (K, c_in, cop) buffer; the parts are added in part order,
// so the result depends on the thread count only.
void simd_backward_weight(float* grad_w, float* grad_b, const float* grad_out, const float* x, int64_t n, int32_t t_in,
                          const k::conv1d_params& p) {
  const int32_t t_out = k::conv1d_out_len(t_in, p);
  const bool dw = p.groups != 1;
  const ConvIsa isa = dw ? conv_isa() : dense_kernel_isa(p.c_out);
  const int64_t cop = round_up(p.c_out, simd::vector_width(isa));
  const int64_t wsize = dw ? int64_t(p.kernel) * cop : int64_t(p.kernel) * p.c_in * cop;
  const int parts = wgrad_parts(n, t_out, p);
  std::vector<std::vector<float>> partial(static_cast<size_t>(parts));
  parallel_for(parts, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      std::vector<float>& acc = partial[size_t(q)];
      acc.assign(size_t(wsize + cop), 0.f);
      const int64_t b0 = n * q / parts, b1 = n * (q + 1) / parts;
      if (dw) {
        const simd::DepthwiseWgrad a{acc.data(), acc.data() + wsize, grad_out + b0 * t_out * p.c_out, x + b0 * t_in * p.c_in,
                                     b1 - b0, t_in, t_out, p.c_in, int32_t(cop), p.kernel, p.stride, p.pad, p.dilation};
        run_dw_wgrad(a);
      } else {
        const simd::DirectWgrad a{acc.data(), acc.data() + wsize, grad_out + b0 * t_out * p.c_out, x + b0 * t_in * p.c_in,
                                  b1 - b0, t_in, t_out, p.c_in, p.c_out, int32_t(cop), p.kernel, p.stride, p.pad, p.dilation};
        run_wgrad(a, isa);
      }
    }
  });
  for (int q = 0; q < parts; ++q) {
    const float* acc = partial[size_t(q)].data();
    if (dw) {
      for (int32_t c = 0; c < p.c_in; ++c)
        for (int32_t kk = 0; kk < p.kernel; ++kk) grad_w[int64_t(c) * p.kernel + kk] += acc[int64_t(kk) * cop + c];
    } else {
      for (int32_t co = 0; co < p.c_out; ++co)
        for (int32_t kk = 0; kk < p.kernel; ++kk)
          for (int32_t ci = 0; ci < p.c_in; ++ci)
            grad_w[(int64_t(co) * p.kernel + kk) * p.c_in + ci] += acc[(int64_t(kk) * p.c_in + ci) * cop + co];
    }
    if (grad_b)
      for (int32_t co = 0; co < p.c_out; ++co) grad_b[co] += acc[wsize + co];
  }
}
#endif  // PULSEKD_SIMD_CONV

}  // namespace

void conv1d_forward(real* out, const real* x, const real* w, const real* bias, int64_t n,
                    int32_t t_in, const k::conv1d_params& p, bool relu) {
#ifdef PULSEKD_SIMD_CONV
  if (use_simd(p, false)) return simd_forward(out, x, w, bias, n, t_in, p, relu);
#endif
  if (g_path == ConvPath::reference || p.groups != 1) ref_forward(out, x, w, bias, n, t_in, p);
  else gemm_forward(out, x, w, bias, n, t_in, p);
  if (relu) k::relu_fwd_ref<real>(out, out, size_t(n * k::conv1d_out_len(t_in, p) * p.c_out));
}

void conv1d_backward_data(real* grad_x, const real* grad_out, const real* w, int64_t n,
                          int32_t t_in, const k::conv1d_params& p) {
#ifdef PULSEKD_SIMD_CONV
  if (use_simd(p, true)) return simd_backward_data(grad_x, grad_out, w, n, t_in, p);
#endif
  if (g_path == ConvPath::reference || p.groups != 1) return ref_backward_data(grad_x, grad_out, w, n, t_in, p);
  gemm_backward_data(grad_x, grad_out, w, n, t_in, p);
}

void conv1d_backward_weight(real* grad_w, real* grad_b, const real* grad_out, const real* x,
                            int64_t n, int32_t t_in, const k::conv1d_params& p) {
#ifdef PULSEKD_SIMD_CONV
  if (use_simd(p, false)) return simd_backward_weight(grad_w, grad_b, grad_out, x, n, t_in, p);
#endif
  // gemm_backward_weight runs the reference loops itself for groups != 1 or ConvPath::reference
  gemm_backward_weight(grad_w, grad_b, grad_out, x, n, t_in, p);
}

void softmax_rows_forward(real* y, const real* x, int64_t rows, int32_t d) {
#ifdef PULSEKD_SIMD_CONV
  if (conv_isa() == ConvIsa::avx512) return simd::softmax_fwd_avx512(y, x, rows, d);
  if (conv_isa() == ConvIsa::avx2) return simd::softmax_fwd_avx2(y, x, rows, d);
#endif
  k::softmax_fwd_ref<real>(y, x, size_t(rows), d);
}

void softmax_rows_backward(real* grad_x, const real* grad_y, const real* y, int64_t rows, int32_t d) {
#ifdef PULSEKD_SIMD_CONV
  if (conv_isa() == ConvIsa::avx512) return simd::softmax_bwd_avx512(grad_x, grad_y, y, rows, d);
  if (conv_isa() == ConvIsa::avx2) return simd::softmax_bwd_avx2(grad_x, grad_y, y, rows, d);
#endif
  k::softmax_bwd_ref<real>(grad_x, grad_y, y, size_t(rows), d);
}

}  // namespace pulsekd
