// The float forward of a PULSE student or teacher through the same reference loops the integer
// model runs (engine/kernels/, ArithFloat<float>), with an observer per quantisation point:
// calibration (deploy/calibrate.cpp) records ranges and GPTQ statistics through it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/pulse.h"

namespace pulsekd::deploy {

constexpr float kLayerNormEps = 1e-5f;  // nn.LayerNorm's default, as engine/ops.h layer_norm

// The model's layer plan (models/pulse_plan.h) after the checks quantisation needs: a PULSE
// student or teacher with a regression head, and for the teacher an attention the integer
// kernels run (embedding divisible by the heads, keys within kSoftmaxMaxKeys). Throws otherwise.
const models::PulsePlan& quantizable_plan(const models::PulseModel& m);

Parameter& param(models::PulseModel& m, const std::string& name);  // throws if absent
std::vector<float> to_f(const std::vector<real>& v);
std::vector<float> param_f(models::PulseModel& m, const std::string& name);
// Dense weights (dense, C*T) in PyTorch's c*T + t flatten order -> (dense, T*C) in the
// channels-last t*C + c order the integer model keeps (a permutation: exact in integers).
std::vector<float> dense_to_tc(const std::vector<float>& w, int dense, int c, int t);

// obs(name, data, count) sees each quantisation point's float values; "in:NAME" names the input
// of a weighted layer (for the error-compensating rounding).
using Observer = std::function<void(const std::string& name, const float* data, size_t count)>;
// One window x (4, 256) -> heart rate.
float pulse_forward_f32(models::PulseModel& m, const models::PulsePlan& g, const float* x, const Observer& obs);

// Heart rate per window (n, 4, 256); should equal PulseModel::predict to float rounding.
std::vector<float> predict_float_ref(models::PulseModel& m, const float* x, int64_t n);

}  // namespace pulsekd::deploy
