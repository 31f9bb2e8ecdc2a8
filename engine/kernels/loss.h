// Reference regression losses on the difference d = pred - target: value summed over n
// elements (the op divides by n) and the derivative per element. Sums accumulate in double:
// a batch of heart rates in float loses digits otherwise.
#pragma once
#include "engine/kernels/kmath.h"

namespace pulsekd::kernels {

enum loss_kind { LOSS_L1 = 0, LOSS_MSE = 1, LOSS_HUBER = 2, LOSS_LOGCOSH = 3 };

// Value of one element's loss. Huber is PyTorch's smooth L1 with threshold delta.
inline double loss_value(int kind, double d, double delta) {
  const double a = d < 0 ? -d : d;
  switch (kind) {
    case LOSS_L1: return a;
    case LOSS_MSE: return d * d;
    case LOSS_HUBER: return a < delta ? 0.5 * d * d / delta : a - 0.5 * delta;
    default: return a + log1p(exp(-2 * a)) - 0.69314718055994530942;  // log cosh, stable
  }
}

// d(loss)/d(d). L1 uses sign(0) = 0 as PyTorch does.
inline double loss_derivative(int kind, double d, double delta) {
  const double sgn = double((d > 0) - (d < 0));
  switch (kind) {
    case LOSS_L1: return sgn;
    case LOSS_MSE: return 2 * d;
    case LOSS_HUBER: return (d < 0 ? -d : d) < delta ? d / delta : sgn;
    default: return tanh(d);
  }
}

template <class T>
double loss_sum_ref(int kind, const T* pred, const T* target, size_t n, double delta) {
  double acc = 0;
  for (size_t i = 0; i < n; ++i) acc += loss_value(kind, double(pred[i]) - double(target[i]), delta);
  return acc;
}

// Adds scale * d(loss_i)/d(pred_i) into grad_pred and its negation into grad_target.
template <class T>
void loss_bwd_ref(T* grad_pred, T* grad_target, int kind, const T* pred, const T* target, size_t n, double delta,
                  T scale) {
  for (size_t i = 0; i < n; ++i) {
    const T g = T(loss_derivative(kind, double(pred[i]) - double(target[i]), delta)) * scale;
    if (grad_pred) grad_pred[i] += g;
    if (grad_target) grad_target[i] -= g;
  }
}

// KL(p || q) = sum p (log p - log q) with terms of p = 0 counted as 0; log_q and p are (n).
template <class T>
double kl_sum_ref(const T* log_q, const T* p, size_t n) {
  double acc = 0;
  for (size_t i = 0; i < n; ++i)
    if (p[i] > 0) acc += double(p[i]) * (log(double(p[i])) - double(log_q[i]));
  return acc;
}
template <class T>
void kl_bwd_ref(T* grad_log_q, T* grad_p, const T* log_q, const T* p, size_t n, T scale) {
  for (size_t i = 0; i < n; ++i) {
    if (grad_log_q) grad_log_q[i] -= scale * p[i];
    if (grad_p && p[i] > 0) grad_p[i] += scale * T(log(double(p[i])) + 1 - double(log_q[i]));
  }
}

}  // namespace pulsekd::kernels
