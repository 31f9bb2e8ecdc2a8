// Per-channel symmetric int8 weights with error-compensating rounding (GPTQ) and Q31
// requantisation multipliers: the weight half of post-training quantisation (deploy/calibrate.h).
#pragma once
#include <cstdint>
#include <vector>

#include "deploy/quant_model.h"

namespace pulsekd::deploy {

// Second moments H = sum x x^T of a layer's input vectors (in the weights' inner order),
// for error-compensating rounding.
struct Hess {
  int d = 0;
  std::vector<double> h;  // (d, d), upper triangle accumulated
  int64_t n = 0;
  void add(const double* v);  // v: (d)
};

// real multiplier m > 0 -> (M in [2^30, 2^31), shift) with m = M * 2^(shift - 31); 0 -> (0, 0).
void quantize_multiplier(double m, int32_t& mult, int32_t& shift);

// Fills L.w, L.bias (input zero point folded in), L.w_scale, L.mult/L.shift and the clamp from
// float weights w_in (c_out, per_co) and biases b (c_out), given L.in / L.out. With H (GPTQ
// statistics of the layer's inputs) the rounding error is compensated; out_scales (c_out), if
// given, replaces L.out.scale per channel.
void quantize_weights(QLayer& L, const std::vector<float>& w_in, const std::vector<float>& b, const Hess* H = nullptr,
                      const std::vector<double>* out_scales = nullptr);

}  // namespace pulsekd::deploy
