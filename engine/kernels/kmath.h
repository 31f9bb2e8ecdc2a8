// Scalar math shared by all kernels, overloaded for float and double. Only <math.h>: these
// headers are also compiled for bare-metal Cortex-M firmware (no C++ standard library).
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>

namespace pulsekd::kernels {

inline float k_sqrt(float x) { return sqrtf(x); }
inline double k_sqrt(double x) { return sqrt(x); }
inline float k_exp(float x) { return expf(x); }
inline double k_exp(double x) { return exp(x); }
inline float k_log(float x) { return logf(x); }
inline double k_log(double x) { return log(x); }
inline float k_erf(float x) { return erff(x); }
inline double k_erf(double x) { return erf(x); }
inline float k_tanh(float x) { return tanhf(x); }
inline double k_tanh(double x) { return tanh(x); }
inline float k_abs(float x) { return fabsf(x); }
inline double k_abs(double x) { return fabs(x); }
template <class T> inline T k_max(T a, T b) { return a > b ? a : b; }
template <class T> inline T k_min(T a, T b) { return a < b ? a : b; }

// Arithmetic policy for floating point: every input, weight, bias, accumulator and output is T.
// Integer policies (int8 / int16 activations with int32 accumulators and a requantisation
// step) live in fixed_point.h and plug into the same reference loops.
template <class T>
struct ArithFloat {
  using in_t = T;
  using w_t = T;
  using bias_t = T;
  using acc_t = T;
  using out_t = T;
  struct quant {};  // floats need no requantisation parameters
  static acc_t bias(const bias_t* b, int32_t co) { return b ? b[co] : T(0); }
  static acc_t mac(acc_t acc, in_t x, w_t w) { return acc + x * w; }
  // x_zero: the input's zero point (0 for floats); padding reads it.
  static in_t zero_input(const quant&) { return T(0); }
  static out_t finish(acc_t acc, int32_t /*co*/, const quant&) { return acc; }
  // Average pooling: the mean of n summed values (exact division).
  static out_t mean(acc_t sum, int32_t n) { return sum / T(n); }
};

}  // namespace pulsekd::kernels
