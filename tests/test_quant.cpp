// Fixed-point arithmetic (engine/kernels/fixed_point.h, pool1d_int.h, int_dsp.h) against
// hand-computed values, the DSP variants against the reference loops bit for bit, and the
// quantised released student against its float self on real SPC 2015 windows.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <random>

#include "datasets/folds.h"
#include "datasets/registry.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/int_dsp.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/pool1d_int.h"
#include "kd/evaluate.h"
#include "models/checkpoint.h"
#include "deploy/calibrate.h"
#include "deploy/codegen.h"
#include "deploy/float_reference.h"
#include "deploy/host_runtime.h"
#include "deploy/quant_format.h"
#include "tests/shared_data.h"

using namespace pulsekd;
using namespace pulsekd::kernels;
namespace fs = std::filesystem;

TEST_CASE("requantisation rounding: gemmlowp SRDHM (ties up) then RDBPOT (ties away), saturation") {
  CHECK(fp_rdbpot(5, 1) == 3);    // 2.5
  CHECK(fp_rdbpot(-5, 1) == -3);  // -2.5
  CHECK(fp_rdbpot(3, 1) == 2);    // 1.5
  CHECK(fp_rdbpot(-3, 1) == -2);
  CHECK(fp_rdbpot(4, 1) == 2);
  CHECK(fp_rdbpot(-4, 2) == -1);
  CHECK(fp_rdbpot(-6, 2) == -2);  // -1.5
  CHECK(fp_rdbpot(7, 0) == 7);
  CHECK(fp_srdhm(INT32_MIN, INT32_MIN) == INT32_MAX);
  CHECK(fp_srdhm(1 << 30, 1 << 30) == (1 << 29));
  CHECK(fp_srdhm(-1, 1 << 30) == 0);   // -0.5 -> 0: SRDHM rounds ties toward +infinity
  CHECK(fp_srdhm(-3, 1 << 30) == -1);  // -1.5 -> -1
  CHECK(fp_srdhm(1, 1 << 30) == 1);    // 0.5 -> 1
  // M = 2^30 (0.5), shift 0: x * 0.5
  CHECK(fp_requantize(100, 1 << 30, 0) == 50);
  CHECK(fp_requantize(3, 1 << 30, 0) == 2);
  CHECK(fp_requantize(-3, 1 << 30, 0) == -1);  // -1.5 -> -1 (no right shift: SRDHM's rule)
  // 0.5 * 2^-3 = 1/16
  CHECK(fp_requantize(24, 1 << 30, -3) == 2);   // 1.5 -> 2
  CHECK(fp_requantize(-24, 1 << 30, -3) == -2);
  CHECK(fp_requantize(23, 1 << 30, -3) == 2);  // 1.4375 -> 2: TFLite's double rounding (11.5 -> 12, 1.5 -> 2)
  CHECK(fp_requantize(22, 1 << 30, -3) == 1);  // 1.375
  // 0.5 * 2^2 = 2, saturating left shift
  CHECK(fp_requantize(7, 1 << 30, 2) == 14);
  CHECK(fp_requantize(INT32_MAX / 2, 1 << 30, 4) == INT32_MAX / 2 + 1);  // saturated a = INT32_MAX
  CHECK(fp_div_round(6, 4) == 2);
  CHECK(fp_div_round(5, 4) == 1);
  CHECK(fp_div_round(-6, 4) == -2);
  CHECK(fp_div_round(-5, 4) == -1);
}

TEST_CASE("int8 conv with a folded input zero point equals the hand computation") {
  // real input x - zp with zp = 5: (5, 15, 25); weights (1, 2, 3); bias 7; pad 1 (a real zero)
  const int8_t x[3] = {10, 20, 30};
  const int8_t w[3] = {1, 2, 3};
  const int32_t folded = 7 - 5 * (1 + 2 + 3);
  const int32_t mult[1] = {1 << 30}, shift[1] = {1};  // multiplier 1.0
  const requant_params q{5, -10, mult, shift, -128, 127};
  int8_t y[3];
  conv1d_fwd_ref<ArithS8>(y, x, w, &folded, 3, conv1d_params{1, 1, 3, 1, 1, 1, 1}, q);
  CHECK(int(y[0]) == -10 + (0 * 1 + 5 * 2 + 15 * 3 + 7));   // 52
  CHECK(int(y[1]) == -10 + (5 * 1 + 15 * 2 + 25 * 3 + 7));   // 107
  CHECK(int(y[2]) == -10 + (15 * 1 + 25 * 2 + 0 * 3 + 7));  // 62
}

TEST_CASE("fused ReLU clamp and int16 outputs") {
  const int16_t x[2] = {-300, 400};
  const int8_t w[2] = {1, 1};  // linear 2 -> 1 per row
  const int32_t b = 0, mult[1] = {1 << 30}, shift[1] = {1};
  const requant_params relu{0, 0, mult, shift, 0, 32767};
  int16_t y;
  const int16_t xa[2] = {-300, 100};
  linear_fwd_ref<ArithS16>(&y, xa, w, &b, 1, 2, 1, relu);
  CHECK(y == 0);
  linear_fwd_ref<ArithS16>(&y, x, w, &b, 1, 2, 1, relu);
  CHECK(y == 100);
  int32_t raw;
  const requant_params acc{0, 0, nullptr, nullptr, INT32_MIN, INT32_MAX};
  linear_fwd_ref<ArithS16Acc>(&raw, x, w, &b, 1, 2, 1, acc);
  CHECK(raw == 100);
}

TEST_CASE("integer average pooling rounds half away from zero, ceil mode") {
  const int8_t x[5] = {1, 2, -1, -2, 3};  // (5, 1)
  int8_t y[3];
  avgpool1d_fwd_int<int8_t>(y, x, 5, 1, pool1d_params{2, 2, 1});
  CHECK(int(y[0]) == 2);   // 1.5
  CHECK(int(y[1]) == -2);  // -1.5
  CHECK(int(y[2]) == 3);   // partial window of 1
}

TEST_CASE("DSP (SXTB16/SMLAD) variants are bit-exact with the reference loops") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> b8(-128, 127), w8(-127, 127), bias(-20000, 20000), sh(-12, -1);
  for (int trial = 0; trial < 24; ++trial) {
    const int cin = 4 * (1 + trial % 8), cout = 1 + (trial * 5) % 9, K = 1 + trial % 5, dil = 1 + trial % 4;
    const int pad = (trial % 3) * dil, t_in = 3 + trial * 3;
    CAPTURE(trial);
    std::vector<int8_t> x(size_t(t_in * cin)), w(size_t(cout * K * cin));
    std::vector<int32_t> b(static_cast<size_t>(cout)), m(static_cast<size_t>(cout)), s(static_cast<size_t>(cout));
    for (auto& v : x) v = int8_t(b8(rng));
    for (auto& v : w) v = int8_t(w8(rng));
    for (int i = 0; i < cout; ++i) b[size_t(i)] = bias(rng), m[size_t(i)] = (1 << 30) + (bias(rng) & 0xFFFFF) * 1000, s[size_t(i)] = sh(rng);
    const requant_params q{b8(rng), b8(rng), m.data(), s.data(), -128, 127};
    const conv1d_params p{cin, cout, K, 1, pad, dil, 1};
    const int t_out = conv1d_out_len(t_in, p);
    if (t_out <= 0) continue;
    std::vector<int8_t> y_ref(size_t(t_out * cout)), y_dsp(y_ref.size());
    conv1d_fwd_ref<ArithS8>(y_ref.data(), x.data(), w.data(), b.data(), t_in, p, q);
    conv1d_s8_dsp<int8_t>(y_dsp.data(), x.data(), w.data(), b.data(), t_in, p, q);
    CHECK(y_ref == y_dsp);
    // packed int8 variants (4 channels per pass, one weight pointer), padding with a zero point
    std::vector<int8_t> wp(w.size()), y_p(y_ref.size());
    dsp_pack_weights_s8(wp.data(), w.data(), cout, K, cin, cin);
    conv1d_s8p_dsp<int8_t>(y_p.data(), x.data(), wp.data(), b.data(), t_in, p, q);
    CHECK(y_ref == y_p);
    std::vector<int16_t> z_ref(y_ref.size()), z_dsp(y_ref.size());
    const requant_params q16{q.in_zp, 0, m.data(), s.data(), -32768, 32767};
    conv1d_fwd_ref<ArithS8S16>(z_ref.data(), x.data(), w.data(), b.data(), t_in, p, q16);
    conv1d_s8_dsp<int16_t>(z_dsp.data(), x.data(), w.data(), b.data(), t_in, p, q16);
    CHECK(z_ref == z_dsp);
    // linear: t_in rows of cin features
    std::vector<int8_t> wl(size_t(cout * cin)), l_ref(size_t(t_in * cout)), l_dsp(l_ref.size());
    for (auto& v : wl) v = int8_t(w8(rng));
    linear_fwd_ref<ArithS8>(l_ref.data(), x.data(), wl.data(), b.data(), t_in, cin, cout, q);
    linear_s8_dsp<int8_t>(l_dsp.data(), x.data(), wl.data(), b.data(), t_in, cin, cout, q);
    CHECK(l_ref == l_dsp);
    std::vector<int8_t> wlp(wl.size()), l_p(l_ref.size());
    dsp_pack_weights_s8(wlp.data(), wl.data(), cout, 1, cin, cin);
    linear_s8p_dsp<int8_t>(l_p.data(), x.data(), wlp.data(), b.data(), t_in, cin, cout, q);
    CHECK(l_ref == l_p);
    // modality: rows = 1 + trial % 4 over (rows, t, cin)
    const int rows = 1 + trial % 4, t = 1 + trial % 6;
    std::vector<int8_t> xm(size_t(rows * t * cin)), wm(size_t(cout * rows * cin)), m_ref(size_t(t * cout)), m_dsp(m_ref.size());
    for (auto& v : xm) v = int8_t(b8(rng));
    for (auto& v : wm) v = int8_t(w8(rng));
    const modality_conv_params mp{rows, t, cin, cout};
    modality_conv_fwd_ref<ArithS8>(m_ref.data(), xm.data(), wm.data(), b.data(), mp, q);
    modality_conv_s8_dsp<int8_t>(m_dsp.data(), xm.data(), wm.data(), b.data(), mp, q);
    CHECK(m_ref == m_dsp);
    std::vector<int8_t> wmp(wm.size()), m_p(m_ref.size());
    dsp_pack_weights_s8(wmp.data(), wm.data(), cout, rows, cin, cin);
    modality_conv_s8p_dsp<int8_t>(m_p.data(), xm.data(), wmp.data(), b.data(), mp, q);
    CHECK(m_ref == m_p);
  }
}

static const std::string kShared = pulsekd::testing::shared_dir();
// The released `arch` and the SPC 2015 recordings.
static bool have_shared(const std::string& arch = "student") {
  using pulsekd::testing::require_shared;
  return require_shared(kShared + "/reference/pulse_" + arch + "_fold1.pt", "the released " + arch) &&
         require_shared(kShared + "/data/ieee-spc2015", "the SPC 2015 recordings");
}

namespace {
// The float model (the engine's forward) against the quantised one on every window of ws.
struct FloatVsInt {
  std::vector<float> hr_float, hr_int;
  double mae_float = 0, mae_int = 0;  // mean over recordings
  double mean_abs_diff = 0;           // mean |HR_int - HR_float| per window
};
FloatVsInt float_vs_int(models::PulseModel& model, const deploy::QuantModel& q, const data::WindowSet& ws,
                        const std::vector<float>& x) {
  FloatVsInt r;
  const int64_t n = ws.size();
  std::vector<float> tmp;
  for (int64_t s = 0; s < n; s += 256) {
    model.predict(x.data() + s * 1024, std::min<int64_t>(256, n - s), tmp);
    r.hr_float.insert(r.hr_float.end(), tmp.begin(), tmp.end());
  }
  r.hr_int = deploy::predict_quantized(q, x.data(), n);
  for (const auto& sub : ws.subjects) {
    const auto b = long(sub.first_window), e = long(sub.first_window + sub.num_windows);
    const std::vector<float> t(ws.hr.begin() + b, ws.hr.begin() + e);
    r.mae_float += kd::compute_metrics(std::vector<float>(r.hr_float.begin() + b, r.hr_float.begin() + e), t).mae;
    r.mae_int += kd::compute_metrics(std::vector<float>(r.hr_int.begin() + b, r.hr_int.begin() + e), t).mae;
  }
  r.mae_float /= double(ws.subjects.size());
  r.mae_int /= double(ws.subjects.size());
  for (int64_t i = 0; i < n; ++i) r.mean_abs_diff += std::fabs(double(r.hr_int[size_t(i)]) - double(r.hr_float[size_t(i)]));
  r.mean_abs_diff /= double(n);
  return r;
}
}  // namespace

TEST_CASE("released student quantised: MAE within 0.15 BPM of float, mean per-window difference <= 0.3 BPM") {
  if (!have_shared()) return;
  auto model = models::import_torch(kShared + "/reference/pulse_student_fold1.pt", "student");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015");
  const std::vector<float> x = deploy::normalised_windows(ws, models::RowNorm{});
  const int64_t n = ws.size();
  deploy::QuantOptions qo;
  qo.bits = deploy::default_layer_bits();
  const deploy::QuantModel q = deploy::quantize_model(*model, models::RowNorm{}, x.data(), n, qo);
  const FloatVsInt r = float_vs_int(*model, q, ws, x);
  // the float forward through the shared reference loops equals the engine's
  const std::vector<float> hr_ref = deploy::predict_float_ref(*model, x.data(), 16);
  for (int i = 0; i < 16; ++i) CHECK(std::fabs(hr_ref[size_t(i)] - r.hr_float[size_t(i)]) < 1e-3);
  MESSAGE("float MAE " << r.mae_float << ", integer MAE " << r.mae_int << ", mean |HR_int - HR_float| " << r.mean_abs_diff);
  CHECK(std::fabs(r.mae_int - r.mae_float) <= 0.15);
  CHECK(r.mean_abs_diff <= 0.3);

  // file round trip: identical integers
  const std::string path = std::string(PULSEKD_BINARY_DIR) + "/test_quant_student.safetensors";
  deploy::save_quant_model(path, q);
  const deploy::QuantModel q2 = deploy::load_quant_model(path);
  const std::vector<int16_t> qi = deploy::quantize_input(q, x.data(), 32);
  CHECK(deploy::HostModel(q).infer(qi.data(), 32) == deploy::HostModel(q2).infer(qi.data(), 32));
  // liveness planning: live tensors never share bytes
  const deploy::McuExport e = deploy::plan_arena(q);
  int inplace = 0;
  for (size_t i = 0; i < e.slots.size(); ++i) {
    const auto& a = e.slots[i];
    inplace += a.inplace;
    for (size_t j = 0; j < e.slots.size(); ++j) {
      const auto& b = e.slots[j];
      if (i == j || a.last < b.first || b.last < a.first) continue;
      // an in-place conv's output overlaps its own input (the slot just before it), by design
      if ((b.inplace && j == i + 1) || (a.inplace && i == j + 1)) {
        const auto& in = i < j ? a : b;  // the earlier tensor is the input
        const auto& out = i < j ? b : a;
        CHECK(out.offset <= in.offset);  // rows written below, each after its last read
        continue;
      }
      CHECK((a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset));
    }
  }
  CHECK(inplace == 6);  // conv12/13, conv22/23, conv32/33
  const deploy::McuExport e0 = deploy::plan_arena(q, false);
  CHECK(e.arena_bytes < e0.arena_bytes);
  MESSAGE("arena " << e.arena_bytes << " B with in-place convs, " << e0.arena_bytes << " B without");
}

TEST_CASE("int16-input DSP variants (SMLAD on int16 pairs, packed interleaved int8 weights) are bit-exact with the reference loops") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> x16(-32768, 32767), w8(-127, 127), bias(-200000, 200000), sh(-20, -8);
  for (int trial = 0; trial < 24; ++trial) {
    const int cin = 4 * (1 + trial % 8), cout = 1 + (trial * 5) % 11, K = 1 + trial % 5, dil = 1 + trial % 4;
    const int pad = (trial % 3) * dil, t_in = 3 + trial * 3;
    CAPTURE(trial);
    std::vector<int16_t> x(size_t(t_in * cin));
    std::vector<int8_t> w(size_t(cout * K * cin));
    std::vector<int32_t> b(static_cast<size_t>(cout)), m(static_cast<size_t>(cout)), s(static_cast<size_t>(cout));
    for (auto& v : x) v = int16_t(x16(rng));
    for (auto& v : w) v = int8_t(w8(rng));
    for (int i = 0; i < cout; ++i) b[size_t(i)] = bias(rng), m[size_t(i)] = (1 << 30) + (bias(rng) & 0xFFFFF) * 1000, s[size_t(i)] = sh(rng);
    std::vector<int8_t> wi(w.size());
    dsp_pack_weights_s16(wi.data(), w.data(), cout, K, cin, cin);
    const conv1d_params p{cin, cout, K, 1, pad, dil, 1};
    const int t_out = conv1d_out_len(t_in, p);
    if (t_out <= 0) continue;
    const requant_params q16{0, 0, m.data(), s.data(), -32768, 32767}, q8{0, -5, m.data(), s.data(), -128, 127};
    std::vector<int16_t> y_ref(size_t(t_out * cout)), y_dsp(y_ref.size());
    conv1d_fwd_ref<ArithS16>(y_ref.data(), x.data(), w.data(), b.data(), t_in, p, q16);
    conv1d_s16_dsp<int16_t>(y_dsp.data(), x.data(), wi.data(), b.data(), t_in, p, q16);
    CHECK(y_ref == y_dsp);
    std::vector<int8_t> z_ref(y_ref.size()), z_dsp(y_ref.size());
    conv1d_fwd_ref<ArithS16S8>(z_ref.data(), x.data(), w.data(), b.data(), t_in, p, q8);
    conv1d_s16_dsp<int8_t>(z_dsp.data(), x.data(), wi.data(), b.data(), t_in, p, q8);
    CHECK(z_ref == z_dsp);
    // in place: output written over the input, delayed by pad rows (c_out == c_in)
    {
      const conv1d_params pi{cin, cin, K, 1, pad, dil, 1};
      const int to = conv1d_out_len(t_in, pi);
      std::vector<int8_t> wq(size_t(cin * K * cin)), wqp(wq.size());
      for (auto& v : wq) v = int8_t(w8(rng));
      dsp_pack_weights_s16(wqp.data(), wq.data(), cin, K, cin, cin);
      std::vector<int32_t> bi(static_cast<size_t>(cin)), mi(static_cast<size_t>(cin)), si(static_cast<size_t>(cin));
      for (int i = 0; i < cin; ++i) bi[size_t(i)] = bias(rng), mi[size_t(i)] = (1 << 30) + i * 999, si[size_t(i)] = sh(rng);
      const requant_params qi{0, 0, mi.data(), si.data(), -32768, 32767};
      std::vector<int16_t> ref(size_t(std::max(to, 0) * cin));
      conv1d_fwd_ref<ArithS16>(ref.data(), x.data() /*(t_in, cin)*/, wq.data(), bi.data(), t_in, pi, qi);
      // buffer: pad rows of room, then the input; output starts pad rows below the input
      std::vector<int16_t> buf(size_t((pad + std::max(t_in, to)) * cin), 0);
      std::copy(x.begin(), x.end(), buf.begin() + pad * cin);
      conv1d_s16_dsp_inplace<int16_t>(buf.data(), buf.data() + pad * cin, wqp.data(), bi.data(), t_in, pi, qi);
      CHECK(std::equal(ref.begin(), ref.end(), buf.begin()));
    }
    // small-c_in column variant (any c_in; zero-padded, interleaved weights)
    for (const int cin_s : {1, 3, cin}) {
      if (dsp_col_len(K, cin_s) > kDspMaxCol) continue;
      const conv1d_params ps{cin_s, cout, K, 1, pad, dil, 1};
      std::vector<int8_t> ws(size_t(cout * K * cin_s)), wp(size_t(cout * dsp_col_len(K, cin_s)));
      for (auto& v : ws) v = int8_t(w8(rng));
      dsp_pack_weights_s16(wp.data(), ws.data(), cout, 1, K * cin_s, dsp_col_len(K, cin_s));
      std::vector<int16_t> xs(size_t(t_in * cin_s)), c_ref(size_t(t_out * cout)), c_dsp(c_ref.size());
      for (auto& v : xs) v = int16_t(x16(rng));
      conv1d_fwd_ref<ArithS16>(c_ref.data(), xs.data(), ws.data(), b.data(), t_in, ps, q16);
      conv1d_s16_col_dsp<int16_t>(c_dsp.data(), xs.data(), wp.data(), b.data(), t_in, ps, q16);
      CHECK(c_ref == c_dsp);
    }
    // linear: t_in rows of cin features, raw int32 output too
    std::vector<int8_t> wl(size_t(cout * cin));
    for (auto& v : wl) v = int8_t(w8(rng));
    std::vector<int8_t> wli(wl.size());
    dsp_pack_weights_s16(wli.data(), wl.data(), cout, 1, cin, cin);
    std::vector<int32_t> l_ref(size_t(t_in * cout)), l_dsp(l_ref.size());
    const requant_params qa{0, 0, nullptr, nullptr, INT32_MIN, INT32_MAX};
    linear_fwd_ref<ArithS16Acc>(l_ref.data(), x.data(), wl.data(), b.data(), t_in, cin, cout, qa);
    linear_s16_dsp<int32_t>(l_dsp.data(), x.data(), wli.data(), b.data(), t_in, cin, cout, qa);
    CHECK(l_ref == l_dsp);
    // modality conv
    const int rows = 1 + trial % 4, t = 1 + trial % 6;
    std::vector<int16_t> xm(size_t(rows * t * cin));
    std::vector<int8_t> wm(size_t(cout * rows * cin)), m_ref(size_t(t * cout)), m_dsp(m_ref.size());
    for (auto& v : xm) v = int16_t(x16(rng));
    for (auto& v : wm) v = int8_t(w8(rng));
    std::vector<int8_t> wmi(wm.size());
    dsp_pack_weights_s16(wmi.data(), wm.data(), cout, rows, cin, cin);
    const modality_conv_params mp{rows, t, cin, cout};
    modality_conv_fwd_ref<ArithS16S8>(m_ref.data(), xm.data(), wm.data(), b.data(), mp, q8);
    modality_conv_s16_dsp<int8_t>(m_dsp.data(), xm.data(), wmi.data(), b.data(), mp, q8);
    CHECK(m_ref == m_dsp);
  }
}

TEST_CASE("requant_output_fast and dsp_requant_row equal requant_output (shift <= 0 fast path, fallbacks)") {
  std::mt19937 rng(5);
  std::vector<int32_t> accs = {0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, 1 << 30, -(1 << 30)};
  for (int i = 0; i < 400; ++i) accs.push_back(int32_t(rng()));
  for (int i = 0; i < 200; ++i) accs.push_back(int32_t(rng() % 20001) - 10000);
  std::vector<int32_t> mults = {0, 1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1, 1518500250};
  for (int i = 0; i < 6; ++i) mults.push_back(int32_t((1u << 30) + (rng() % (1u << 30))));
  int64_t n = 0, bad = 0;
  for (int32_t m : mults)
    for (int32_t sh = -31; sh <= 3; ++sh)
      for (const auto& ranges : {std::array<int32_t, 3>{-5, -128, 127}, std::array<int32_t, 3>{0, -32768, 32767},
                                 std::array<int32_t, 3>{-128, -128, 127}, std::array<int32_t, 3>{0, 0, 32767}}) {
        const int32_t mm[1] = {m}, ss[1] = {sh};
        const requant_params q{0, ranges[0], mm, ss, ranges[1], ranges[2]};
        for (int32_t a : accs) {
          ++n;
          int32_t row[1];
          dsp_requant_row<int32_t>(row, &a, 0, 1, q);  // the DSP kernels' per-row requantisation
          bad += requant_output_fast(a, 0, q) != requant_output(a, 0, q);
          bad += row[0] != requant_output(a, 0, q);
        }
      }
  CHECK(bad == 0);
  MESSAGE(n << " (acc, multiplier, shift, clamp) cases compared");
}

// ---------------------------------------------------------------------------------------
// Teacher: integer softmax, attention and LayerNorm (engine/kernels/attention.h)

namespace {
// real multiplier m > 0 -> (M in [2^30, 2^31), shift), m = M 2^(shift - 31) (as deploy/gptq.cpp)
void to_q31(double m, int32_t& mult, int32_t& shift) {
  int e = 0;
  int64_t q = std::llround(std::frexp(m, &e) * double(int64_t(1) << 31));
  if (q == (int64_t(1) << 31)) q /= 2, ++e;
  mult = int32_t(q);
  shift = e;
}
std::vector<double> softmax_f(const std::vector<double>& x) {
  double mx = x[0], s = 0;
  for (double v : x) mx = std::max(mx, v);
  std::vector<double> p(x.size());
  for (size_t i = 0; i < x.size(); ++i) s += (p[i] = std::exp(x[i] - mx));
  for (double& v : p) v /= s;
  return p;
}
}  // namespace

TEST_CASE("exp2 table and fixed-point 2^-x: every entry and 4,002 points against exp2") {
  for (int i = 0; i <= 64; ++i) CHECK(exp2_neg_table(i) == std::llround(std::ldexp(std::exp2(-i / 64.0), 30)));
  double worst = 0;
  for (int32_t x = 0; x < (8 << 16); x += 131) {
    const double ref = std::ldexp(std::exp2(-x / 65536.0), 30);
    worst = std::max(worst, std::fabs(exp2_neg_q16(x) - ref) / ref);
  }
  MESSAGE("worst relative error of exp2_neg_q16 on [0, 8): " << worst);
  CHECK(worst < 2e-5);
  CHECK(exp2_neg_q16(0) == (1 << 30));
  CHECK(exp2_neg_q16(1 << 16) == (1 << 29));
  CHECK(exp2_neg_q16(31 << 16) == 0);
  CHECK(exp2_neg_q16(INT32_MAX) == 0);  // saturated exponent: weight 0, no UB
}

TEST_CASE("integer softmax against float: random rows, all-equal scores, one dominant score, saturation") {
  std::mt19937 rng(21);
  const double S = 1e-3;  // score units
  int32_t em, es;
  to_q31(S / std::log(2.0) * 65536.0, em, es);
  std::vector<int32_t> s(192), e(192);
  std::vector<int16_t> p(192);
  double worst = 0;
  for (int it = 0; it < 50; ++it) {
    std::uniform_real_distribution<double> u(-8.0 - it * 0.2, 8.0 + it * 0.2);
    std::vector<double> xf(192);
    for (size_t i = 0; i < s.size(); ++i) s[i] = int32_t(std::lround((xf[i] = u(rng)) / S)), xf[i] = s[i] * S;
    softmax_int(p.data(), s.data(), e.data(), 192, em, es);
    const std::vector<double> pf = softmax_f(xf);
    int64_t sum = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      worst = std::max(worst, std::fabs(p[i] / 32768.0 - pf[i]));
      sum += p[i];
    }
    CHECK(std::llabs(sum - 32768) <= 96 + 1);  // one rounding (<= 1/2) per probability, the clamp
  }
  MESSAGE("worst |p_int - p_float| over 50 random rows of 192: " << worst);
  CHECK(worst < 4e-5);  // Q15 step 3.1e-5 (half of it from rounding), table interpolation 1.5e-5 relative

  // all equal: exactly 1/192 each, rounded (32768 / 192 = 170.67)
  std::fill(s.begin(), s.end(), 12345);
  softmax_int(p.data(), s.data(), e.data(), 192, em, es);
  for (int16_t v : p) CHECK(v == 171);
  // one dominant score (30 units above the rest): probability 1 (clamped to 32767), the rest 0
  std::fill(s.begin(), s.end(), -5000);
  s[17] = 25000;
  softmax_int(p.data(), s.data(), e.data(), 192, em, es);
  CHECK(p[17] == 32767);
  CHECK(p[0] == 0);
  // saturation: differences near 2^31 with a large multiplier saturate the exponent to weight 0
  int32_t big_m, big_s;
  to_q31(1000.0, big_m, big_s);
  std::fill(s.begin(), s.end(), -1073741823);
  s[3] = 1073741823;
  s[4] = 1073741822;  // one unit below: weight 2^(-1000 / 65536), nearly equal
  softmax_int(p.data(), s.data(), e.data(), 192, big_m, big_s);
  CHECK(std::abs(p[3] - 16384) <= 100);
  CHECK(std::abs(p[4] - 16384) <= 100);
  CHECK(p[0] == 0);
  // a single key: probability 1
  softmax_int(p.data(), s.data(), e.data(), 1, em, es);
  CHECK(p[0] == 32767);
}

TEST_CASE("integer attention (4 heads, 192 keys, 24-bit q/k/v) against the float attention on dequantised inputs") {
  const int lq = 64, lk = 192, e = 16, heads = 4, A = (1 << 23) - 1;
  std::vector<int32_t> q(size_t(lq) * e), kv(size_t(lk) * 2 * e), scratch(size_t(2 * lk));
  std::vector<int64_t> scores(static_cast<size_t>(lk));
  std::vector<int16_t> ctx(size_t(lq) * e), probs(static_cast<size_t>(lk));
  std::vector<float> qf(q.size()), kvf(kv.size()), ctxf(ctx.size()), sf(static_cast<size_t>(lk));
  // two score ranges: soft (|score| <= 4.5) and sharp (|score| <= 450, nearly one-hot rows),
  // and the extreme +-A everywhere (the validator's bound: no overflow)
  for (const double range : {3.0, 30.0}) {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> qk(-A, A);
    const double s_q = range / A, s_k = range / A, s_v = 1.0 / A, s_ctx = 1.0 / 32767;
    for (size_t i = 0; i < q.size(); ++i) qf[i] = float(s_q * (q[i] = qk(rng)));
    for (size_t i = 0; i < kv.size(); ++i) kvf[i] = float(((i / e) % 2 ? s_v : s_k) * (kv[i] = qk(rng)));
    int32_t em, es, pm, ps;
    to_q31(std::ldexp(s_q * s_k, kScoreShift) / 2.0 / std::log(2.0) * 65536.0, em, es);
    to_q31(std::ldexp(s_v, kPvShift - 15) / s_ctx, pm, ps);
    attention_fwd_int<int16_t>(ctx.data(), q.data(), kv.data(), scores.data(), scratch.data(), probs.data(), lq, lk, e, heads, em,
                               es, pm, ps, -32768, 32767);
    attention_fwd_ref<float>(ctxf.data(), qf.data(), kvf.data(), sf.data(), lq, lk, e, heads);
    double worst = 0;
    for (size_t i = 0; i < ctx.size(); ++i) worst = std::max(worst, std::fabs(ctx[i] * s_ctx - ctxf[i]));
    MESSAGE("q/k range " << range << ": worst |ctx_int - ctx_float| (|v| <= 1): " << worst);
    CHECK(worst < 5e-4);  // output step 3e-5, probabilities Q15 (soft rows: 192 of them summed)
    std::fill(q.begin(), q.end(), A);
    std::fill(kv.begin(), kv.end(), -A);
    attention_fwd_int<int16_t>(ctx.data(), q.data(), kv.data(), scores.data(), scratch.data(), probs.data(), lq, lk, e, heads, em,
                               es, pm, ps, -32768, 32767);
    CHECK(std::abs(ctx[0] * s_ctx + 1.0) < 1e-3);  // all-equal scores: the mean of v = -1
  }
}

TEST_CASE("integer LayerNorm against float: random tokens, constant token, eps-dominated, zero-point shift, saturation") {
  std::mt19937 rng(9);
  const int d = 16, n = 200;
  const double s_a = 2e-4, eps = 1e-5, s_out = 8.0 / 32767;
  std::uniform_real_distribution<double> gd(0.3, 2.0), bd(-1.0, 1.0);
  std::vector<float> gam(d), bet(d);
  std::vector<int8_t> w(d);
  std::vector<int32_t> b(d), mult(d), shift(d);
  for (int i = 0; i < d; ++i) {
    gam[size_t(i)] = float(gd(rng) * (i % 3 ? 1 : -1));
    bet[size_t(i)] = float(bd(rng));
    // as deploy/calibrate.cpp: gamma exactly +-127 at scale |gamma| / 127, input scale sqrt(d) 2^-15
    const double sw = std::fabs(gam[size_t(i)]) / 127.0, s_in = std::sqrt(double(d)) / 32768.0;
    w[size_t(i)] = int8_t(gam[size_t(i)] > 0 ? 127 : -127);
    b[size_t(i)] = int32_t(std::lround(bet[size_t(i)] / (s_in * sw)));
    to_q31(s_in * sw / s_out, mult[size_t(i)], shift[size_t(i)]);
  }
  const requant_params rq{0, 0, mult.data(), shift.data(), -32768, 32767};
  const int64_t eps_q = std::llround(double(d) * d * d * eps / (s_a * s_a));
  auto check_tokens = [&](const std::vector<int16_t>& x, double tol) {
    std::vector<int16_t> y(x.size());
    std::vector<float> xf(x.size()), yf(x.size());
    for (size_t i = 0; i < x.size(); ++i) xf[i] = float(s_a * x[i]);
    const int rows = int(x.size()) / d;
    layernorm_fwd_int<int16_t, int16_t>(y.data(), x.data(), w.data(), b.data(), rows, d, eps_q, rq);
    layernorm_fwd_ref<float>(yf.data(), nullptr, nullptr, xf.data(), gam.data(), bet.data(), size_t(rows), d, float(eps));
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(y[i] * s_out - yf[i]));
    CHECK(worst < tol);
    return y;
  };
  std::uniform_int_distribution<int> xd(-32768, 32767);
  std::vector<int16_t> x(size_t(n) * d);
  for (auto& v : x) v = int16_t(xd(rng));
  check_tokens(x, 1.5e-3);  // z step 2^-15 sqrt(16), output step 2.4e-4
  // constant token: the output is beta exactly up to its rounding
  const std::vector<int16_t> y = check_tokens(std::vector<int16_t>(d, 1000), 5e-4);
  for (int i = 0; i < d; ++i) CHECK(std::fabs(y[size_t(i)] * s_out - bet[size_t(i)]) < 3e-4);
  // deviations comparable to eps (x = 1000 + {0, 1, 2}): eps dominates the variance
  std::vector<int16_t> small(d);
  for (int i = 0; i < d; ++i) small[size_t(i)] = int16_t(1000 + i % 3);
  check_tokens(small, 1.5e-3);
  // a constant shift of the input (what an int8 zero point is) changes nothing
  std::vector<int16_t> shifted(x.begin(), x.begin() + 16 * d), y1(shifted.size()), y2(shifted.size());
  for (auto& v : shifted) v = int16_t(v / 2);
  std::vector<int16_t> plus(shifted);
  for (auto& v : plus) v = int16_t(v + 7000);
  layernorm_fwd_int<int16_t, int16_t>(y1.data(), shifted.data(), w.data(), b.data(), 16, d, eps_q, rq);
  layernorm_fwd_int<int16_t, int16_t>(y2.data(), plus.data(), w.data(), b.data(), 16, d, eps_q, rq);
  CHECK(y1 == y2);
  // saturation: an int8 output whose scale is far too small clamps to the type's range
  std::vector<int32_t> m8(d), s8(d);
  for (int i = 0; i < d; ++i) to_q31(std::sqrt(double(d)) / 32768.0 * std::fabs(gam[size_t(i)]) / 127.0 / 1e-3, m8[size_t(i)], s8[size_t(i)]);
  const requant_params rq8{0, -3, m8.data(), s8.data(), -128, 127};
  std::vector<int8_t> y8(static_cast<size_t>(d));
  std::vector<int16_t> spike(d, 0);
  spike[0] = 30000;  // normalised value sqrt(15): far beyond 127 * 1e-3
  layernorm_fwd_int<int16_t, int8_t>(y8.data(), spike.data(), w.data(), b.data(), 1, d, eps_q, rq8);
  CHECK(int(y8[0]) == (gam[0] > 0 ? 127 : -128));
  CHECK(isqrt_u64(0) == 0);
  CHECK(isqrt_u64(15) == 3);
  CHECK(isqrt_u64(16) == 4);
  CHECK(isqrt_u64((uint64_t(1) << 62) - 1) == (int64_t(1) << 31) - 1);
}

TEST_CASE("released teacher quantised: host simulation vs float on the SPC 2015 windows (extra=0)") {
  if (!have_shared("teacher")) return;
  auto model = models::import_torch(kShared + "/reference/pulse_teacher_fold1.pt", "teacher");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015?extra=0");
  const std::vector<float> x = deploy::normalised_windows(ws, models::RowNorm{});
  const int64_t n = ws.size();
  deploy::QuantOptions qo;  // as `pulsekd quantize` does for a teacher
  qo.bits = deploy::default_layer_bits("teacher");
  const deploy::QuantModel q = deploy::quantize_model(*model, models::RowNorm{}, x.data(), n, qo);
  CHECK(q.arch == "teacher");
  const FloatVsInt r = float_vs_int(*model, q, ws, x);
  // the float forward through the shared reference loops (attention.h included) equals the engine's
  const std::vector<float> hr_ref = deploy::predict_float_ref(*model, x.data(), 8);
  for (int i = 0; i < 8; ++i) CHECK(std::fabs(hr_ref[size_t(i)] - r.hr_float[size_t(i)]) < 1e-3);
  MESSAGE("teacher: float MAE " << r.mae_float << ", integer MAE " << r.mae_int << ", mean |HR_int - HR_float| " << r.mean_abs_diff);
  // the targets (measured: MAE +0.032, per-window 0.184 BPM; docs/MCU.md)
  CHECK(std::fabs(r.mae_int - r.mae_float) <= 0.15);
  CHECK(r.mean_abs_diff <= 0.3);
  CHECK(r.mean_abs_diff > 0.1);  // a real integer model, not the float one

  const std::string path = std::string(PULSEKD_BINARY_DIR) + "/test_quant_teacher.safetensors";
  deploy::save_quant_model(path, q);
  const deploy::QuantModel q2 = deploy::load_quant_model(path);
  const std::vector<int16_t> qi = deploy::quantize_input(q, x.data(), 4);
  CHECK(deploy::HostModel(q).infer(qi.data(), 4) == deploy::HostModel(q2).infer(qi.data(), 4));
}
