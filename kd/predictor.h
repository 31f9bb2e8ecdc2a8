// What evaluation asks of a model: heart rates (and, for a binned head, logits) of normalised
// windows. The float network, the quantised model on the host integer runtime, and the same
// model in Cortex-M firmware under QEMU are all Predictors, so per-subject metrics,
// post-processing and reports are written once (kd::evaluate).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "deploy/mcu_hmm.h"
#include "deploy/quant_model.h"
#include "models/pulse.h"

namespace pulsekd::kd {

struct Predictor {
  // x (n, 4, 256) normalised -> hr (n) BPM; logits (n, bins) when `logits` is given and the
  // predictor has a binned head (bin_centres not empty).
  std::function<void(const float* x, int64_t n, std::vector<float>& hr, std::vector<float>* logits)> predict;
  std::vector<float> bin_centres;  // (bins) of a binned head; empty: regression
  int batch = 256;                 // windows per predict call (bounds the memory of one call)
  std::string name;                // "float", "host integer", "firmware m4"
};

// The float network (PulseModel::predict). The model must outlive the predictor.
Predictor float_predictor(models::PulseModel& m);
// The quantised model on the host integer runtime (deploy::HostModel, bit-exact with the firmware).
Predictor integer_predictor(const deploy::QuantModel& q);

// The quantised model in firmware: exported to `dir`, built for `core` and run under QEMU on
// each call (one QEMU run per call: batch is large); every output is checked against the host
// runtime, and the counts go to `check`.
// With `hmm` the firmware also runs the HMM forward filter over each call's windows (one
// recording: the filter starts afresh) and its filtered heart rates, checked against the same
// filter on the host (deploy::mcu_hmm_track), are appended to check->hmm_hr.
struct FirmwareCheck {
  int64_t windows = 0, mismatches = 0;
  int64_t hmm_mismatches = 0;
  std::vector<float> hmm_hr;  // (windows) the firmware's filtered heart rates, in call order
};
Predictor firmware_predictor(const deploy::QuantModel& q, const std::string& dir, const std::string& core,
                             std::shared_ptr<FirmwareCheck> check, const deploy::McuHmm* hmm = nullptr);

}  // namespace pulsekd::kd
