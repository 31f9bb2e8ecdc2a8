// Fast host kernels against the reference loops of engine/kernels/, on random shapes with odd
// lengths, dilation, padding and stride (float32: a tight normalised error).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "engine/host_fast/dispatch.h"
#include "engine/host_fast/isa.h"
#include "engine/host_fast/pool_modality.h"
#include "engine/parallel.h"
#include "engine/graph.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/softmax.h"
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

namespace {

struct ConvCase {
  int n, t, cin, cout, k, stride, pad, dil, groups;
};

// Runs the three conv1d entry points on one case and compares them with the reference loops.
void check_conv_case(const ConvCase& c, Rng& rng, double tol = 1e-5) {
  const k::conv1d_params p{c.cin, c.cout, c.k, c.stride, c.pad, c.dil, c.groups};
  const int t_out = k::conv1d_out_len(c.t, p);
  REQUIRE(t_out > 0);
  auto x = rand_vec(size_t(c.n) * c.t * c.cin, rng), w = rand_vec(size_t(c.cout) * c.k * (c.cin / c.groups), rng);
  auto b = rand_vec(size_t(c.cout), rng), go = rand_vec(size_t(c.n) * t_out * c.cout, rng);
  std::vector<real> out_fast(go.size()), out_ref(go.size());
  conv1d_forward(out_fast.data(), x.data(), w.data(), b.data(), c.n, c.t, p);
  for (int s = 0; s < c.n; ++s)
    k::conv1d_fwd_ref<k::ArithFloat<real>>(out_ref.data() + size_t(s) * t_out * c.cout, x.data() + size_t(s) * c.t * c.cin,
                                           w.data(), b.data(), c.t, p, {});
  // gradients accumulate: start from a non-zero value
  auto dx_fast = rand_vec(x.size(), rng), dw_fast = rand_vec(w.size(), rng), db_fast = rand_vec(b.size(), rng);
  auto dx_ref = dx_fast, dw_ref = dw_fast, db_ref = db_fast;
  conv1d_backward_data(dx_fast.data(), go.data(), w.data(), c.n, c.t, p);
  conv1d_backward_weight(dw_fast.data(), db_fast.data(), go.data(), x.data(), c.n, c.t, p);
  for (int s = 0; s < c.n; ++s) {
    k::conv1d_bwd_data_ref<real>(dx_ref.data() + size_t(s) * c.t * c.cin, go.data() + size_t(s) * t_out * c.cout, w.data(), c.t, p);
    k::conv1d_bwd_weight_ref<real>(dw_ref.data(), db_ref.data(), go.data() + size_t(s) * t_out * c.cout,
                                   x.data() + size_t(s) * c.t * c.cin, c.t, p);
  }
  INFO("n ", c.n, " t ", c.t, " cin ", c.cin, " cout ", c.cout, " k ", c.k, " stride ", c.stride, " pad ", c.pad, " dil ", c.dil,
       " groups ", c.groups, " isa ", conv_isa_name(conv_isa()), " path ", int(conv_path()));
  CHECK(max_norm_err(out_fast, out_ref) < tol);
  CHECK(max_norm_err(dx_fast, dx_ref) < tol);
  CHECK(max_norm_err(dw_fast, dw_ref) < tol);
  CHECK(max_norm_err(db_fast, db_ref) < tol);
  // without a bias: forward only, and backward weight with grad_b == nullptr
  std::vector<real> o2(go.size()), o2_ref(go.size());
  conv1d_forward(o2.data(), x.data(), w.data(), nullptr, c.n, c.t, p);
  for (int s = 0; s < c.n; ++s)
    k::conv1d_fwd_ref<k::ArithFloat<real>>(o2_ref.data() + size_t(s) * t_out * c.cout, x.data() + size_t(s) * c.t * c.cin,
                                           w.data(), nullptr, c.t, p, {});
  CHECK(max_norm_err(o2, o2_ref) < tol);
  // fused ReLU: the conv with the bias, then max(., 0) on every path (store-fused in the direct kernels)
  std::vector<real> o3(go.size()), o3_ref = out_ref;
  conv1d_forward(o3.data(), x.data(), w.data(), b.data(), c.n, c.t, p, /*relu=*/true);
  for (auto& v : o3_ref) v = v > 0 ? v : real(0);
  CHECK(max_norm_err(o3, o3_ref) < tol);
  CHECK(std::all_of(o3.begin(), o3.end(), [](real v) { return v >= 0; }));
  auto dw2 = dw_ref;
  conv1d_backward_weight(dw2.data(), nullptr, go.data(), x.data(), c.n, c.t, p);
  for (size_t i = 0; i < dw2.size(); ++i) dw2[i] -= dw_ref[i];  // = one more d/dw
  std::vector<real> dw_once(w.size(), 0);
  for (int s = 0; s < c.n; ++s)
    k::conv1d_bwd_weight_ref<real>(dw_once.data(), nullptr, go.data() + size_t(s) * t_out * c.cout, x.data() + size_t(s) * c.t * c.cin,
                                   c.t, p);
  CHECK(max_norm_err(dw2, dw_once) < 1e-4);  // difference of two accumulations: looser
}

std::vector<ConvCase> pulse_and_random_cases(Rng& rng, int n_random) {
  std::vector<ConvCase> cases = {
      {3, 256, 1, 32, 5, 1, 4, 2, 1},   // teacher conv11
      {2, 256, 32, 32, 5, 1, 4, 2, 1},  // teacher block 1
      {3, 64, 32, 48, 5, 1, 4, 2, 1},   // teacher conv21
      {2, 64, 48, 48, 5, 1, 4, 2, 1},
      {3, 32, 48, 64, 5, 1, 4, 2, 1},   // teacher conv31
      {2, 32, 64, 64, 5, 1, 4, 2, 1},
      {3, 256, 1, 16, 3, 1, 2, 2, 1},   // student
      {2, 256, 16, 16, 3, 1, 2, 2, 1},
      {3, 64, 16, 24, 3, 1, 3, 3, 1},
      {2, 64, 24, 24, 3, 1, 3, 3, 1},
      {3, 16, 24, 32, 3, 1, 4, 4, 1},
      {1, 16, 32, 32, 3, 1, 4, 4, 1},
      {5, 17, 24, 24, 3, 1, 3, 3, 1},   // odd length
      {3, 31, 7, 5, 4, 2, 3, 1, 1},     // stride 2, even kernel
      {2, 9, 6, 6, 3, 1, 1, 1, 6},      // depthwise
      {3, 33, 20, 20, 5, 1, 4, 2, 20},  // depthwise, tail
      {2, 40, 17, 17, 3, 2, 2, 3, 17},  // depthwise, stride 2
      {2, 21, 4, 8, 3, 1, 1, 1, 2},     // grouped (reference loops)
      {3, 1000, 3, 4, 5, 1, 0, 1, 1},   // many columns
      {1, 5, 3, 70, 5, 1, 6, 1, 1},     // padding wider than the kernel reach, Cout 70
      {2, 13, 130, 19, 2, 1, 0, 3, 1},  // many input channels
  };
  const int cins[] = {1, 2, 3, 5, 8, 15, 16, 17, 24, 31, 32, 48, 64};
  const int couts[] = {1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 80, 97};
  while (int(cases.size()) < 21 + n_random) {
    ConvCase c;
    c.n = int(rng.uniform(1, 6));
    c.k = int(rng.uniform(1, 7));
    c.dil = int(rng.uniform(1, 5));
    c.stride = rng.uniform(0, 1) < 0.7 ? 1 : int(rng.uniform(2, 4));
    c.pad = int(rng.uniform(0, (c.k - 1) * c.dil + 2));
    c.t = 2 * int(rng.uniform(1, 40)) + 1;  // odd lengths
    const bool depthwise = rng.uniform(0, 1) < 0.2;
    c.cin = cins[int(rng.uniform(0, 13)) % 13];
    c.cout = depthwise ? c.cin : couts[int(rng.uniform(0, 18)) % 18];
    c.groups = depthwise ? c.cin : 1;
    const k::conv1d_params p{c.cin, c.cout, c.k, c.stride, c.pad, c.dil, c.groups};
    if (k::conv1d_out_len(c.t, p) <= 0) continue;
    cases.push_back(c);
  }
  return cases;
}

std::vector<ConvIsa> supported_isas() {
  std::vector<ConvIsa> v{ConvIsa::scalar};
  if (conv_isa_detected() >= ConvIsa::avx2) v.push_back(ConvIsa::avx2);
  if (conv_isa_detected() >= ConvIsa::avx512) v.push_back(ConvIsa::avx512);
  return v;
}

}  // namespace

TEST_CASE("conv1d: every ISA path and every forced path equals the reference loops") {
  const ConvIsa saved_isa = conv_isa();
  MESSAGE("conv ISA detected: " << std::string(conv_isa_name(conv_isa_detected())));
  for (const ConvIsa isa : supported_isas())
    for (const ConvPath path : {ConvPath::automatic, ConvPath::simd, ConvPath::gemm, ConvPath::reference})
      for (const int threads : {1, 2}) {
        set_conv_isa(isa);
        set_conv_path(path);
        set_num_threads(threads);
        Rng rng(1234);
        for (const ConvCase& c : pulse_and_random_cases(rng, 60)) check_conv_case(c, rng);
      }
  set_conv_isa(saved_isa);
  set_conv_path(ConvPath::automatic);
  set_num_threads(1);
}

namespace {

// conv1d of one sequence written independently of engine/kernels/conv1d.h: the input is
// zero-padded into its own buffer, channels are walked group by group, sums are in double.
struct IndependentConv {
  std::vector<double> out;          // (t_out, c_out)
  std::vector<double> dx, dw, db;   // (t_in, c_in), (c_out, K, c_in/groups), (c_out): d(sum out * go)
};

IndependentConv independent_conv(const real* x /*(t_in, c_in)*/, const real* w, const real* b, const real* go /*(t_out, c_out)*/,
                                 int t_in, const ConvCase& c) {
  const int t_pad = t_in + 2 * c.pad, cig = c.cin / c.groups, cog = c.cout / c.groups;
  const int t_out = (t_pad - c.dil * (c.k - 1) - 1) / c.stride + 1;
  std::vector<double> xpad(size_t(t_pad) * c.cin, 0), dxpad(xpad.size(), 0);  // (t_pad, c_in)
  for (int t = 0; t < t_in; ++t)
    for (int ci = 0; ci < c.cin; ++ci) xpad[size_t(t + c.pad) * c.cin + ci] = x[size_t(t) * c.cin + ci];
  IndependentConv r{std::vector<double>(size_t(t_out) * c.cout), {}, std::vector<double>(size_t(c.cout) * c.k * cig, 0),
                    std::vector<double>(size_t(c.cout), 0)};
  for (int grp = 0; grp < c.groups; ++grp)
    for (int j = 0; j < cog; ++j) {
      const int co = grp * cog + j;
      for (int t = 0; t < t_out; ++t) {
        const double g = go[size_t(t) * c.cout + co];
        double acc = b[co];
        for (int k = 0; k < c.k; ++k)
          for (int i = 0; i < cig; ++i) {
            const size_t xi = size_t(t * c.stride + k * c.dil) * c.cin + size_t(grp * cig + i);
            const size_t wi = (size_t(co) * c.k + k) * cig + i;
            acc += double(w[wi]) * xpad[xi];
            dxpad[xi] += g * double(w[wi]);
            r.dw[wi] += g * xpad[xi];
          }
        r.out[size_t(t) * c.cout + co] = acc;
        r.db[size_t(co)] += g;
      }
    }
  for (int t = 0; t < t_in; ++t)  // crop the padding
    for (int ci = 0; ci < c.cin; ++ci) r.dx.push_back(dxpad[size_t(t + c.pad) * c.cin + ci]);
  return r;
}

std::vector<real> to_real(const std::vector<double>& v) { return std::vector<real>(v.begin(), v.end()); }

// The fast entry points (dispatch.h) and the reference loops against independent_conv; returns
// the largest normalised error.
double check_against_independent(const ConvCase& c, Rng& rng) {
  const k::conv1d_params p{c.cin, c.cout, c.k, c.stride, c.pad, c.dil, c.groups};
  const int t_out = k::conv1d_out_len(c.t, p);
  const size_t xs = size_t(c.t) * c.cin, os = size_t(t_out) * c.cout;
  auto x = rand_vec(size_t(c.n) * xs, rng), w = rand_vec(size_t(c.cout) * c.k * (c.cin / c.groups), rng);
  auto b = rand_vec(size_t(c.cout), rng), go = rand_vec(size_t(c.n) * os, rng);
  std::vector<double> out, dx, dw(w.size(), 0), db(b.size(), 0);  // expected, over the batch
  for (int s = 0; s < c.n; ++s) {
    const IndependentConv r = independent_conv(x.data() + s * xs, w.data(), b.data(), go.data() + s * os, c.t, c);
    REQUIRE(r.out.size() == os);
    out.insert(out.end(), r.out.begin(), r.out.end());
    dx.insert(dx.end(), r.dx.begin(), r.dx.end());
    for (size_t i = 0; i < dw.size(); ++i) dw[i] += r.dw[i];
    for (size_t i = 0; i < db.size(); ++i) db[i] += r.db[i];
  }
  std::vector<real> fast_out(out.size()), fast_dx(x.size(), 0), fast_dw(w.size(), 0), fast_db(b.size(), 0);
  conv1d_forward(fast_out.data(), x.data(), w.data(), b.data(), c.n, c.t, p);
  conv1d_backward_data(fast_dx.data(), go.data(), w.data(), c.n, c.t, p);
  conv1d_backward_weight(fast_dw.data(), fast_db.data(), go.data(), x.data(), c.n, c.t, p);
  std::vector<real> ref_out(out.size()), ref_dx(x.size(), 0), ref_dw(w.size(), 0), ref_db(b.size(), 0);
  for (int s = 0; s < c.n; ++s) {
    k::conv1d_fwd_ref<k::ArithFloat<real>>(ref_out.data() + s * os, x.data() + s * xs, w.data(), b.data(), c.t, p, {});
    k::conv1d_bwd_data_ref<real>(ref_dx.data() + s * xs, go.data() + s * os, w.data(), c.t, p);
    k::conv1d_bwd_weight_ref<real>(ref_dw.data(), ref_db.data(), go.data() + s * os, x.data() + s * xs, c.t, p);
  }
  INFO("n ", c.n, " t ", c.t, " cin ", c.cin, " cout ", c.cout, " k ", c.k, " stride ", c.stride, " pad ", c.pad, " dil ", c.dil,
       " groups ", c.groups, " isa ", conv_isa_name(conv_isa()), " path ", int(conv_path()));
  // float32 against double sums: measured <= 2.1e-7 (normalised, every ISA and path); tolerance 1e-5
  double worst = 0;
  const std::pair<const std::vector<real>*, const std::vector<double>*> pairs[] = {
      {&fast_out, &out}, {&ref_out, &out}, {&fast_dx, &dx}, {&ref_dx, &dx},
      {&fast_dw, &dw},   {&ref_dw, &dw},   {&fast_db, &db}, {&ref_db, &db}};
  for (const auto& [got, want] : pairs) {
    const double err = max_norm_err(*got, to_real(*want));
    CHECK(err < 1e-5);
    worst = std::max(worst, err);
  }
  return worst;
}

}  // namespace

TEST_CASE("conv1d with stride > 1 and groups > 1: reference loops and every fast path against an independent loop") {
  const ConvCase cases[] = {
      {2, 37, 6, 9, 3, 2, 2, 2, 3},     // grouped (3 groups of 2 -> 3), stride 2, dilation 2
      {3, 50, 8, 4, 5, 3, 1, 1, 4},     // grouped, one output per group, stride 3
      {2, 41, 12, 12, 5, 2, 4, 2, 12},  // depthwise (direct SIMD kernels), stride 2
      {1, 64, 16, 16, 3, 3, 0, 1, 16},  // depthwise, stride 3, no padding
      {2, 30, 5, 10, 3, 2, 1, 1, 5},    // depthwise with channel multiplier 2, stride 2
      {2, 33, 5, 7, 4, 2, 3, 1, 1},     // dense, stride 2, even kernel
      {2, 25, 4, 4, 3, 1, 1, 1, 2},     // grouped, stride 1
  };
  const ConvIsa saved_isa = conv_isa();
  double worst = 0;
  for (const ConvIsa isa : supported_isas())
    for (const ConvPath path : {ConvPath::automatic, ConvPath::simd, ConvPath::gemm, ConvPath::reference}) {
      set_conv_isa(isa);
      set_conv_path(path);
      Rng rng(77);
      for (const ConvCase& c : cases) worst = std::max(worst, check_against_independent(c, rng));
    }
  MESSAGE("largest normalised error against the independent loop: " << worst);
  set_conv_isa(saved_isa);
  set_conv_path(ConvPath::automatic);
}

TEST_CASE("conv1d fast paths are deterministic for a fixed thread count") {
  const ConvIsa saved_isa = conv_isa();
  for (const ConvIsa isa : supported_isas())
    for (const int threads : {1, 2, 3}) {
      set_conv_isa(isa);
      set_num_threads(threads);
      Rng rng(5);
      const ConvCase c{7, 64, 32, 48, 5, 1, 4, 2, 1};
      const k::conv1d_params p{c.cin, c.cout, c.k, c.stride, c.pad, c.dil, c.groups};
      const int t_out = k::conv1d_out_len(c.t, p);
      auto x = rand_vec(size_t(c.n) * c.t * c.cin, rng), w = rand_vec(size_t(c.cout) * c.k * c.cin, rng);
      auto go = rand_vec(size_t(c.n) * t_out * c.cout, rng);
      std::vector<real> first, again;
      for (std::vector<real>* dst : {&first, &again}) {
        std::vector<real> out(go.size()), dx(x.size(), 0), dw(w.size(), 0), db(size_t(c.cout), 0);
        conv1d_forward(out.data(), x.data(), w.data(), nullptr, c.n, c.t, p);
        conv1d_backward_data(dx.data(), go.data(), w.data(), c.n, c.t, p);
        conv1d_backward_weight(dw.data(), db.data(), go.data(), x.data(), c.n, c.t, p);
        *dst = out;
        dst->insert(dst->end(), dx.begin(), dx.end());
        dst->insert(dst->end(), dw.begin(), dw.end());
        dst->insert(dst->end(), db.begin(), db.end());
      }
      CHECK(first == again);
    }
  set_conv_isa(saved_isa);
  set_num_threads(1);
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

TEST_CASE("pooling and modality-conv fast paths equal the reference loops bit for bit") {
  Rng rng(11);
  auto fill = [&](std::vector<float>& v) {
    for (auto& e : v) e = float(rng.uniform(-2, 2));
  };
  // Pooling: every kernel/stride/ceil combination on odd lengths and channel counts, the
  // PULSE shapes (256 -> 64 by 4 over 16 and 32 channels) included.
  for (int trial = 0; trial < 60; ++trial) {
    const int32_t t_in = trial < 2 ? 256 : 1 + int32_t(rng.uniform(0, 70));
    const int32_t c = trial == 0 ? 16 : trial == 1 ? 32 : 1 + int32_t(rng.uniform(0, 40));
    const kernels::pool1d_params p{1 + int32_t(rng.uniform(0, 5)), 1 + int32_t(rng.uniform(0, 4)), int32_t(trial % 2)};
    const int32_t t_out = kernels::pool1d_out_len(t_in, p);
    if (t_out <= 0) continue;
    CAPTURE(t_in);
    CAPTURE(c);
    CAPTURE(p.kernel);
    CAPTURE(p.stride);
    CAPTURE(p.ceil_mode);
    std::vector<float> x(size_t(t_in) * c), go(size_t(t_out) * c), ref(go.size()), got(go.size());
    fill(x);
    fill(go);
    kernels::avgpool1d_fwd_ref(ref.data(), x.data(), t_in, c, p);
    fast::avgpool1d_fwd(got.data(), x.data(), t_in, c, p);
    CHECK(ref == got);
    std::vector<float> gi_ref(x.size()), gi_got;
    fill(gi_ref);  // the backward accumulates into what is there
    gi_got = gi_ref;
    kernels::avgpool1d_bwd_ref(gi_ref.data(), go.data(), t_in, c, p);
    fast::avgpool1d_bwd(gi_got.data(), go.data(), t_in, c, p);
    CHECK(gi_ref == gi_got);
  }
  // Modality conv: the student's (4 rows, 8 steps, 32 -> 32) and random shapes, with and without bias.
  for (int trial = 0; trial < 30; ++trial) {
    const kernels::modality_conv_params p = trial == 0 ? kernels::modality_conv_params{4, 8, 32, 32}
                                                       : kernels::modality_conv_params{1 + int32_t(rng.uniform(0, 5)),
                                                                                       1 + int32_t(rng.uniform(0, 12)),
                                                                                       1 + int32_t(rng.uniform(0, 40)),
                                                                                       1 + int32_t(rng.uniform(0, 40))};
    CAPTURE(trial);
    std::vector<float> x(size_t(p.rows) * p.t * p.c_in), w(size_t(p.c_out) * p.rows * p.c_in), b(size_t(p.c_out));
    fill(x);
    fill(w);
    fill(b);
    const float* bias = trial % 3 == 2 ? nullptr : b.data();
    std::vector<float> ref(size_t(p.t) * p.c_out), got(ref.size());
    kernels::modality_conv_fwd_ref<kernels::ArithFloat<float>>(ref.data(), x.data(), w.data(), bias, p, {});
    const std::vector<float> wt = fast::modality_weights_transposed(w.data(), p);
    fast::modality_conv_fwd(got.data(), x.data(), wt.data(), bias, p);
    CHECK(ref == got);
  }
}

TEST_CASE("softmax fast path equals the reference loops on every ISA") {
  Rng rng(21);
  const ConvIsa detected = conv_isa_detected();
  for (ConvIsa isa : {ConvIsa::scalar, ConvIsa::avx2, ConvIsa::avx512}) {
    if (int(isa) > int(detected)) continue;
    set_conv_isa(isa);
    // the teacher's attention rows (192 keys), tails, d < one vector, d = 1, large offsets
    for (int32_t d : {192, 1, 3, 8, 15, 16, 17, 33, 64, 100}) {
      const int64_t rows = 7;
      std::vector<real> x(size_t(rows * d)), gy(x.size()), y_ref(x.size()), y_fast(x.size());
      for (size_t i = 0; i < x.size(); ++i) x[i] = real(rng.uniform(-8, 8) + (i / size_t(d) == 3 ? 80.0 : 0.0));
      for (auto& v : gy) v = real(rng.uniform(-1, 1));
      k::softmax_fwd_ref<real>(y_ref.data(), x.data(), size_t(rows), d);
      softmax_rows_forward(y_fast.data(), x.data(), rows, d);
      INFO("isa ", conv_isa_name(isa), " d ", d);
      CHECK(max_norm_err(y_fast, y_ref) < 1e-6);
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int32_t i = 0; i < d; ++i) s += y_fast[size_t(r * d + i)];
        CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
      }
      std::vector<real> gx_ref = rand_vec(x.size(), rng), gx_fast = gx_ref;  // accumulates
      k::softmax_bwd_ref<real>(gx_ref.data(), gy.data(), y_ref.data(), size_t(rows), d);
      softmax_rows_backward(gx_fast.data(), gy.data(), y_ref.data(), rows, d);
      CHECK(max_norm_err(gx_fast, gx_ref) < 1e-6);
    }
  }
  set_conv_isa(detected);
}
