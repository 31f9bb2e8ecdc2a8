// Running a quantised model on the host, bit-exact with the firmware.
#pragma once
#include <cstdint>
#include <vector>

#include "deploy/quant_model.h"

namespace pulsekd::deploy {

// Host integer simulation: raw int32 outputs (n), bit-exact with the firmware.
std::vector<int32_t> simulate(const QuantModel& q, const int16_t* qin, int64_t n);
// Convenience: normalised float windows -> heart rates (BPM) through the integer model.
std::vector<float> predict_quantized(const QuantModel& q, const float* x, int64_t n);

}  // namespace pulsekd::deploy
