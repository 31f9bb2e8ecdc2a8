#include "kd/predictor.h"

#include "deploy/calibrate.h"
#include "deploy/codegen.h"
#include "deploy/host_runtime.h"
#include "deploy/qemu_runner.h"

namespace pulsekd::kd {

Predictor float_predictor(models::PulseModel& m) {
  Predictor p;
  p.name = "float";
  if (m.config().head == "binned") p.bin_centres = m.bin_centres();
  p.predict = [&m](const float* x, int64_t n, std::vector<float>& hr, std::vector<float>* logits) {
    m.predict(x, n, hr, nullptr, logits);
  };
  return p;
}

Predictor integer_predictor(const deploy::QuantModel& q) {
  Predictor p;
  p.name = "host integer";
  auto host = std::make_shared<deploy::HostModel>(q);  // shared by copies of the predictor (not re-entrant)
  p.predict = [q, host](const float* x, int64_t n, std::vector<float>& hr, std::vector<float>*) {
    const std::vector<int16_t> qin = deploy::quantize_input(q, x, n);  // (n, 4, 256)
    hr = deploy::heart_rates(q, host->infer(qin.data(), n));
  };
  return p;
}

Predictor firmware_predictor(const deploy::QuantModel& q, const std::string& dir, const std::string& core,
                             std::shared_ptr<FirmwareCheck> check, const deploy::McuHmm* hmm) {
  deploy::export_mcu(q, core, dir, "", true, hmm);
  Predictor p;
  p.name = "firmware " + core;
  p.batch = 1 << 20;  // one QEMU run per subject
  auto host = std::make_shared<deploy::HostModel>(q);
  std::shared_ptr<deploy::McuHmmTables> tables;  // the filter's tables, for the host's run of it
  if (hmm) deploy::mcu_hmm_tables(*(tables = std::make_shared<deploy::McuHmmTables>()), *hmm, q.out_scale);
  p.predict = [q, dir, core, host, check, tables](const float* x, int64_t n, std::vector<float>& hr, std::vector<float>*) {
    const std::vector<int16_t> qin = deploy::quantize_input(q, x, n);  // (n, 4, 256)
    std::vector<float> filtered;                                        // (n) with the HMM
    const std::vector<int32_t> raw = deploy::mcu_run(dir, core, qin.data(), n, "-Os", tables ? &filtered : nullptr);
    const std::vector<int32_t> ref = host->infer(qin.data(), n);
    check->windows += n;
    for (int64_t i = 0; i < n; ++i) check->mismatches += raw[size_t(i)] != ref[size_t(i)];
    if (tables) {
      const std::vector<float> want = deploy::mcu_hmm_track(*tables, ref);
      for (int64_t i = 0; i < n; ++i) check->hmm_mismatches += filtered[size_t(i)] != want[size_t(i)];
      check->hmm_hr.insert(check->hmm_hr.end(), filtered.begin(), filtered.end());
    }
    hr = deploy::heart_rates(q, raw);
  };
  return p;
}

}  // namespace pulsekd::kd
