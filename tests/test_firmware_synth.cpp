// The whole deployment path on data the repository makes itself: a half-width PULSE student
// trained briefly on the built-in synthetic windows (datasets/synth.h) is quantised, exported,
// built for Cortex-M4 and Cortex-M7 and run under QEMU; every firmware output must equal the host
// runtime's (deploy::HostModel) bit for bit. Needs nothing from ../shared: a reported skip
// (tests/shared_data.h) only when the ARM toolchain or QEMU is missing.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <set>

#include "datasets/folds.h"
#include "datasets/synth.h"
#include "deploy/calibrate.h"
#include "deploy/codegen.h"
#include "deploy/host_runtime.h"
#include "deploy/qemu_runner.h"
#include "kd/evaluate.h"
#include "kd/predictor.h"
#include "kd/trainer.h"
#include "tracking/hmm.h"
#include "tests/shared_data.h"

using namespace pulsekd;
namespace fs = std::filesystem;

static bool have_tools() {
  for (const char* t : {"arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", "cmake"})
    if (!pulsekd::testing::require_tool(t)) return false;
  return true;
}

// A half-width student trained 4 epochs on 3 synthetic subjects, and its normalisation.
struct SynthStudent {
  data::WindowSet ws;
  models::RowNorm norm;
  std::unique_ptr<models::PulseModel> model;
};

static SynthStudent train_synth_student() {
  data::SynthOptions so;
  so.seed = 11;
  so.subjects = 3;
  so.minutes = 1.5;
  SynthStudent s;
  s.ws = data::make_synthetic(so);
  models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.5;  // channels 8, 12, 16: every DSP kernel family of the default student
  s.model = std::make_unique<models::PulseModel>(cfg, 3);
  const data::Fold fold{{0, 1}, {2}, {2}};
  const data::Normalizer nz = data::Normalizer::fit(s.ws, data::windows_of(s.ws, fold.train));
  kd::TrainOptions t;
  t.epochs = 4;
  t.batch = 32;
  t.lr = 5e-4;
  t.init_output_at_mean = true;
  t.resume = false;
  kd::train_model(*s.model, s.ws, fold, nz, t);
  s.norm = models::RowNorm(nz);
  return s;
}

// The student quantised with the documented default bits, calibrated on all its windows.
static deploy::QuantModel quantize_default(const SynthStudent& s, const std::vector<float>& x /*(windows, 4, 256)*/) {
  deploy::QuantOptions qo;
  qo.bits = deploy::default_layer_bits();
  return deploy::quantize_model(*s.model, s.norm, x.data(), int64_t(s.ws.size()), qo, "synth");
}

TEST_CASE("synthetic student: firmware on M4 and M7 equals the host runtime bit for bit (int16 default and all-int8)") {
  if (!have_tools()) return;
  const SynthStudent s = train_synth_student();
  const std::vector<float> x = deploy::normalised_windows(s.ws, s.norm);  // (windows, 4, 256)
  const int64_t n = 12;  // windows run on each firmware, spread over the three subjects
  std::vector<float> xs;                                                  // (n, 4, 256)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t w = i * (int64_t(s.ws.size()) - 1) / (n - 1);
    xs.insert(xs.end(), x.begin() + w * 1024, x.begin() + (w + 1) * 1024);
  }
  const fs::path root = fs::temp_directory_path() / ("pulsekd_test_fw_synth_" + std::to_string(::getpid()));
  fs::remove_all(root);
  struct Case {
    const char* name;
    int default_bits;
    std::vector<std::string> cores;
  };
  // int16 (the documented default bits) on both cores; all-int8 (the packed int8 kernels) on M4
  for (const Case& c : {Case{"default", 16, {"m4", "m7"}}, Case{"int8", 8, {"m4"}}}) {
    CAPTURE(std::string(c.name));
    deploy::QuantOptions qo;
    qo.default_bits = c.default_bits;
    if (c.default_bits == 16) qo.bits = deploy::default_layer_bits();
    const deploy::QuantModel q = deploy::quantize_model(*s.model, s.norm, x.data(), int64_t(s.ws.size()), qo, "synth");
    const std::vector<int16_t> qin = deploy::quantize_input(q, xs.data(), n);  // (n, 4, 256)
    const std::vector<int32_t> host = deploy::HostModel(q).infer(qin.data(), n);  // (n)
    // the DSP kernels the firmware runs equal the reference loops on the host
    CHECK(deploy::HostModel(q, false).infer(qin.data(), n) == host);
    // the trained model tells the windows apart (a constant output would prove little)
    CHECK(std::set<int32_t>(host.begin(), host.end()).size() > size_t(n / 2));
    for (const std::string& core : c.cores) {
      CAPTURE(core);
      const std::string dir = (root / (std::string(c.name) + "_" + core)).string();
      deploy::export_mcu(q, core, dir);
      CHECK(deploy::mcu_run(dir, core, qin.data(), n) == host);
    }
  }
  fs::remove_all(root);
}

TEST_CASE("synthetic student with the HMM forward filter: the firmware's filtered heart rates equal the host's") {
  if (!have_tools()) return;
  const SynthStudent s = train_synth_student();
  const std::vector<float> x = deploy::normalised_windows(s.ws, s.norm);  // (windows, 4, 256)
  const deploy::QuantModel q = quantize_default(s, x);
  // subject 0's first 24 windows, in time order: one recording's sequence
  const int64_t n = 24;
  const std::vector<int16_t> qin = deploy::quantize_input(q, x.data(), n);  // (n, 4, 256)
  const std::vector<int32_t> host = deploy::HostModel(q).infer(qin.data(), n);  // (n)
  deploy::McuHmm h;  // 64 states; the prior fitted to the training subjects' labels
  h.prior_scale_bpm = tracking::TransitionPrior::fit(kd::label_traces(s.ws, {0, 1})).scale_bpm;
  deploy::McuHmmTables tab;
  deploy::mcu_hmm_tables(tab, h, q.out_scale);
  const std::vector<float> want = deploy::mcu_hmm_track(tab, host);  // the same code on the host, (n)
  // ... which follows the host's double tracker on the same grid closely
  tracking::HrGrid g;
  g.bpm = h.centres();
  tracking::TransitionPrior prior;
  prior.scale_bpm = h.prior_scale_bpm;
  const std::vector<float> dbl =
      tracking::track(tracking::laplace_likelihoods(deploy::heart_rates(q, host), g, h.laplace_bpm, h.outlier), g, prior,
                      tracking::TrackMode::Forward);
  for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(want[size_t(i)] - dbl[size_t(i)]) < 1e-3);
  const fs::path root = fs::temp_directory_path() / ("pulsekd_test_fw_hmm_" + std::to_string(::getpid()));
  fs::remove_all(root);
  for (const std::string core : {"m4", "m7"}) {
    CAPTURE(core);
    const std::string dir = (root / core).string();
    deploy::export_mcu(q, core, dir, "", true, &h);
    std::vector<float> fw;
    CHECK(deploy::mcu_run(dir, core, qin.data(), n, "-Os", &fw) == host);
    CHECK(fw == want);  // bit for bit: the same float code, no fused multiply-add on either side
    CHECK_THROWS_AS(deploy::mcu_run(dir, core, qin.data(), 1), std::logic_error);  // the filter's output must be taken
  }
  // The filter's cost under the instruction counter: the same model without and with it.
  deploy::export_mcu(q, "m4", (root / "plain").string());
  deploy::McuReportOptions ro;
  ro.cores = {"m4"};
  const deploy::McuCoreReport plain = deploy::mcu_report((root / "plain").string(), ro).at(0);
  const deploy::McuCoreReport with = deploy::mcu_report((root / "m4").string(), ro).at(0);
  MESSAGE("HMM (64 states, W " << tab.taps.size() - 1 << "): " << with.hmm_instructions << " instructions per window (first "
          << with.hmm_first_instructions << "); flash +" << with.flash_bytes() - plain.flash_bytes() << " B, RAM +"
          << with.ram_bytes() - plain.ram_bytes() << " B; model " << plain.instructions << " / " << with.instructions);
  CHECK(plain.hmm_instructions == 0);
  CHECK(with.hmm_instructions > with.hmm_first_instructions);  // the prediction through the band
  CHECK(with.hmm_first_instructions > 0);
  CHECK(with.instructions == plain.instructions);  // the model's count is unchanged
  CHECK(with.flash_bytes() > plain.flash_bytes());
  fs::remove_all(root);
}

TEST_CASE("predictors: firmware, host integer and float evaluate the same subjects through one kd::evaluate") {
  if (!have_tools()) return;
  const SynthStudent s = train_synth_student();
  const std::vector<float> x = deploy::normalised_windows(s.ws, s.norm);  // (windows, 4, 256)
  const deploy::QuantModel q = quantize_default(s, x);
  data::Normalizer nz;
  for (int r = 0; r < 4; ++r) nz.mean[r] = s.norm.mean[r], nz.std[r] = s.norm.std[r];
  const std::string dir = (fs::temp_directory_path() / ("pulsekd_test_predictors_" + std::to_string(::getpid()))).string();
  auto check = std::make_shared<kd::FirmwareCheck>();
  const std::vector<int> subjects = {2};  // the held-out subject
  const kd::EvalResult fw = kd::evaluate(kd::firmware_predictor(q, dir, "m4", check), s.ws, subjects, nz);
  const kd::EvalResult host = kd::evaluate(kd::integer_predictor(q), s.ws, subjects, nz);
  const kd::EvalResult fl = kd::evaluate(*s.model, s.ws, subjects, nz);
  const int64_t n = s.ws.subjects[2].num_windows;
  CHECK(check->windows == n);
  CHECK(check->mismatches == 0);
  REQUIRE(fw.subjects.size() == 1);
  CHECK(fw.subjects[0].pred == host.subjects[0].pred);  // bit-exact heart rates
  CHECK(fw.subjects[0].pred_post == host.subjects[0].pred_post);
  // the integer model is close to the float one (docs/MCU.md: well under 1 BPM per window)
  double d = 0;
  for (int64_t i = 0; i < n; ++i) d += std::fabs(double(fl.subjects[0].pred[size_t(i)]) - host.subjects[0].pred[size_t(i)]) / double(n);
  CHECK(d < 1.0);
  CHECK(d > 0.0);  // and not the float model itself
  // the host predictor equals predict_quantized on the same normalised windows
  std::vector<float> xs(static_cast<size_t>(n) * 1024), ys(static_cast<size_t>(n));  // (n, 4, 256), (n): normalised as evaluate does
  data::gather_batch(s.ws, data::windows_of(s.ws, {2}), nz, xs.data(), ys.data());
  CHECK(deploy::predict_quantized(q, xs.data(), n) == host.subjects[0].pred);
  fs::remove_all(dir);
}
