// Fast host kernels against the reference loops of engine/kernels/, on random shapes with odd
// lengths, dilation, padding and stride (float32: a tight normalised error).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/conv_fast.h"
#include "engine/graph.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/linear.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/tensor.h"

using namespace pulsekd;
namespace k = pulsekd::kernels;

static std::vector<real> rand_vec(size_t n, Rng& rng) {
  std::vector<real> v(n);
  for (auto& x : v) x = real(rng.uniform(-1, 1));
  return v;
}

static double max_norm_err(const std::vector<real>& a, const std::vector<real>& b) {
  double worst = 0, scale = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) scale = std::max(scale, std::fabs(double(b[i])));
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])) / scale);
  return worst;
}

TEST_CASE("GEMM conv1d forward and backward equal the reference loops") {
  Rng rng(42);
  struct Case { int n, t, cin, cout, k, stride, pad, dil, groups; };
  const Case cases[] = {
      {8, 256, 1, 32, 5, 1, 4, 2, 1},   // PULSE teacher conv11
      {4, 64, 32, 48, 5, 1, 4, 2, 1},   // teacher conv21
      {5, 17, 24, 24, 3, 1, 3, 3, 1},   // student, odd length
      {3, 31, 7, 5, 4, 2, 3, 1, 1},     // stride 2, even kernel
      {2, 9, 6, 6, 3, 1, 1, 1, 6},      // depthwise
      {3, 1000, 3, 4, 5, 1, 0, 1, 1},   // many columns: several im2col chunks
  };
  for (const Case& c : cases) {
    const k::conv1d_params p{c.cin, c.cout, c.k, c.stride, c.pad, c.dil, c.groups};
    const int t_out = k::conv1d_out_len(c.t, p);
    auto x = rand_vec(size_t(c.n) * c.t * c.cin, rng), w = rand_vec(size_t(c.cout) * c.k * (c.cin / c.groups), rng);
    auto b = rand_vec(size_t(c.cout), rng), go = rand_vec(size_t(c.n) * t_out * c.cout, rng);
    std::vector<real> out_fast(go.size()), out_ref(go.size());
    conv1d_forward(out_fast.data(), x.data(), w.data(), b.data(), c.n, c.t, p);
    for (int s = 0; s < c.n; ++s)
      k::conv1d_fwd_ref<k::ArithFloat<real>>(out_ref.data() + size_t(s) * t_out * c.cout, x.data() + size_t(s) * c.t * c.cin,
                                             w.data(), b.data(), c.t, p, {});
    CHECK(max_norm_err(out_fast, out_ref) < 1e-5);
    std::vector<real> dx_fast(x.size(), 0), dx_ref(x.size(), 0), dw_fast(w.size(), 0), dw_ref(w.size(), 0);
    std::vector<real> db_fast(b.size(), 0), db_ref(b.size(), 0);
    conv1d_backward_data(dx_fast.data(), go.data(), w.data(), c.n, c.t, p);
    conv1d_backward_weight(dw_fast.data(), db_fast.data(), go.data(), x.data(), c.n, c.t, p);
    for (int s = 0; s < c.n; ++s) {
      k::conv1d_bwd_data_ref<real>(dx_ref.data() + size_t(s) * c.t * c.cin, go.data() + size_t(s) * t_out * c.cout, w.data(), c.t, p);
      k::conv1d_bwd_weight_ref<real>(dw_ref.data(), db_ref.data(), go.data() + size_t(s) * t_out * c.cout,
                                     x.data() + size_t(s) * c.t * c.cin, c.t, p);
    }
    CHECK(max_norm_err(dx_fast, dx_ref) < 1e-5);
    CHECK(max_norm_err(dw_fast, dw_ref) < 1e-5);
    CHECK(max_norm_err(db_fast, db_ref) < 1e-5);
  }
}

TEST_CASE("arena: aligned, grows, and reset merges blocks") {
  Arena a(16);
  real* p1 = a.alloc(10);
  real* p2 = a.alloc(100);  // forces a second block
  CHECK(reinterpret_cast<uintptr_t>(p1) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(p2) % 64 == 0);
  const size_t cap = a.capacity_reals();
  a.reset();
  CHECK(a.capacity_reals() == cap);
  a.alloc(10);
  a.alloc(100);
  CHECK(a.capacity_reals() == cap);  // steady state: no new block
}

TEST_CASE("OpenBLAS linear and matmul ops equal the reference kernels") {
  Rng rng(9);
  const int n = 7, in_f = 13, out_f = 5;
  auto x = rand_vec(size_t(n) * in_f, rng), w = rand_vec(size_t(out_f) * in_f, rng), b = rand_vec(size_t(out_f), rng);
  std::vector<real> ref(size_t(n) * out_f), refmm(size_t(n) * out_f);
  k::linear_fwd_ref<k::ArithFloat<real>>(ref.data(), x.data(), w.data(), b.data(), n, in_f, out_f, {});
  Graph g;
  Var y = linear(g.input({n, in_f}, x.data()), g.input({out_f, in_f}, w.data()), g.input({out_f}, b.data()));
  CHECK(max_norm_err(std::vector<real>(y.data(), y.data() + n * out_f), ref) < 1e-6);
  // matmul with b transposed in memory is x · w^T
  k::matmul_ref<real>(refmm.data(), x.data(), w.data(), n, out_f, in_f, 0, 1, 0);
  Var z = matmul(g.input({1, n, in_f}, x.data()), g.input({1, out_f, in_f}, w.data()), true);
  CHECK(max_norm_err(std::vector<real>(z.data(), z.data() + n * out_f), refmm) < 1e-6);
}
