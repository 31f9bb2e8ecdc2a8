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
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/int_dsp.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d_int.h"
#include "kd/evaluate.h"
#include "models/checkpoint.h"
#include "models/export_mcu.h"
#include "models/quantize.h"

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

static const std::string kShared = PULSEKD_SHARED_DIR;
static bool have_shared() {
  if (fs::exists(kShared + "/reference/pulse_student_fold1.pt") && fs::exists(kShared + "/data/ieee-spc2015")) return true;
  MESSAGE("SKIPPED: " << kShared << " (released student, SPC 2015) is absent");
  return false;
}

TEST_CASE("released student quantised: MAE within 0.15 BPM of float, mean per-window difference <= 0.3 BPM") {
  if (!have_shared()) return;
  auto model = models::import_torch(kShared + "/reference/pulse_student_fold1.pt", "student");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015");
  const std::vector<float> x = models::normalised_windows(ws, models::RowNorm{});
  const int64_t n = ws.size();
  // the float forward through the shared reference loops equals the engine's
  std::vector<float> hf, tmp;
  for (int64_t s = 0; s < n; s += 256) {
    model->predict(x.data() + s * 1024, std::min<int64_t>(256, n - s), tmp);
    hf.insert(hf.end(), tmp.begin(), tmp.end());
  }
  const std::vector<float> hr_ref = models::predict_float_ref(*model, x.data(), 16);
  for (int i = 0; i < 16; ++i) CHECK(std::fabs(hr_ref[size_t(i)] - hf[size_t(i)]) < 1e-3);

  models::QuantOptions qo;
  qo.bits = models::default_layer_bits();
  const models::QuantModel q = models::quantize_model(*model, models::RowNorm{}, x.data(), n, qo);
  const std::vector<float> hq = models::predict_quantized(q, x.data(), n);
  double mf = 0, mq = 0, d = 0;
  for (const auto& sub : ws.subjects) {
    const auto b = long(sub.first_window), e = long(sub.first_window + sub.num_windows);
    const std::vector<float> t(ws.hr.begin() + b, ws.hr.begin() + e);
    mf += kd::compute_metrics(std::vector<float>(hf.begin() + b, hf.begin() + e), t).mae;
    mq += kd::compute_metrics(std::vector<float>(hq.begin() + b, hq.begin() + e), t).mae;
  }
  mf /= double(ws.subjects.size());
  mq /= double(ws.subjects.size());
  for (int64_t i = 0; i < n; ++i) d += std::fabs(double(hq[size_t(i)]) - double(hf[size_t(i)]));
  d /= double(n);
  MESSAGE("float MAE " << mf << ", integer MAE " << mq << ", mean |HR_int - HR_float| " << d);
  CHECK(std::fabs(mq - mf) <= 0.15);
  CHECK(d <= 0.3);

  // file round trip: identical integers
  const std::string path = std::string(PULSEKD_BINARY_DIR) + "/test_quant_student.safetensors";
  models::save_quant_model(path, q);
  const models::QuantModel q2 = models::load_quant_model(path);
  const std::vector<int16_t> qi = models::quantize_input(q, x.data(), 32);
  CHECK(models::simulate(q, qi.data(), 32) == models::simulate(q2, qi.data(), 32));
  // liveness planning: live tensors never share bytes
  const models::McuExport e = models::plan_arena(q);
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
  const models::McuExport e0 = models::plan_arena(q, false);
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
