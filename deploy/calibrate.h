// Post-training quantisation of a PULSE student or teacher (calibration + GPTQ weight rounding)
// and the input side of the integer model. The integer model runs the same reference loops as
// float training (engine/kernels/) in the integer policies of engine/kernels/fixed_point.h; the
// host runtime (deploy/host_runtime.h) and the firmware run it bit-exactly. docs/MCU.md.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "deploy/quant_model.h"
#include "models/pulse.h"

namespace pulsekd::deploy {

struct QuantOptions {
  std::string calib = "percentile";  // "minmax" or "percentile"
  double percentile = 99.99;         // two-sided, for "percentile"
  // Activation bits per quantisation point, by layer name ("input" for the model input);
  // layers not listed use default_bits. Pool layers inherit their input's.
  std::map<std::string, int> bits;
  int default_bits = 16;
  // Error-compensating weight rounding (GPTQ) on the calibration inputs; false: round to nearest.
  bool gptq = true;
};
// The documented default choice (docs/MCU.md): which tensors are int16.
// arch "teacher": every tensor int16 (docs/MCU.md, "Teacher").
std::map<std::string, int> default_layer_bits(const std::string& arch = "student");


// Calibrates on `calib_windows` (n, 4, 256), already normalised, and quantises. Student or
// teacher (regression head).
QuantModel quantize_model(models::PulseModel& m, const RowNorm& norm, const float* calib_windows, int64_t n,
                          const QuantOptions& opt, const std::string& source = "");

// Normalised float windows (n, 4, 256) -> quantised input (n, 4, 256) (int8 or int16 values).
std::vector<int16_t> quantize_input(const QuantModel& q, const float* x, int64_t n);

// The windows of `ws`, normalised as the model wants: with q.norm / norm when present, else
// each subject (recording) z-scored with its own per-row statistics (PULSE.md section 6).
std::vector<float> normalised_windows(const data::WindowSet& ws, const RowNorm& norm);

}  // namespace pulsekd::deploy
