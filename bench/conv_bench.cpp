// Conv1d micro-benchmark at the PULSE shapes: GFLOP/s (min and median time of N runs) of the
// reference loops, the im2col + OpenBLAS GEMM path and the direct SIMD kernels, for forward,
// backward data and backward weight, beside the single-core FP32 FMA peak measured by a probe
// (independent FMA chains on zmm/ymm registers).
//
//   build-perf/conv_bench [--threads N] [--reps N] [--seqs N] [--ref-seqs N] [--isa avx2|avx512]
//
// seqs = batch 256 windows x 4 rows = 1024 sequences by default (the reference runs on fewer:
// its GFLOP/s does not depend on the batch).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/host_fast/dispatch.h"
#include "engine/host_fast/isa.h"
#include "engine/parallel.h"
#include "engine/rng.h"

using namespace pulsekd;
namespace k = pulsekd::kernels;
using Clock = std::chrono::steady_clock;

namespace {

// ---- FMA peak probe: 12 independent accumulator chains, 2 FMAs/cycle x 4-cycle latency ----
// 12 independent chains (2 FMA ports x 4-cycle latency = 8 needed), written in asm so the
// compiler can neither fold nor spill them. Returns the number of FMA instructions executed.
__attribute__((target("avx512f"), noinline)) long probe_avx512(long iters) {
  asm volatile(
      "vxorps %%xmm0, %%xmm0, %%xmm0\n\t"
      "vbroadcastss %%xmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t"
      "1:\n\t"
      "vfmadd231ps %%zmm0, %%zmm1, %%zmm2\n\t vfmadd231ps %%zmm0, %%zmm1, %%zmm3\n\t"
      "vfmadd231ps %%zmm0, %%zmm1, %%zmm4\n\t vfmadd231ps %%zmm0, %%zmm1, %%zmm5\n\t"
      "vfmadd231ps %%zmm0, %%zmm1, %%zmm6\n\t vfmadd231ps %%zmm0, %%zmm1, %%zmm7\n\t"
      "vfmadd231ps %%zmm0, %%zmm1, %%zmm8\n\t vfmadd231ps %%zmm0, %%zmm1, %%zmm9\n\t"
      "vfmadd231ps %%zmm0, %%zmm1, %%zmm10\n\t vfmadd231ps %%zmm0, %%zmm1, %%zmm11\n\t"
      "vfmadd231ps %%zmm0, %%zmm1, %%zmm12\n\t vfmadd231ps %%zmm0, %%zmm1, %%zmm13\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "cc");
  return iters;
}
__attribute__((target("avx2,fma"), noinline)) long probe_avx2(long iters) {
  asm volatile(
      "vxorps %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm2\n\t vfmadd231ps %%ymm0, %%ymm1, %%ymm3\n\t"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm4\n\t vfmadd231ps %%ymm0, %%ymm1, %%ymm5\n\t"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm6\n\t vfmadd231ps %%ymm0, %%ymm1, %%ymm7\n\t"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm8\n\t vfmadd231ps %%ymm0, %%ymm1, %%ymm9\n\t"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm10\n\t vfmadd231ps %%ymm0, %%ymm1, %%ymm11\n\t"
      "vfmadd231ps %%ymm0, %%ymm1, %%ymm12\n\t vfmadd231ps %%ymm0, %%ymm1, %%ymm13\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "cc");
  return iters;
}

template <class F>
std::pair<double, double> time_min_median(int reps, F&& f) {
  std::vector<double> t;
  f();  // warm-up
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

// Many short runs (about 4 ms each), fastest kept: on a shared machine a long run is almost
// always preempted somewhere, a short one often is not.
double peak_gflops(ConvIsa isa, int reps) {
  const long iters = 1'000'000;
  reps = std::max(reps, 61);
  const int lanes = isa == ConvIsa::avx512 ? 16 : 8;
  auto [tmin, tmed] = time_min_median(reps, [&] { isa == ConvIsa::avx512 ? probe_avx512(iters) : probe_avx2(iters); });
  (void)tmed;
  return 2.0 * lanes * 12 * double(iters) / tmin * 1e-9;
}

struct BenchShape {
  const char* name;
  int cin, cout, k, dil, t;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 11, seqs = 1024, ref_seqs = 32;
  std::string isa_arg;
  std::vector<BenchShape> only;  // --shape: these instead of the PULSE shapes
  std::vector<std::string> only_names;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--reps") reps = std::atoi(next().c_str());
    else if (a == "--seqs") seqs = std::atoi(next().c_str());
    else if (a == "--ref-seqs") ref_seqs = std::atoi(next().c_str());
    else if (a == "--isa") isa_arg = next();
    else if (a == "--shape") {
      const std::string v = next();
      BenchShape sh{nullptr, 0, 0, 0, 0, 0};
      if (std::sscanf(v.c_str(), "%d,%d,%d,%d,%d", &sh.cin, &sh.cout, &sh.k, &sh.dil, &sh.t) != 5 || sh.cin < 1 || sh.cout < 1 ||
          sh.k < 1 || sh.dil < 1 || sh.t < 1 || sh.cin > 4096 || sh.cout > 4096 || sh.k > 64 || sh.t > 65536) {
        std::fprintf(stderr, "conv_bench: --shape expects CIN,COUT,K,DIL,T (positive integers), got '%s'\n", v.c_str());
        return 2;
      }
      only_names.push_back(v);
      only.push_back(sh);
    } else {
      std::fprintf(stderr,
                   "usage: conv_bench [--threads N] [--reps N] [--seqs N] [--ref-seqs N] [--isa avx2|avx512] "
                   "[--shape CIN,COUT,K,DIL,T ...]\n");
      return 2;
    }
  }
  set_num_threads(threads);
  if (isa_arg == "avx2") set_conv_isa(ConvIsa::avx2);
  else if (isa_arg == "avx512") set_conv_isa(ConvIsa::avx512);
  const ConvIsa isa = conv_isa();
  std::printf("conv ISA %s (detected %s), %d thread(s), %d sequences (reference: %d), min/median of %d\n", conv_isa_name(isa),
              conv_isa_name(conv_isa_detected()), threads, seqs, ref_seqs, reps);
  double peak = 0;
  if (isa != ConvIsa::scalar) {
    peak = peak_gflops(isa, 5);
    std::printf("FP32 FMA peak (probe, %s, 1 core): %.1f GFLOP/s\n\n", conv_isa_name(isa), peak);
  }
  std::vector<BenchShape> shapes = {
      {"teacher 1->32 T256", 1, 32, 5, 2, 256},   {"teacher 32->32 T256", 32, 32, 5, 2, 256},
      {"teacher 32->48 T64", 32, 48, 5, 2, 64},   {"teacher 48->48 T64", 48, 48, 5, 2, 64},
      {"teacher 48->64 T32", 48, 64, 5, 2, 32},   {"teacher 64->64 T32", 64, 64, 5, 2, 32},
      {"student 1->16 T256 d2", 1, 16, 3, 2, 256}, {"student 16->16 T256 d2", 16, 16, 3, 2, 256},
      {"student 16->24 T64 d3", 16, 24, 3, 3, 64}, {"student 24->24 T64 d3", 24, 24, 3, 3, 64},
      {"student 24->32 T16 d4", 24, 32, 3, 4, 16}, {"student 32->32 T16 d4", 32, 32, 3, 4, 16},
  };
  if (!only.empty()) {
    for (size_t i = 0; i < only.size(); ++i) only[i].name = only_names[i].c_str();
    shapes = only;
  }
  std::printf("%-24s %-6s %9s %9s %9s %9s %9s %9s %7s\n", "shape", "pass", "ref min", "ref med", "gemm min", "gemm med", "simd min",
              "simd med", "%peak");
  Rng rng(1);
  for (const BenchShape& s : shapes) {
    const k::conv1d_params p{s.cin, s.cout, s.k, 1, s.dil * (s.k - 1) / 2, s.dil, 1};
    const int t_out = k::conv1d_out_len(s.t, p);
    std::vector<real> x(size_t(seqs) * s.t * s.cin), w(size_t(s.cout) * s.k * s.cin), b(size_t(s.cout));
    std::vector<real> out(size_t(seqs) * t_out * s.cout), go(out.size()), dx(x.size()), dw(w.size()), db(b.size());
    for (auto* v : {&x, &w, &b, &go})
      for (auto& e : *v) e = real(rng.uniform(-1, 1));
    for (int pass = 0; pass < 3; ++pass) {
      const char* pname = pass == 0 ? "fwd" : pass == 1 ? "bwd-d" : "bwd-w";
      if (pass == 1 && s.cin == 1) continue;  // the input of the first conv needs no gradient
      double res[3][2] = {};
      for (int path = 0; path < 3; ++path) {
        set_conv_path(path == 0 ? ConvPath::reference : path == 1 ? ConvPath::gemm : ConvPath::simd);
        if (path == 2 && isa == ConvIsa::scalar) continue;
        const int n = path == 0 ? std::min(ref_seqs, seqs) : seqs;
        const double flops = 2.0 * n * t_out * s.cout * s.k * s.cin;
        auto run = [&] {
          if (pass == 0) conv1d_forward(out.data(), x.data(), w.data(), b.data(), n, s.t, p);
          else if (pass == 1) conv1d_backward_data(dx.data(), go.data(), w.data(), n, s.t, p);
          else conv1d_backward_weight(dw.data(), db.data(), go.data(), x.data(), n, s.t, p);
        };
        auto [tmin, tmed] = time_min_median(path == 0 ? std::max(3, reps / 3) : reps, run);
        res[path][0] = flops / tmin * 1e-9;
        res[path][1] = flops / tmed * 1e-9;
      }
      const double best = std::max(res[1][1], res[2][1]);
      std::printf("%-24s %-6s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %6.0f%%\n", s.name, pname, res[0][0], res[0][1], res[1][0],
                  res[1][1], res[2][0], res[2][1], peak > 0 ? 100 * res[2][1] / (peak * threads) : 0.0);
      (void)best;
    }
  }
  set_conv_path(ConvPath::automatic);
  std::printf("\nGFLOP/s = 2*n*t_out*c_out*K*c_in / time; %%peak = SIMD median / (probe peak x threads)\n");
  return 0;
}
