// The integer rounding rules of the quantised model, checked WITHOUT the header that
// implements them. The host simulation and the firmware both include
// engine/kernels/fixed_point.h, so a wrong rule there makes them agree with each other and
// test_mcu's bit-exactness still passes. Here the rules are written again from their
// documentation (docs/MCU.md "Scheme"; TFLite Micro / CMSIS-NN MultiplyByQuantizedMultiplier,
// gemmlowp SaturatingRoundingDoublingHighMul + RoundingDivideByPOT), in exact __int128
// arithmetic, and compared with the public host simulation (deploy::HostModel, through the
// library) on tiny probe models, together with vectors derived by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "deploy/host_runtime.h"

// Compile-time guard: fixed_point.h defines the function pulsekd::kernels::fp_requantize. If that
// header ever becomes visible here (deploy/quant_model.h only forward-declares requant_params), this
// variable of the same name stops the build, so the check below stays independent.
namespace pulsekd::kernels {
[[maybe_unused]] constexpr int fp_requantize = 0;
}

using namespace pulsekd;

namespace {

using i128 = __int128;

// floor(a / 2^e) for either sign (explicit, so the reference relies on no shift semantics).
i128 floor_div_pow2(i128 a, int e) {
  const i128 d = i128(1) << e;
  i128 q = a / d;
  if (a % d != 0 && a < 0) --q;
  return q;
}

// The documented requantisation of an int32 accumulator: acc * M * 2^(shift - 31), M a Q31
// multiplier, with two roundings (docs/MCU.md, TFLite's MultiplyByQuantizedMultiplier):
//   1. a = acc * 2^max(shift, 0), saturated to int32;
//   2. h = a * M / 2^31 to the nearest integer, ties toward +infinity (SRDHM; its own saturation,
//      a = M = INT32_MIN, cannot occur: M >= 0);
//   3. h / 2^max(-shift, 0) to the nearest integer, ties away from zero (RDBPOT).
int64_t reference_requantize(int64_t acc, int64_t mult, int shift) {
  const int left = std::max(shift, 0), right = std::max(-shift, 0);
  const i128 a = std::clamp<i128>(i128(acc) * (i128(1) << left), INT32_MIN, INT32_MAX);
  const i128 h = floor_div_pow2(a * mult + (i128(1) << 30), 31);  // floor(a M / 2^31 + 1/2)
  if (right == 0) return int64_t(h);
  const i128 mag = h < 0 ? -h : h;
  const i128 q = floor_div_pow2(2 * mag + (i128(1) << right), right + 1);  // floor(|h| / 2^r + 1/2)
  return int64_t(h < 0 ? -q : q);
}

// Integer average: sum / k to the nearest integer, ties away from zero (docs/MCU.md).
int64_t reference_average(int64_t sum, int64_t k) {
  const int64_t mag = sum < 0 ? -sum : sum;
  const int64_t q = (2 * mag + k) / (2 * k);  // floor(|sum| / k + 1/2), all terms >= 0
  return sum < 0 ? -q : q;
}

// One requantisation of the probe layer: acc = bias + w * x, output bits / zero point / clamp.
struct ProbeLayer {
  int32_t w = 1, bias = 0, mult = 1 << 30, shift = 0;
  int out_bits = 16;
  int32_t out_zp = 0, act_min = -32768, act_max = 32767;
};

deploy::QLayer make_layer(const char* name, deploy::QOp op, int t_in, int c_in, int c_out, deploy::QTensor in,
                          deploy::QTensor out) {
  deploy::QLayer L;
  L.name = name;
  L.op = op;
  L.t_in = t_in, L.c_in = c_in, L.c_out = c_out;
  L.in = in, L.out = out;
  L.act_min = out.qmin(), L.act_max = out.qmax();
  return L;
}

// A student-structured model that exposes one value of the probe layer's output: per row
// probe (conv k=1, 1 -> 1 channel) [-> avgpool of `pool`], then a modality conv taking row 0
// only with an exact identity requantisation (M = 2^30, shift 1: a = 2 acc, h = acc) and the
// output zero point removed by its folded bias, then the raw int32 output reading time step
// `read_t`. So HostModel::infer returns (probe output - zp) at row 0, time read_t.
deploy::QuantModel probe_model(const ProbeLayer& p, int pool = 1, int read_t = 0) {
  const deploy::QTensor in16{16, 1.f, 0}, probe_out{p.out_bits, 1.f, p.out_zp};
  deploy::QuantModel q;
  q.calib = "minmax";
  q.source = "rounding probe";
  q.input = in16;
  q.out_scale = 1.f;
  deploy::QLayer probe = make_layer("probe", deploy::QOp::Conv, 256, 1, 1, in16, probe_out);
  probe.w = {int8_t(p.w)}, probe.bias = {p.bias}, probe.w_scale = {1.f};
  probe.mult = {p.mult}, probe.shift = {p.shift};
  probe.act_min = p.act_min, probe.act_max = p.act_max;
  q.layers.push_back(probe);
  int t = 256;
  if (pool > 1) {
    deploy::QLayer avg = make_layer("pool", deploy::QOp::AvgPool, 256, 1, 1, probe_out, probe_out);
    avg.pool = avg.kernel = pool;
    q.layers.push_back(avg);
    t = (256 + pool - 1) / pool;
  }
  q.row_layers = int(q.layers.size());
  deploy::QLayer fuse = make_layer("fuse", deploy::QOp::ModalityConv, t, 1, 1, probe_out, in16);
  fuse.rows = 4;
  fuse.w = {1, 0, 0, 0};  // (c_out 1, rows 4, c_in 1): row 0
  fuse.bias = {-p.out_zp}, fuse.w_scale = {1.f};
  fuse.mult = {1 << 30}, fuse.shift = {1};
  q.layers.push_back(fuse);
  deploy::QLayer out = make_layer("out", deploy::QOp::Linear, 1, t, 1, in16, {32, 1.f, 0});
  out.w.assign(size_t(t), 0);  // (1, t): picks time step read_t
  out.w[size_t(read_t)] = 1;
  out.bias = {0}, out.w_scale = {1.f};
  q.layers.push_back(out);
  return q;
}

// Windows (n, 4, 256) of zeros with row 0 starting with `row0` (one window per entry of rows).
std::vector<int16_t> windows_with_row0(const std::vector<std::vector<int16_t>>& rows) {
  std::vector<int16_t> qin(rows.size() * 1024, 0);
  for (size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), qin.begin() + long(i * 1024));
  return qin;
}

// The probe layer's output (minus its zero point) as the library computes it, for inputs x.
std::vector<int32_t> simulated_probe(const ProbeLayer& p, const std::vector<int16_t>& xs) {
  std::vector<std::vector<int16_t>> rows;
  for (int16_t x : xs) rows.push_back({x});
  const std::vector<int16_t> qin = windows_with_row0(rows);
  return deploy::HostModel(probe_model(p)).infer(qin.data(), int64_t(xs.size()));
}

// What the documented rule gives for the probe layer on input x (minus the zero point).
int64_t expected_probe(const ProbeLayer& p, int16_t x) {
  const int64_t acc = int64_t(p.bias) + int64_t(p.w) * x;
  const int64_t v = std::clamp<int64_t>(p.out_zp + reference_requantize(acc, p.mult, p.shift), p.act_min, p.act_max);
  return v - p.out_zp;
}

constexpr int32_t kHalf = 1 << 30;              // M = 0.5 in Q31
constexpr int32_t kThreeQuarters = 3 << 29;     // M = 0.75
constexpr int32_t kMaxMult = INT32_MAX;         // M = 1 - 2^-31
constexpr int32_t kBig = INT32_MAX;             // the largest accumulator the bound allows

struct HandVector {
  int32_t acc, mult, shift;
  int64_t expected;
  const char* why;
};

}  // namespace

TEST_CASE("requantisation: hand-derived vectors (ties, negatives, large shifts) through deploy::HostModel") {
  // Each value below is worked out by hand from the rule, not taken from the code.
  const HandVector vectors[] = {
      {100, kHalf, 0, 50, "exact"},
      {3, kHalf, 0, 2, "1.5: SRDHM tie toward +inf"},
      {-3, kHalf, 0, -1, "-1.5: SRDHM tie toward +inf"},
      {1, kHalf, 0, 1, "0.5 -> 1"},
      {-1, kHalf, 0, 0, "-0.5 -> 0"},
      {1, kHalf + 1, 0, 1, "0.5000000005 -> 1 (no tie)"},
      {-1, kHalf + 1, 0, -1, "-0.5000000005 -> -1 (no tie)"},
      {2, kThreeQuarters, 0, 2, "1.5"},
      {-2, kThreeQuarters, 0, -1, "-1.5"},
      {10, kThreeQuarters, 0, 8, "7.5"},
      {-10, kThreeQuarters, 0, -7, "-7.5"},
      {1000, kMaxMult, 0, 1000, "999.9999995"},
      {-1000, kMaxMult, 0, -1000, "-999.9999995"},
      {24, kHalf, -3, 2, "12 / 8 = 1.5: RDBPOT tie away from zero"},
      {-24, kHalf, -3, -2, "-12 / 8 = -1.5: away from zero"},
      {40, kHalf, -3, 3, "20 / 8 = 2.5"},
      {-40, kHalf, -3, -3, "-20 / 8 = -2.5"},
      {23, kHalf, -3, 2, "11.5 -> 12, 12 / 8 = 1.5 -> 2: double rounding (exact 1.4375)"},
      {-23, kHalf, -3, -1, "-11.5 -> -11, -11 / 8 = -1.375 -> -1"},
      {-25, kHalf, -3, -2, "-12.5 -> -12, -1.5 -> -2"},
      {22, kHalf, -3, 1, "11 / 8 = 1.375"},
      {6, kThreeQuarters, -1, 3, "4.5 -> 5, 5 / 2 = 2.5 -> 3 (exact 2.25)"},
      {-6, kThreeQuarters, -1, -2, "-4.5 -> -4, -4 / 2 = -2"},
      {1, kMaxMult, -1, 1, "0.9999999995 -> 1, 0.5 -> 1"},
      {-1, kMaxMult, -1, -1, "-0.9999999995 -> -1, -0.5 -> -1"},
      {3, kMaxMult, -1, 2, "2.9999999986 -> 3, 1.5 -> 2"},
      {7, kHalf, 4, 56, "left shift: 112 / 2"},
      {-7, kHalf, 4, -56, "left shift: -112 / 2"},
      {kBig, kHalf, -31, 1, "2^30 - 0.5 -> 2^30, / 2^31 = 0.5 -> 1"},
      {-kBig, kHalf, -31, 0, "-(2^30 - 0.5) -> -(2^30 - 1), / 2^31 = -0.4999999995 -> 0"},
      {kBig - 2, kHalf, -31, 0, "2^30 - 1.5 -> 2^30 - 1, / 2^31 -> 0"},
      {kBig, kHalf, -30, 1, "2^30 / 2^30"},
      {3 << 29, kHalf, -30, 1, "3 * 2^28 / 2^30 = 0.75"},
      {1 << 29, kHalf, -30, 0, "0.25"},
      {-(3 << 29), kHalf, -30, -1, "-0.75"},
      {1 << 30, kHalf, -30, 1, "0.5 -> 1"},
      {-(1 << 30), kHalf, -30, -1, "-0.5 -> -1"},
      {(1 << 27) + 5, kHalf, 4, 32767, "left shift saturates at 2^31 - 1 (no wrap to negative); clamp"},
      {-((1 << 27) + 5), kHalf, 4, -32768, "saturates at -2^31; clamp"},
      {12345, 0, 0, 0, "multiplier 0"},
  };
  for (const HandVector& v : vectors) {
    CAPTURE(v.why);
    CAPTURE(v.acc);
    CAPTURE(v.mult);
    CAPTURE(v.shift);
    ProbeLayer p;
    p.w = 0, p.bias = v.acc, p.mult = v.mult, p.shift = v.shift;  // acc = bias whatever the input
    CHECK(std::clamp<int64_t>(reference_requantize(v.acc, v.mult, v.shift), -32768, 32767) == v.expected);
    CHECK(simulated_probe(p, {0})[0] == v.expected);
  }
}

TEST_CASE("requantisation: int8 output zero point, clamp and fused ReLU through deploy::HostModel") {
  ProbeLayer p;
  p.w = 1, p.bias = 0, p.out_bits = 8, p.out_zp = -5, p.act_min = -128, p.act_max = 127;
  // x / 2 rounded, + zp -5, clamped to [-128, 127]; the readout subtracts zp again
  const std::vector<int16_t> xs = {400, -400, 1, -1, 3, -3, 263, 264, -245, -246};
  const std::vector<int64_t> expected = {132, -123, 1, 0, 2, -1, 132, 132, -122, -123};
  // 400 -> 200 - 5 = 195 -> 127 (clamp) -> 132; 263 -> 131.5 -> 132 - 5 = 127 -> 132;
  // 264 -> 132 - 5 = 127 -> 132; -245 -> -122.5 -> -122 - 5 = -127 -> -122; -246 -> -123 - 5 = -128 -> -123
  CHECK(simulated_probe(p, xs) == std::vector<int32_t>(expected.begin(), expected.end()));
  p.act_min = p.out_zp;  // fused ReLU: nothing below the real zero
  const std::vector<int32_t> relu = simulated_probe(p, {-3, -1, 0, 1, 3});
  CHECK(relu == std::vector<int32_t>{0, 0, 0, 1, 2});
}

TEST_CASE("requantisation: deploy::HostModel equals the independent reference on 24,000 random cases") {
  std::mt19937_64 rng(15);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int32_t special[] = {kHalf, kThreeQuarters, kMaxMult, kHalf + 1};  // frequent ties, extremes
  int64_t compared = 0, unclamped = 0, nonzero = 0;
  for (int config = 0; config < 375; ++config) {
    ProbeLayer p;
    p.mult = config % 2 ? special[uniform(0, 3)] : int32_t(uniform(kHalf, kMaxMult));
    p.shift = int32_t(uniform(-31, 4));
    // accumulators of magnitude up to ~2^(16 - shift) reach the int16 range without clamping
    const int acc_bits = int(std::min<int64_t>(30, 16 - p.shift));
    p.w = int32_t(uniform(-127, 127));
    const int64_t bias_max = std::min<int64_t>(int64_t(1) << uniform(0, acc_bits), INT32_MAX - 32768 * std::abs(p.w));
    p.bias = int32_t(uniform(-bias_max, bias_max));
    if (config % 3 == 0) {  // int8 output with a zero point, sometimes a fused ReLU
      p.out_bits = 8;
      p.out_zp = int32_t(uniform(-128, 127));
      p.act_min = config % 2 ? p.out_zp : -128;
      p.act_max = 127;
    }
    std::vector<int16_t> xs = {-32768, 32767, 0, 1, -1};
    while (xs.size() < 64) xs.push_back(int16_t(uniform(-32768, 32767)));
    const std::vector<int32_t> got = simulated_probe(p, xs);
    for (size_t i = 0; i < xs.size(); ++i) {
      const int64_t want = expected_probe(p, xs[i]);
      if (got[i] != want) {  // one assertion per mismatch, not 24,000
        CAPTURE(p.w);
        CAPTURE(p.bias);
        CAPTURE(p.mult);
        CAPTURE(p.shift);
        CAPTURE(p.out_zp);
        CAPTURE(xs[i]);
        CHECK(got[i] == want);
      }
      ++compared;
      const int64_t v = p.out_zp + want;
      unclamped += v > p.act_min && v < p.act_max;
      nonzero += want != 0;
    }
  }
  CHECK(compared == 375 * 64);
  // the sweep must exercise the rounding, not only the clamp: measured 14,985 of 24,000 unclamped
  // and 16,416 non-zero; required at least a third / a half
  MESSAGE(unclamped << " of " << compared << " outputs inside the clamp, " << nonzero << " non-zero");
  CHECK(unclamped > compared / 3);
  CHECK(nonzero > compared / 2);
}

TEST_CASE("integer average pooling: ties away from zero, ceil-mode last window (deploy::HostModel)") {
  struct PoolVector {
    int pool, read_t;
    std::vector<int16_t> row0;  // the start of row 0; the rest of the window is 0
    int64_t expected;
  };
  const PoolVector vectors[] = {
      {2, 0, {1, 2}, 2},            // 1.5
      {2, 0, {-1, -2}, -2},         // -1.5
      {2, 0, {1, -2}, -1},          // -0.5
      {2, 0, {1, 0}, 1},            // 0.5
      {4, 0, {1, 1, 0, 0}, 1},      // 0.5
      {4, 0, {-1, -1, 0, 0}, -1},   // -0.5
      {4, 0, {1, 1, 1, 0}, 1},      // 0.75
      {4, 0, {-1, 0, 0, 0}, 0},     // -0.25
      {3, 0, {1, 0, 0}, 0},         // 0.33
      {3, 0, {1, 1, 0}, 1},         // 0.67
      {3, 0, {-1, -1, 0}, -1},      // -0.67
      {3, 1, {0, 0, 0, 5, 4, 0}, 3},  // second window: 9 / 3
      {4, 0, {32767, 32767, 32767, -32768}, 16383},  // 65533 / 4 = 16383.25
  };
  for (const PoolVector& v : vectors) {
    CAPTURE(v.pool);
    CAPTURE(v.read_t);
    int64_t sum = 0;
    for (int j = 0; j < v.pool; ++j) sum += j + v.read_t * v.pool < int(v.row0.size()) ? v.row0[size_t(j + v.read_t * v.pool)] : 0;
    CHECK(reference_average(sum, v.pool) == v.expected);
    // identity probe (acc = x, M = 0.5, shift 1: exact), then the pooling under test
    const ProbeLayer identity{1, 0, kHalf, 1};
    const std::vector<int16_t> qin = windows_with_row0({v.row0});
    CHECK(deploy::HostModel(probe_model(identity, v.pool, v.read_t)).infer(qin.data(), 1)[0] == v.expected);
  }
  // ceil mode: 256 = 42 * 6 + 4, the last window (t 252..255) averages 4 values: -6 / 4 = -1.5 -> -2
  std::vector<int16_t> row0(256, 0);
  row0[252] = -1, row0[253] = -2, row0[254] = -3, row0[255] = 0;
  const std::vector<int16_t> qin = windows_with_row0({row0});
  CHECK(deploy::HostModel(probe_model(ProbeLayer{1, 0, kHalf, 1}, 6, 42)).infer(qin.data(), 1)[0] == -2);
}
